"""阈值推演 (threshold what-if): replay a night's rules with other parameters, without publishing.

The night "as published" is the warehouse's `rule_hits` of that night: the hits the night's
publish step turned into clues. The ledger's clues are not the baseline because they carry the
ledger's own life (a clue closed, one suppressed after 不属实, one whose evidence is gone, one first
seen nights ago): the difference against them would not be the parameter's. Hits are compared by
the key the engine makes them unique by (rule, subject, household, evidence).

Only the rules that read a changed parameter (in their own SQL or through a shared view) are
replayed; the others keep their published hits. With no change every rule is replayed with the
parameters of bidui.toml: nothing is added or removed unless the rules or their configuration
changed since the night (the result then says so).

Nothing in the warehouse changes: it is opened read-only, the replay works in temporary tables,
and the home's run lock is held meanwhile (a nightly run waits for it, as for any other run;
DuckDB would refuse the run's write connection while a reader holds the file). The web app runs
this as a subprocess (`python -m bidui.rules.whatif`, a JSON request on stdin): it never opens the
warehouse itself.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from bidui import config, scope
from bidui.home import Home
from bidui.rules import engine

KEY = ["rule_code", "subject_key", "household_code", "evidence_key"]
BUSY = "夜间比对正在运行，请稍后再试"
BUSY_WHATIF = "另一项阈值推演正在进行，请稍后再试"
COMMAND = "rules whatif"  # written into the run lock: a second what-if can tell who holds it


class WhatIfError(ValueError):
    """A what-if that cannot run as asked (the message says why, in Chinese)."""


class WarehouseBusy(WhatIfError):  # noqa: N818 - a state the caller reports
    pass


@dataclass
class WhatIf:
    night: date
    changes: dict[str, Any]
    by_rule: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_township: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(r["added"] for r in self.by_rule.values())

    @property
    def removed(self) -> int:
        return sum(r["removed"] for r in self.by_rule.values())

    def to_dict(self) -> dict[str, Any]:
        return {"night": self.night.isoformat(), "changes": self.changes, "added": self.added,
                "removed": self.removed, "by_rule": self.by_rule, "by_township": self.by_township,
                "notes": self.notes}


# ---------------------------------------------------------------- parameters

def _label(name: str) -> str:
    from bidui.clues.present import parameter_words

    label, unit = parameter_words(name)
    return f"{label}（{unit}）" if unit else label


def _where(name: str, show_key: bool) -> str:
    """A parameter as an error names it: by its key as typed on the command line and its label, or
    (`show_key=False`, a page) by its label alone."""
    return f"参数 {name}（{_label(name)}）" if show_key else f"“{_label(name)}”"


def parse_value(name: str, text: str, current: Any, show_key: bool = True) -> Any:
    """`text` as a value of the parameter's kind (that of its current value); WhatIfError naming
    the parameter when it is not one (by its key as typed on the command line, and its label;
    `show_key=False`: the label only, for a page)."""
    text = text.strip()
    where = _where(name, show_key)
    if isinstance(current, list):
        if text.startswith("["):
            try:
                value = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                raise WhatIfError(f"{where} 的取值 {text!r} 不是一组值（写成 C,D 或 [\"C\", \"D\"]）") from None
        else:
            value = [part.strip() for part in re.split(r"[,，、]", text) if part.strip()]
        if not all(isinstance(v, str) for v in value):
            raise WhatIfError(f"{where} 的取值须为一组文字，如 C,D")
        return value
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "是", "否"):
            raise WhatIfError(f"{where} 的取值须为 是 或 否")
        return text.lower() in ("true", "是")
    if isinstance(current, int | float):
        try:
            number = float(text.replace(",", ""))
        except ValueError:
            raise WhatIfError(f"{where} 的取值 {text!r} 不是数字") from None
        if not math.isfinite(number) or number < 0:
            raise WhatIfError(f"{where} 的取值 {text!r} 须为不小于 0 的数字")
        if isinstance(current, int):
            if not number.is_integer():
                raise WhatIfError(f"{where} 的取值 {text!r} 须为整数")
            return int(number)
        return number
    if not text:
        raise WhatIfError(f"{where} 的取值不能为空")
    return text


def parse_settings(pairs: list[str], parameters: dict[str, Any], show_key: bool = True) -> dict[str, Any]:
    """`PARAM=VALUE` strings as {parameter: value}; WhatIfError naming the parameter for an
    unknown one or a bad value: every bad value at once (one at a time, the second was found only
    after the first was mended)."""
    out: dict[str, Any] = {}
    bad: list[str] = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise WhatIfError(f"设置 {pair!r} 的格式不对，应为 参数=取值，如 medical_household_threshold=20000")
        if name not in parameters:
            known = "；".join(f"{p}（{_label(p)}）" for p in sorted(parameters))
            raise WhatIfError(f"没有名为 {name} 的规则参数。可设置的参数：{known}")
        try:
            out[name] = parse_value(name, text, parameters[name], show_key)
        except WhatIfError as e:
            bad.append(str(e))
    if bad:
        raise WhatIfError("；".join(bad))
    check_domains(parameters | out, list(out), show_key)
    return out


# What the rules compare a parameter's values with: an enumerated column of a dataset (a value that
# is none of its values matches no record, and the rule would silently raise nothing).
PARAMETER_DOMAINS: dict[str, tuple[str, str]] = {
    "vehicle_active_statuses": ("vehicles", "status"),
    "business_active_statuses": ("businesses", "status"),
    "business_not_enterprise": ("businesses", "entity_type"),
    "property_region": ("property", "region_type"),
    "property_counted_types": ("property", "house_type"),
    "school_fee_types": ("students", "school_type"),
    "dangerous_grades": ("dangerous_housing", "grade"),
    "missed_dangerous_grades": ("dangerous_housing", "grade"),
}
# The rules compare a vehicle's GA 802 code (a letter and two digits, K33) by its first one or two
# characters (`_disqualifiers.sql`).
VEHICLE_CODE_START = re.compile(r"^[A-Z][0-9]?$")
# (lower, upper) pairs of one range: a lower bound above its upper makes the range empty.
PARAMETER_RANGES = (("dropout_min_age", "dropout_max_age"),)


def check_domains(values: dict[str, Any], changed: list[str], show_key: bool = True) -> None:
    """WhatIfError for a changed value no record can have (a vehicle type name where the code's
    start is compared, a grade that is not one, a range whose start is past its end): the replay
    would show every such clue as removed, as if the parameter had done it."""
    from bidui.datasets import BY_CODE

    for name in changed:
        value = values[name]
        items = value if isinstance(value, list) else [value]
        if name == "vehicle_counted_types":
            bad = [v for v in items if not VEHICLE_CODE_START.match(str(v))]
            if bad:
                raise WhatIfError(f"{_where(name, show_key)} 中的 {'、'.join(map(str, bad))} 不是 GA 802 车辆类型代码的开头："
                                  "须为一个字母或一个字母加一位数字，如 K、H1（不是车辆类型的名称）")
        if name in PARAMETER_DOMAINS:
            code, column = PARAMETER_DOMAINS[name]
            allowed = next(c.values for c in BY_CODE[code].columns if c.name == column)
            bad = [v for v in items if v not in allowed]
            if bad:
                raise WhatIfError(f"{_where(name, show_key)} 中的 {'、'.join(map(str, bad))} 不是可能的取值；"
                                  f"可取：{'、'.join(allowed)}")
    for low, high in PARAMETER_RANGES:
        if (low in changed or high in changed) and low in values and high in values and values[low] > values[high]:
            raise WhatIfError(f"{_where(low, show_key)}（{values[low]}）大于{_where(high, show_key)}（{values[high]}），这样没有人在范围内")


_PARAM = re.compile(r"\$([a-z_]+)")


def _code_only(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))


def rule_parameters(rules: list[engine.Rule], shared: list[tuple[str, str, list[str]]]) -> dict[str, set[str]]:
    """The parameters each rule reads: in its own SQL, and in the shared views it reads (a view
    may read another made before it)."""
    views = engine.shared_view_reads((_code_only(text) for text, _, _ in shared), _PARAM)
    out: dict[str, set[str]] = {}
    for rule in rules:
        sql = _code_only(rule.sql) + "\n" + (rule.skip_unless or "")
        out[rule.code] = engine.reads_through(sql, _PARAM, views) - {"run_date"}
    return out


# ---------------------------------------------------------------- the warehouse, read-only

_ENSURE = re.compile(r"^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([a-z_]+)\b", re.IGNORECASE)


class ReadOnlyWarehouse:
    """A read-only DuckDB connection the rules engine can run on. The engine makes sure of the
    warehouse's tables (`CREATE TABLE IF NOT EXISTS links …`) before it reads them, which DuckDB
    refuses on a read-only file even when they exist: such statements are answered here when
    the tables exist (a night that was linked and ruled has them all). Everything else goes to
    DuckDB, whose read-only mode refuses any write."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql: str, parameters: object = None) -> Any:
        statements = [s for s in sql.split(";") if s.strip()]
        names = [m.group(1) for m in (_ENSURE.match(s) for s in statements) if m]
        if statements and len(names) == len(statements):
            missing = [n for n in names if not self._con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [n]).fetchone()[0]]
            if missing:
                raise WhatIfError("数据仓库中没有这一天完整的比对结果，无法推演")
            return self._con
        return self._con.execute(sql, parameters) if parameters is not None else self._con.execute(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _holder_command(home: Home) -> str:
    from bidui.runlock import lock_path

    try:
        text = lock_path(home.root).read_text(encoding="utf-8")
    except OSError:
        return ""
    return text.partition("command=")[2].strip()


def _open(home: Home, temp_dir: str) -> duckdb.DuckDBPyConnection:
    from bidui.connectors.warehouse import MEMORY_LIMIT

    if not home.warehouse.exists():
        raise WhatIfError("还没有数据仓库（没有运行过比对），无法推演")
    try:
        con = duckdb.connect(str(home.warehouse), read_only=True, config={
            "memory_limit": os.environ.get("BIDUI_DUCKDB_MEMORY", MEMORY_LIMIT), "temp_directory": temp_dir})
    except duckdb.IOException as e:
        if "lock" in str(e).lower():  # a writer outside the run lock (an old `rules export`)
            raise WarehouseBusy(BUSY) from None
        raise
    con.execute("SET enable_progress_bar = false")
    from bidui.connectors import snapshot_rows

    snapshot_rows.create_macros(con, temporary=True)  # as this code reads (the stored ones may be older)
    # Links stored by an earlier version name their records by row; a nightly run (which may
    # write) names them by identity when it opens the warehouse. Read as they are, every record
    # would read unlinked.
    (old,), = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'links' AND column_name = 'source_row'"
                          ).fetchall()
    if old:
        con.close()
        raise WhatIfError("数据仓库由旧版本建立，请先运行一次夜间比对后再推演")
    return con


