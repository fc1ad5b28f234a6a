"""Load the rule files, bind their parameters, run them on a night, check and store the hits.

A rule file is `sql/rules/<CODE>.sql`: a header of `-- key: value` lines (code, title, category,
inputs, parameters, optionally skip_unless, link and dated — what it compares with the run date,
bidui.rules.changed), its guide for people (`-- 规则含义：…` lines, see `GUIDE_KEYS`) and one
SELECT over the views of `bidui.rules.views`.
Files whose name starts with `_` define shared views. `<home>/rules/*.sql` are added to (or
replace) the packaged ones, so a task force can add a rule without touching the package.

A header that is not what it should be (a key missing, an input that is not a dataset's code, a
parameter that is not a name, a note written after a value) is refused with a RuleError naming the
file, the line and the value, by every command that loads the rules: a rule read in part would
otherwise run on nothing, or not at all, and say so only in a run report.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.errors import BadInput
from bidui.evidence import evidence_hash
from bidui.rules import changed, views

CATEGORIES = ("mis_inclusion", "natural_change", "data_quality", "exit_risk", "missed_inclusion")
CLUE_COLUMNS = ("subject_key", "subject_person_key", "subject_id_number", "subject_name", "household_code",
                "hukou_number", "township_code", "village_code", "household_status", "registered_year",
                "evidence_dataset", "evidence_key", "evidence_date", "evidence_record", "link_method", "link_score",
                "link_explanation")
# A stored row quoted whole as evidence (`to_json`) carries the id of the load that stored it. Load
# ids number a night's files in the order their workers finished reading them, so two runs of one
# night number them differently: nothing may be chosen or compared by it.
LOAD_ID_IN_RECORD = r'"load_id":\s*-?\d+'
# Where a quoted record stands: its snapshot's night, load and file, and its row (what `to_json` of
# a snapshot row begins with). Which of several records of one hit is kept is chosen by what they
# say, this left out: a record of a file that came tonight must not win over one of a file that
# came yesterday by its date, nor a row by its place (a file sent in another order). Two records
# that say the same (alike in every stored value, as rows alike in every cell are, which ingest
# keeps once, or two rows writing one date two ways, which it keeps both) are told apart by their
# place alone: `changed._moved_records` must not carry such a choice to another night.
PLACE_IN_RECORD = (r'^\{"snapshot_date":"[^"]*","load_id":-?[0-9]+,"source_file":"(?:[^"\\]|\\.)*",'
                   r'"source_row":-?[0-9]+,')
_HEADER = re.compile(r"^--\s*([a-z_]+):\s*(.*)$")
# A parameter's name, as a rule's SQL uses it (`$name`, bound by `_bind`).
_PARAMETER = re.compile(r"[a-z_]+")
# The guide a rule file carries for the people who verify its clues, in plain Chinese: what it
# means, what to check at the household, which outcome fits which finding (one line per outcome of
# bidui.clues.states.OUTCOMES), what evidence to keep. A line `--   …` (indented) continues the one
# before it. A task force's own rule may have none.
GUIDE_KEYS = ("规则含义", "入户核实要点", "属实·已整改", "属实·申请豁免", "不属实", "留存佐证")
_GUIDE = re.compile(r"^--\s*(" + "|".join(GUIDE_KEYS) + r")[：:]\s*(.*)$")
_CONTINUED = re.compile(r"^--\s{2,}(\S.*)$")
# What the clue's link columns describe: `record` (default) the department record's link to the
# person; `member` the register member's own link to hukou (a rule whose evidence is the member's
# hukou record, or the absence of a record).
LINK_KINDS = ("record", "member")


class RuleError(BadInput):
    """A rule file that cannot be read as one: its text is one line naming the file and what is
    wrong (bidui.errors prints it and exits 1)."""


@dataclass(frozen=True)
class RuleGuide:
    meaning: str  # 规则含义
    checks: str  # 入户核实要点
    outcomes: dict[str, str]  # 结论怎么选: outcome → the finding it fits
    keep: str  # 留存佐证


@dataclass
class Rule:
    code: str
    title: str
    category: str
    inputs: list[str]
    parameters: list[str]
    sql: str
    path: str
    skip_unless: str | None = None
    reads: list[str] = field(default_factory=list)  # every dataset its SQL reads, through shared views too
    guide: RuleGuide | None = None
    link: str = "record"  # see LINK_KINDS
    # the dated columns it compares with the run date (`-- dated:`, bidui.rules.changed); None: undeclared
    dated: list[changed.Dated] | None = None


@dataclass
class RuleOutcome:
    code: str
    status: str  # ran | skipped | disabled | failed
    hits: int = 0
    seconds: float = 0.0
    message: str = ""
    title: str = ""  # as the rule's file gives it (a rule of the home's own is in no other list)


@dataclass
class RunResult:
    hits: pl.DataFrame
    outcomes: list[RuleOutcome] = field(default_factory=list)
    # (dataset, subject_key) of persons with a row whose value was rejected tonight: the rules cannot
    # tell what that row says, so publish neither dispatches nor retires their clues on its evidence.
    doubtful: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DOUBTFUL_SCHEMA))
    # Evaluated only where something changed since `plan.before` (bidui.rules.changed): the hits
    # of that night hold for the rest, and `store_hits` carries them. None: evaluated whole.
    plan: changed.Plan | None = None
    fingerprint: str = ""
    whole_because: str = ""


DOUBTFUL_SCHEMA = {"dataset": pl.String, "subject_key": pl.String}


def doubtful_persons(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """Persons (by `ident`, the key rules name subjects by) with a row kept without a rejected value
    in a snapshot in force (every such row, whatever the rules' views were narrowed to)."""
    from bidui.datasets import DATASETS
    from bidui.matching.carry import unpaired

    in_force, apart = wh.in_force(con, night), unpaired(con, night)
    parts = [f"SELECT DISTINCT '{ds.code}' AS dataset, ident AS subject_key FROM "
             f"({views.linked_select(ds, night, in_force.get(ds.code), 'd.rejected_columns IS NOT NULL', paired=ds.code not in apart)}) "
             "WHERE ident IS NOT NULL" for ds in DATASETS if ds.persons]
    frame = wh.query(con, " UNION ALL ".join(parts))
    return frame.cast(DOUBTFUL_SCHEMA) if frame.height else pl.DataFrame(schema=DOUBTFUL_SCHEMA)


def _header(text: str) -> dict[str, str]:
    return {key: value for key, (_, value) in _header_lines(text).items()}


def _header_lines(text: str) -> dict[str, tuple[int, str]]:
    """The header's `-- key: value` lines as key → (line number, value); the first of a key counts."""
    out: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line.strip())
        if m:
            out.setdefault(m.group(1), (number, m.group(2).strip()))
        elif line.strip() and not line.startswith("--"):
            break
    return out


def _listed(head: dict[str, tuple[int, str]], key: str) -> list[str]:
    return [p.strip() for p in head[key][1].split(",") if p.strip()] if key in head else []


def _check_header(head: dict[str, tuple[int, str]], path: str, shared: bool) -> None:
    """RuleError, naming the file, the line and the value, for a header bidui would misread."""
    from bidui.datasets import BY_CODE

    def refuse(key: str, what: str) -> RuleError:
        return RuleError(f"{path}: line {head[key][0]}: {key}: {what}")

    def check_parameters() -> None:
        for name in _listed(head, "parameters"):
            if not _PARAMETER.fullmatch(name):
                raise refuse("parameters", f"{name!r} is not a parameter name (lower-case letters and _, "
                                           "comma-separated; notes go on a line of their own)")

    if shared:
        check_parameters()
        return
    missing = [k for k in ("code", "title", "category", "inputs") if k not in head]
    if missing:
        raise RuleError(f"{path}: header lacks {', '.join(missing)}")
    category = head["category"][1]
    if category not in CATEGORIES:
        raise refuse("category", f"{category!r} is not one of {', '.join(CATEGORIES)} (notes go on a line of their own)")
    inputs = _listed(head, "inputs")
    if not inputs:
        raise refuse("inputs", "names no dataset")
    for name in inputs:
        if name not in BY_CODE:
            raise refuse("inputs", f"{name!r} is not a dataset (one of {', '.join(BY_CODE)}; comma-separated; "
                                   "notes go on a line of their own)")
    check_parameters()
    link = head.get("link", (0, "record"))[1]
    if link not in LINK_KINDS:
        raise refuse("link", f"{link!r} is not one of {', '.join(LINK_KINDS)}")