def _published(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    from bidui.connectors import warehouse as wh

    return wh.query(con, "SELECT rule_code, subject_key, household_code, evidence_key, township_code FROM rule_hits "
                         "WHERE night = ?", [night])


def _keyed(frame: pl.DataFrame) -> pl.DataFrame:
    if not frame.height:
        return pl.DataFrame(schema={k: pl.String for k in [*KEY, "township_code"]})
    return frame.select([pl.col(k).cast(pl.String).fill_null("") for k in KEY]
                        + [pl.col("township_code").cast(pl.String).fill_null("")]).unique(KEY)


def _in_scope(frame: pl.DataFrame, scope_code: str | None) -> pl.DataFrame:
    if not scope_code:
        return frame
    return frame.filter(pl.col("township_code").str.starts_with(scope.prefix(scope_code)))


def _counts(frame: pl.DataFrame, by: str, name: str) -> dict[str, int]:
    return dict(frame.group_by(by).len(name).iter_rows()) if frame.height else {}


def _ledger(home: Home):
    """The home's ledger, or None when it has none yet (a night ruled but never published)."""
    from bidui.clues.db import ledger_url, open_ledger

    if not home.ledger.exists() and not os.environ.get("BIDUI_LEDGER_URL"):
        return None
    return open_ledger(ledger_url(home.ledger), migrate=False)


def _past_truth(home: Home, codes: list[str], scope_code: str | None) -> dict[str, tuple[int, int]]:
    """(verified, 属实) of each rule's clues in the ledger, under the scope."""
    from sqlalchemy import case, func, select

    from bidui.clues.models import Clue
    from bidui.clues.states import CLOSED, TRUE_OUTCOMES, VERIFIED

    ledger = _ledger(home) if codes else None
    if ledger is None:
        return {}
    try:
        with ledger.read() as s:
            q = select(Clue.rule_code, func.count(), func.sum(case((Clue.outcome.in_(TRUE_OUTCOMES), 1), else_=0))).where(
                Clue.rule_code.in_(codes), Clue.status.in_([VERIFIED, CLOSED])).group_by(Clue.rule_code)
            if scope_code:
                q = q.where(scope.under(Clue.township_code, scope_code))
            return {code: (int(n), int(t or 0)) for code, n, t in s.execute(q)}
    finally:
        ledger.close()


def _published_night(home: Home, night: date) -> bool:
    from bidui.clues.models import PublishRun

    ledger = _ledger(home)
    if ledger is None:
        return False
    try:
        with ledger.read() as s:
            return s.get(PublishRun, night) is not None
    finally:
        ledger.close()


def replay(home: Home, night: date, changes: dict[str, Any], scope_code: str | None = None) -> WhatIf:
    """The night's rules with `changes` to their parameters, against the night as published."""
    from bidui.runlock import RunInProgress, run_lock

    cfg = config.load(home.config)
    base = dict(cfg.get("rules", {}).get("parameters", {}))
    unknown = [k for k in changes if k not in base]
    if unknown:
        raise WhatIfError(f"没有名为 {unknown[0]} 的规则参数")
    rules, shared = engine.load_rules(home.root / "rules")
    disabled = set(cfg.get("rules", {}).get("disabled", []))
    enabled = [r for r in rules if r.code not in disabled]
    reads = rule_parameters(enabled, shared)
    changed = {k for k, v in changes.items() if v != base[k]}
    replayed = [r.code for r in enabled if reads[r.code] & changed] if changes else [r.code for r in enabled]
    result = WhatIf(night, {k: changes[k] for k in sorted(changes)})
    new_cfg = dict(cfg)
    new_cfg["rules"] = {**cfg.get("rules", {}), "parameters": {**base, **changes}}
    temp_dir = tempfile.mkdtemp(prefix="bidui-whatif-")
    try:
        with run_lock(home.root, wait=0, command=COMMAND):
            con = _open(home, temp_dir)
            try:
                ran = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'rule_runs'").fetchone()[0]
                if not ran or not con.execute("SELECT count(*) FROM rule_runs WHERE night = ?", [night]).fetchone()[0]:
                    raise WhatIfError(f"{night.isoformat()} 没有比对结果，无法推演（请选择已比对的日期）")
                published = _in_scope(_keyed(_published(con, night)), scope_code)
                outcomes: list[engine.RuleOutcome] = []
                now = published.clear()
                if replayed:
                    run = engine.run_rules(ReadOnlyWarehouse(con), night, new_cfg, home.root / "rules",  # type: ignore[arg-type]
                                           only=replayed)
                    outcomes = run.outcomes
                    now = _in_scope(_keyed(run.hits), scope_code)
            finally:
                con.close()
    except RunInProgress:
        raise WarehouseBusy(BUSY_WHATIF if _holder_command(home) == COMMAND else BUSY) from None
    except duckdb.Error as e:
        # The night's warehouse lacks something a replay reads without writing (e.g. a hukou
        # snapshot whose identities were never worked out): said, not a traceback.
        raise WhatIfError("这一天的比对数据不完整，无法推演（请先完整运行这一天的比对）") from e
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        from bidui.clues.present import rule_title

        raise WhatIfError(f"规则“{rule_title(failed[0].code)}”推演出错，请联系数据专班")
    skipped = {o.code for o in outcomes if o.status == "skipped"}
    replayed_set = set(replayed) - skipped
    before = published.filter(pl.col("rule_code").is_in(list(replayed_set)))
    added = now.join(before, on=KEY, how="anti")
    removed = before.join(now, on=KEY, how="anti")
    kept = published.filter(~pl.col("rule_code").is_in(list(replayed_set)))
    after = pl.concat([kept, now]) if now.height else kept
    truth = _past_truth(home, sorted(code for code in replayed_set if reads[code] & changed), scope_code)
    from bidui.clues.present import rule_title

    pub_rule, after_rule = _counts(published, "rule_code", "n"), _counts(after, "rule_code", "n")
    add_rule, rem_rule = _counts(added, "rule_code", "n"), _counts(removed, "rule_code", "n")
    titles = {r.code: r.title for r in rules}
    for code in [r.code for r in enabled] + sorted(set(pub_rule) - {r.code for r in enabled}):
        verified, true_ = truth.get(code, (0, 0))
        result.by_rule[code] = {
            "title": titles.get(code) or rule_title(code), "published": pub_rule.get(code, 0), "whatif": after_rule.get(code, 0),
            "added": add_rule.get(code, 0), "removed": rem_rule.get(code, 0),
            "replayed": code in replayed_set, "affected": bool(reads.get(code, set()) & changed),
            "verified": verified, "true": true_, "true_rate": round(true_ / verified, 4) if verified else None}
    for code in skipped:
        result.notes.append(f"规则“{rule_title(code)}”这一天缺少输入数据，未运行，按发布时计。")
    pub_t, after_t = _counts(published, "township_code", "n"), _counts(after, "township_code", "n")
    add_t, rem_t = _counts(added, "township_code", "n"), _counts(removed, "township_code", "n")
    for town in sorted(set(pub_t) | set(after_t)):
        result.by_township[town] = {"name": "", "county": "", "published": pub_t.get(town, 0), "whatif": after_t.get(town, 0),
                                    "added": add_t.get(town, 0), "removed": rem_t.get(town, 0)}
    _name_townships(home, result)
    if not changes and (result.added or result.removed):
        result.notes.append("未改任何参数，结果却与发布时不同：这一天比对之后，规则或其配置已有改动。")
    if changes and not changed:
        result.notes.append("所填取值与当前配置相同，没有改动。")
    if not _published_night(home, night):
        result.notes.append(f"{night.isoformat()} 的比对结果尚未发布为线索，对照的是当天的比对结果。")
    return result


def _name_townships(home: Home, result: WhatIf) -> None:
    from sqlalchemy import select

    from bidui.clues.models import Division

    ledger = _ledger(home) if result.by_township else None
    if ledger is None:
        return
    try:
        with ledger.read() as s:
            codes = set(result.by_township) | {scope.county_of(c) for c in result.by_township if scope.is_code(c)}
            names = dict(s.execute(select(Division.code, Division.name).where(Division.code.in_(codes))).all())
    finally:
        ledger.close()
    for code, row in result.by_township.items():
        row["name"] = names.get(code) or "（未知乡镇）"
        row["county"] = names.get(scope.county_of(code), "") if scope.is_code(code) else ""


# ---------------------------------------------------------------- the web app's worker

def _worker_main() -> None:
    """`python -m bidui.rules.whatif`: one request from stdin (JSON: home, night, scope, set as
    {parameter: text}), one answer on stdout (JSON: the result, or {"error": …, "busy": bool}).
    Exit 0 either way: the answer says which."""
    from bidui.workers import die_with_parent

    request = json.loads(sys.stdin.buffer.read())
    die_with_parent(int(request["parent"]))
    home = Home(Path(request["home"]))
    try:
        cfg = config.load(home.config)
        params = cfg.get("rules", {}).get("parameters", {})
        changes = parse_settings([f"{k}={v}" for k, v in request.get("set", {}).items()], params, show_key=False)
        night = date.fromisoformat(request["night"])
        answer = replay(home, night, changes, request.get("scope") or None).to_dict()
    except WarehouseBusy as e:
        answer = {"error": str(e), "busy": True}
    except (WhatIfError, ValueError) as e:
        answer = {"error": str(e), "busy": False}
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    _worker_main()