def _guide(text: str, path: str) -> RuleGuide | None:
    """The rule's guide from its leading comment lines; None when it has none, RuleError when it
    has some of the parts only (a clerk would be left without the rest)."""
    found: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        m = _GUIDE.match(stripped)
        if m:
            current = m.group(1)
            found[current] = m.group(2).strip()
            continue
        m = _CONTINUED.match(line.rstrip())
        if current and m and not _HEADER.match(stripped):
            found[current] += m.group(1).strip()
            continue
        current = None
    if not found:
        return None
    missing = [k for k in GUIDE_KEYS if not found.get(k)]
    if missing:
        raise RuleError(f"{path}: guide lacks {', '.join(missing)}")
    return RuleGuide(found["规则含义"], found["入户核实要点"], {k: found[k] for k in GUIDE_KEYS[2:5]}, found["留存佐证"])


def _files(home_rules: Path | None) -> dict[str, tuple[str, str]]:
    found = {}
    for f in sorted(resources.files("bidui").joinpath("sql/rules").iterdir(), key=lambda f: f.name):
        if f.name.endswith(".sql"):
            found[f.name] = (f.read_text(encoding="utf-8"), f"bidui/sql/rules/{f.name}")
    if home_rules and home_rules.is_dir():
        for f in sorted(home_rules.glob("*.sql")):
            try:
                found[f.name] = (f.read_text(encoding="utf-8"), str(f))
            except UnicodeDecodeError as e:
                raise RuleError(f"{f}: not UTF-8 text (save it as UTF-8)") from e
    return found


_LINKED = re.compile(r"\b([a-z_]+)_linked\b")
_SHARED = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+)?(?:TABLE|VIEW)\s+([a-z_]+)\s+AS", re.IGNORECASE)


def reads_through(sql: str, pattern: re.Pattern[str], views: dict[str, set[str]]) -> set[str]:
    """What `sql` reads by `pattern` (its group): named in it, or read by a shared view it names."""
    found = set(pattern.findall(sql))
    for view, read in views.items():
        if re.search(rf"\b{view}\b", sql):
            found |= read
    return found


def shared_view_reads(texts: Iterable[str], pattern: re.Pattern[str]) -> dict[str, set[str]]:
    """What each shared view of these files reads by `pattern`. In file order, so that a view that
    reads another made before it reads what that one reads too. The texts are read as given: a
    caller that must not count what comments mention strips them first (bidui.rules.whatif)."""
    out: dict[str, set[str]] = {}
    for text in texts:
        parts = _SHARED.split(text)  # [before, name1, body1, name2, body2, …]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            out[name] = reads_through(body, pattern, out)
    return out


def _reads(sql: str, views: dict[str, set[str]]) -> list[str]:
    """The datasets a rule's SQL reads: its `<dataset>_linked` views, those of the shared views it
    uses, and always hukou (every link and the members' hukou status come from it)."""
    return sorted(reads_through(sql, _LINKED, views) | {"hukou"})


def load_rules(home_rules: Path | None = None) -> tuple[list[Rule], list[tuple[str, str, list[str]]]]:
    """(rules, shared view files as (sql, path, parameters))."""
    rules, shared = [], []
    for name, (text, path) in _files(home_rules).items():
        lines = _header_lines(text)
        _check_header(lines, path, shared=name.startswith("_"))
        head = _header(text)
        params = _listed(lines, "parameters")
        if name.startswith("_"):
            shared.append((text, path, params))
            continue
        if head["code"] != name.removesuffix(".sql"):
            raise RuleError(f"{path}: line {lines['code'][0]}: code {head['code']!r} differs from the file name")
        try:
            dated = changed.dated(head.get("dated"), path)
        except ValueError as e:  # "<path>: dated: <the value> is not …"
            where = f"{path}: line {lines['dated'][0]}: "
            raise RuleError(where + str(e).removeprefix(f"{path}: ")) from e
        rules.append(Rule(head["code"], head["title"], head["category"], _listed(lines, "inputs"), params, text, path,
                          head.get("skip_unless"), guide=_guide(text, path), link=head.get("link", "record"),
                          dated=dated))
    views = shared_view_reads((text for text, _, _ in shared), _LINKED)
    for rule in rules:
        rule.reads = sorted(set(rule.inputs) | set(_reads(rule.sql, views)))
    return rules, shared


def _titles(codes: list[str]) -> list[str]:
    """Dataset codes as their Chinese titles (run messages are read by people)."""
    from bidui.datasets import BY_CODE

    return [BY_CODE[c].title if c in BY_CODE else c for c in codes]


def _bind(sql: str, parameters: dict, night: date, path: str) -> dict:
    used = set(re.findall(r"\$([a-z_]+)", sql))
    unknown = used - set(parameters) - {"run_date"}
    if unknown:
        raise RuleError(f"{path}: uses parameter(s) not in config: {', '.join(sorted(unknown))}")
    return {k: (night if k == "run_date" else parameters[k]) for k in used}


def literal(value: object) -> str:
    """A config value as a SQL literal (for view definitions, which cannot take parameters)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]::VARCHAR[]" if all(isinstance(v, str) for v in value) \
            else "[" + ", ".join(literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def _inline(sql: str, parameters: dict, night: date, path: str) -> str:
    bound = _bind(sql, parameters, night, path)
    return re.sub(r"\$([a-z_]+)", lambda m: literal(bound[m.group(1)]), sql)


def _body(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))


def _statuses(con: duckdb.DuckDBPyConnection, rules: list[Rule], night: date, parameters: dict, disabled: set[str],
              only: list[str] | None, lazy: bool) -> dict[str, RuleOutcome]:
    """Each rule's outcome when it does not run tonight (disabled, an input not in force, its
    condition not met), on the whole data: through the views made (`lazy`: through views made
    now that join nothing until read, before the views the rules read are narrowed)."""
    in_force = views.create_lazy(con, night) if lazy else wh.in_force(con, night)
    out: dict[str, RuleOutcome] = {}
    for rule in rules:
        if only and rule.code not in only:
            continue
        if rule.code in disabled:
            out[rule.code] = RuleOutcome(rule.code, "disabled", message="已在配置中停用")
            continue
        missing = [i for i in rule.inputs if i not in in_force]
        if missing:
            out[rule.code] = RuleOutcome(rule.code, "skipped", message=f"没有已入库的{'、'.join(_titles(missing))}数据，"
                                         "本规则未运行（不是“没有疑点”）")
            continue
        if rule.skip_unless:
            ok = con.execute(rule.skip_unless, _bind(rule.skip_unless, parameters, night, rule.path)).fetchone()[0]
            if not ok:
                out[rule.code] = RuleOutcome(rule.code, "skipped", message="运行条件未满足（如输入数据中没有"
                                             "本年度的记录），本规则未运行（不是“没有疑点”）")
    return out


def _whole_because(rules: list[Rule], enabled: list[Rule], home_rules: Path | None, only: list[str] | None) -> str:
    """Why tonight's rules cannot be evaluated only where something changed, whatever changed."""
    if only:
        return "some rules only"
    if home_rules and home_rules.is_dir() and any(home_rules.glob("*.sql")):
        return "the home has rules of its own"
    for rule in enabled:
        if "$run_date" in _body(rule.sql) and rule.dated is None:
            return f"{rule.code} compares the run date and does not declare how (-- dated:)"
    return ""


def run_rules(con: duckdb.DuckDBPyConnection, night: date, cfg: dict, home_rules: Path | None = None,
              only: list[str] | None = None, incremental: bool = False) -> RunResult:
    """Run the rules on a night. `incremental`: only on the households something reached since the
    night they last ran, that night's hits holding for the others (bidui.rules.changed), when it
    can be; else (and by default) on everything."""
    rules, shared = load_rules(home_rules)
    parameters = cfg.get("rules", {}).get("parameters", {})
    disabled = set(cfg.get("rules", {}).get("disabled", []))
    enabled = [r for r in rules if r.code not in disabled and (not only or r.code in only)]
    fp = changed.fingerprint([r.sql for r in rules] + [text for text, _, _ in shared], parameters,
                             [r.code for r in enabled])
    readers = [r.sql for r in enabled] + [text for text, _, _ in shared]
    plan, decided = None, None
    because = _whole_because(rules, enabled, home_rules, only) if incremental else "evaluated whole on request"
    if not because:
        decided = _statuses(con, rules, night, parameters, disabled, only, lazy=True)
        statuses = {r.code: decided[r.code].status if r.code in decided else "ran" for r in rules}
        plan, because = changed.plan(con, night, fp, statuses, {r.code: r.dated or [] for r in enabled
                                                                 if statuses[r.code] == "ran"}, parameters)
    views.create(con, night, readers, scoped=plan is not None)
    if decided is None:
        decided = _statuses(con, rules, night, parameters, disabled, only, lazy=False)
    for text, path, _ in shared:
        for statement in [s for s in text.split(";") if s.strip() and not all(
                line.strip().startswith("--") or not line.strip() for line in s.splitlines())]:
            con.execute(_inline(statement, parameters, night, path))
    carried = {}
    if plan is not None:
        carried = dict(con.execute(f"SELECT rule_code, count(*) FROM rule_hits WHERE night = ? AND NOT ({changed.in_scope()}) "
                                   "GROUP BY rule_code", [plan.before]).fetchall())
    frames, outcomes = [], []
    for rule in rules:
        if only and rule.code not in only:
            continue
        if rule.code in decided:
            outcomes.append(decided[rule.code])
            continue
        start = time.perf_counter()
        body = _body(rule.sql)
        try:
            frame = wh.query(con, body, _bind(body, parameters, night, rule.path))  # type: ignore[arg-type]
        except duckdb.Error as e:
            outcomes.append(RuleOutcome(rule.code, "failed", message=f"{rule.path}: {e}"))
            continue
        missing_cols = [c for c in CLUE_COLUMNS if c not in frame.columns]
        if missing_cols:
            outcomes.append(RuleOutcome(rule.code, "failed", message=f"{rule.path}: result lacks {', '.join(missing_cols)}"))
            continue
        frame = frame.select(CLUE_COLUMNS).with_columns(
            pl.lit(rule.code).alias("rule_code"), pl.lit(rule.category).alias("category"),
            pl.col("evidence_key").cast(pl.String).fill_null(""),
            pl.col("evidence_record").cast(pl.String), pl.col("link_explanation").cast(pl.String),
            pl.col("link_score").cast(pl.Float64), pl.col("registered_year").cast(pl.Int32),
            pl.col("evidence_date").cast(pl.Date))
        before = (pl.col("evidence_date").dt.year() < pl.col("registered_year")) if rule.category == "mis_inclusion" \
            else pl.lit(None, pl.Boolean)
        # Sorted first: which of several evidence rows of one hit is kept must not depend on the
        # order DuckDB returned them in, nor on where the records stand (PLACE_IN_RECORD: a hukou
        # death and a death certificate of one date, the one whose file finished reading first was
        # kept; a company's legal representative and investor, the file that came last lost). The
        # person's own hukou record comes first (no linking stands between it and the person), then
        # the other datasets by name, then what the records say, then their place.
        frame = frame.with_columns(before.alias("before_registration")).sort(
            [pl.col("subject_key"), pl.col("household_code"), pl.col("evidence_key"),
             pl.col("evidence_dataset") != "hukou", pl.col("evidence_dataset"),
             pl.col("evidence_record").str.replace(PLACE_IN_RECORD, "{"),
             pl.col("evidence_record").str.replace_all(LOAD_ID_IN_RECORD, "")], nulls_last=True).unique(
            ["rule_code", "subject_key", "household_code", "evidence_key"], keep="first", maintain_order=True)
        if plan is not None:
            # Only the households in scope were read whole: a hit about another (a hukou household a
            # person in scope belongs to, read in part) is the night before's, carried.
            # (the scope as the carried hits are kept out of it: one definition, changed.in_scope)
            with wh.registered(con, "_rule_frame", frame):
                frame = wh.query(con, f"SELECT * FROM _rule_frame WHERE {changed.in_scope()}")
        frames.append(frame)
        outcomes.append(RuleOutcome(rule.code, "ran", frame.height + carried.get(rule.code, 0), time.perf_counter() - start))
    titles = {r.code: r.title for r in rules}
    for o in outcomes:
        o.title = titles.get(o.code, "")
    hits = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return RunResult(hits, outcomes, doubtful_persons(con, night), plan, fp, because)


HITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_hits (
    night DATE NOT NULL, rule_code VARCHAR NOT NULL, category VARCHAR NOT NULL, subject_key VARCHAR,
    subject_person_key VARCHAR, subject_id_number VARCHAR, subject_name VARCHAR, household_code VARCHAR,
    hukou_number VARCHAR, township_code VARCHAR, village_code VARCHAR, household_status VARCHAR,
    registered_year INTEGER, evidence_dataset VARCHAR, evidence_key VARCHAR, evidence_date DATE,
    evidence_record VARCHAR, link_method VARCHAR, link_score DOUBLE, link_explanation VARCHAR,
    before_registration BOOLEAN,
    evidence_digest VARCHAR  -- bidui.evidence.evidence_hash of evidence_record (store_hits)
);
CREATE TABLE IF NOT EXISTS rule_runs (night DATE, rule_code VARCHAR, status VARCHAR, hits BIGINT, seconds DOUBLE,
    message VARCHAR);
CREATE TABLE IF NOT EXISTS doubtful_persons (night DATE NOT NULL, dataset VARCHAR NOT NULL, subject_key VARCHAR NOT NULL);
"""


def ensure_hits_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The hits' tables, as this version keeps them (columns added since an earlier version's)."""
    con.execute(HITS_SCHEMA)
    con.execute("ALTER TABLE rule_hits ADD COLUMN IF NOT EXISTS evidence_digest VARCHAR")


def store_hits(con: duckdb.DuckDBPyConnection, night: date, result: RunResult) -> None:
    ensure_hits_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM rule_hits WHERE night = ?", [night])
        con.execute("DELETE FROM rule_runs WHERE night = ?", [night])
        con.execute("DELETE FROM doubtful_persons WHERE night = ?", [night])
        if result.doubtful.height:
            wh.insert_frame(con, "doubtful_persons", result.doubtful.with_columns(pl.lit(night).alias("night")),
                            ["night", "dataset", "subject_key"])
        if result.hits.height:
            cols = ["night", "rule_code", "category", *CLUE_COLUMNS, "before_registration"]
            wh.insert_frame(con, "rule_hits", result.hits.with_columns(pl.lit(night).alias("night")), cols)
        if result.plan is not None:
            # The hits of the night before about the households nothing reached since.
            ran = [o.code for o in result.outcomes if o.status == "ran"]
            con.execute(changed.carry_sql(ran), [night, result.plan.before])
        _digest_evidence(con, night)
        changed.remember(con, night, result.fingerprint, {o.code: o.status for o in result.outcomes}, result.plan,
                         result.whole_because)
        for o in result.outcomes:
            con.execute("INSERT INTO rule_runs VALUES (?, ?, ?, ?, ?, ?)", [night, o.code, o.status, o.hits, o.seconds,
                                                                            o.message])
        con.execute("COMMIT")
    except Exception:
        wh.rollback(con)
        raise


def _digest_evidence(con: duckdb.DuckDBPyConnection, night: date) -> None:
    """The evidence digest of the night's hits evaluated tonight, once per record; a carried hit
    keeps its own (requoting changes only where its record stands, which the digest leaves out).
    Publishing compared tens of thousands of hits a night by it: computed there for every hit, it
    cost a quiet large night's publish a second."""
    records = wh.query(con, "SELECT DISTINCT coalesce(evidence_record, '') AS record FROM rule_hits "
                            "WHERE night = ? AND evidence_digest IS NULL", [night])
    if not records.height:
        return
    digests = records.with_columns(pl.col("record").map_elements(evidence_hash, return_dtype=pl.String).alias("digest"))
    with wh.registered(con, "_digests", digests):
        con.execute("UPDATE rule_hits SET evidence_digest = d.digest FROM _digests d "
                    "WHERE rule_hits.night = ? AND rule_hits.evidence_digest IS NULL "
                    "AND coalesce(rule_hits.evidence_record, '') = d.record", [night])


EXPORT_COLUMNS = ("rule_code", "category", "subject_id_number", "subject_name", "household_code", "hukou_number",
                  "township_code", "village_code", "evidence_dataset", "evidence_key", "link_method", "link_score",
                  "before_registration")


def export(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    con.execute(HITS_SCHEMA)
    cols = ", ".join("nullif(household_code, '') AS household_code" if c == "household_code" else c for c in EXPORT_COLUMNS)
    return wh.query(con, f"SELECT {cols} FROM rule_hits WHERE night = ? "
                         "ORDER BY rule_code, household_code, hukou_number, subject_id_number, evidence_key", [night])
