"""What the rules must look at again tonight, and which hits of their last night hold (issue 18).

A night's rule hits are those of the night the rules last ran (`before`) wherever nothing a rule
reads changed since, and the rules are evaluated again only on the rest: the register households
(`rules_households`), the hukou households the missed-inclusion rules look at (`rules_hukou`) and
their persons (`rules_persons`), temp tables that `bidui.rules.views.create(scoped=True)` narrows
every dataset to. The rules' SQL is not changed: the same files run on fewer rows.

A household is in scope when, since `before`:
- a row of a dataset in force changed what it says or the person it is linked to (rows compared
  by their content hash with their link, wherever they stand in the file: a row that only moved is
  not a change, as no rule chooses between records by their place — `engine.PLACE_IN_RECORD` —
  unless they say the same, nor lists them in file order), or, for the datasets whose rows' places
  a rule reads (`BY_PLACE`), moved;
- the identity of a hukou row changed (一号多人 / 一人多号);
- one of its hits quotes a record of a dataset whose snapshot changed that is neither kept in
  place nor only moved (`_moved_records`; a carried hit quotes either as of tonight's snapshot and
  row, as a rule would: a quoted record names its night, file and row), or that another record
  saying the same could now be chosen over (`_kept_in_place`, `_moved_records`: by its place);
- a member's age changed, or a record's date crossed the edge of a window a rule declares
  (`-- dated:` in its header: `<dataset>.<column> [within <parameter> days|years]`, `year`).
Then closed over what ties households together: a person's households (一人多户), a hukou
household's persons and every person's hukou households, and the hukou numbers a household change
(分户, 迁移) names — a household split's clue depends on whether its former household is registered.

The rules are evaluated whole instead (`plan` gives None and why) on a first night, after a
change of any rule file, parameter or of the code that makes hits (`fingerprint`), when that night
was linked again since its rules ran, when a rule ran then and not now or the other way round, at
a new year, when a dataset without persons (divisions) changed, a
dataset came or went, a snapshot of `before` was stored again since, a rule of the home's own is
enabled or a rule compares the run date without declaring how, and when the scope is most of the
register (evaluating it whole is then cheaper).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import date

import duckdb

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.datasets import BY_CODE, DATASETS, Dataset
from bidui.matching import carry
from bidui.matching.link import LINKS_SCHEMA
from bidui.matching.link_nights import literal, on_night
from bidui.matching.records import IDENTITY_DDL
from bidui.rules.views import BIRTH_SQL, age_sql, linked_select

# Bumped when what decides the scope changes: a night whose rules ran under another version is
# not carried from.
VERSION = "1"
# Datasets whose rows' places (source_row) a rule reads besides their content: the register's
# (clue subjects of members without an ID are named by their row; the first row of a member
# listed twice), hukou's (the row kept of a person listed twice), dangerous-house appraisals' (the
# latest of one day). A row of these that moved is a change.
BY_PLACE = ("register_members", "register_households", "hukou", "dangerous_housing")
# Columns that name a hukou household a row ties its person to.
HUKOU_NUMBER_COLUMNS = ("hukou_number", "from_hukou_number", "to_hukou_number")
# Above this share of the register's households in scope, the rules are evaluated whole.
MOST = 0.5

STATE_DDL = """
CREATE TABLE IF NOT EXISTS rule_states (
    night DATE PRIMARY KEY, fingerprint VARCHAR NOT NULL, loads VARCHAR NOT NULL, statuses VARCHAR NOT NULL,
    before DATE, households BIGINT, hukou_households BIGINT, persons BIGINT, seconds DOUBLE, reason VARCHAR,
    link_run VARCHAR
)"""


def _ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(STATE_DDL)
    con.execute("ALTER TABLE rule_states ADD COLUMN IF NOT EXISTS link_run VARCHAR")


def link_run(con: duckdb.DuckDBPyConnection, night: date) -> str:
    """The night's link run as stored (a night linked again since its rules ran has another)."""
    con.execute(LINKS_SCHEMA)
    row = con.execute("SELECT * FROM link_runs WHERE night = ?", [night]).fetchone()
    return json.dumps(row, default=str)
SCOPE_TABLES = ("rules_persons", "rules_households", "rules_hukou", "rules_credit")

_DATED = re.compile(r"^([a-z_]+)\.([a-z_]+)(?:\s+within\s+([a-z_]+)\s+(days|years))?$")


@dataclass(frozen=True)
class Dated:
    dataset: str
    column: str
    window: str | None = None  # a parameter's name
    unit: str = "days"


@dataclass
class Plan:
    before: date  # the night whose hits are carried where nothing changed
    households: int
    hukou_households: int
    persons: int
    seconds: float
    of: int = 0  # the register households in force tonight, and those in scope that left it


def dated(header: str | None, path: str) -> list[Dated] | None:
    """A rule's `-- dated:` header: the dated columns it compares with the run date (`year`, for
    the run date's year alone, adds none). None when it has no such header."""
    if header is None:
        return None
    out = []
    for part in (p.strip() for p in header.split(",") if p.strip()):
        if part == "year":
            continue
        m = _DATED.match(part)
        if not m or m.group(1) not in BY_CODE or m.group(2) not in {c.name for c in BY_CODE[m.group(1)].columns}:
            raise ValueError(f"{path}: dated: {part!r} is not `<dataset>.<column> [within <parameter> days|years]`")
        out.append(Dated(m.group(1), m.group(2), m.group(3), m.group(4) or "days"))
    return out


# The code that makes a night's hits besides the rule files: another version of it may make
# other hits from the same data, so a night's hits made by it are not carried by another.
HIT_MAKING_MODULES = ("bidui.rules.engine", "bidui.rules.views", "bidui.rules.changed", "bidui.names",
                      "bidui.connectors.snapshot_rows", "bidui.matching.records")


def code_digest() -> str:
    import importlib
    import inspect

    import bidui

    h = hashlib.sha256(getattr(bidui, "__version__", "").encode())
    for name in HIT_MAKING_MODULES:
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    return h.hexdigest()


def fingerprint(texts: list[str], parameters: dict, enabled: list[str]) -> str:
    """What tonight's hits are computed by: the rule files, the parameters, the rules enabled and
    the code that runs them (`code_digest`)."""
    h = hashlib.sha256((VERSION + code_digest()).encode())
    for text in texts:
        h.update(b"\0" + text.encode())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    h.update(json.dumps(sorted(enabled)).encode())
    return h.hexdigest()


def loads_json(loads: dict[str, tuple[date, int]]) -> str:
    return json.dumps({k: [v[0].isoformat(), v[1]] for k, v in sorted(loads.items())})


def remember(con: duckdb.DuckDBPyConnection, night: date, fp: str, statuses: dict[str, str], plan: Plan | None,
             reason: str) -> None:
    """The night's state, for the next night to carry from (inside the hits' transaction)."""
    _ensure_state(con)
    con.execute("DELETE FROM rule_states WHERE night = ?", [night])
    con.execute("INSERT INTO rule_states VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [night, fp, loads_json(wh.in_force_loads(con, night)), json.dumps(statuses, sort_keys=True),
                 plan.before if plan else None, plan.households if plan else None,
                 plan.hukou_households if plan else None, plan.persons if plan else None,
                 plan.seconds if plan else None, reason, link_run(con, night)])


def plan(con: duckdb.DuckDBPyConnection, night: date, fp: str, statuses: dict[str, str],
         declared: dict[str, list[Dated]], parameters: dict) -> tuple[Plan | None, str]:
    """The scope of tonight's changes (its temp tables made), or None and why the rules must be
    evaluated whole."""
    start = time.perf_counter()
    _ensure_state(con)
    con.execute(LINKS_SCHEMA)
    con.execute(IDENTITY_DDL)
    later = con.execute("SELECT count(*) FROM rule_states WHERE night > ?", [night]).fetchone()[0]
    if later:
        return None, "a later night's rules have run"
    row = con.execute("SELECT night, fingerprint, loads, statuses, link_run FROM rule_states WHERE night < ? "
                      "ORDER BY night DESC LIMIT 1", [night]).fetchone()
    if row is None:
        return None, "no night before"
    before, fp_before, loads_before, statuses_before, linked_before = row
    if linked_before != link_run(con, before):
        return None, "that night was linked again since its rules ran"
    if fp_before != fp:
        return None, "the rules, their parameters or bidui changed"
    if json.loads(statuses_before) != statuses:
        return None, "a rule ran then and not now, or the other way round"
    if before.year != night.year:
        return None, "a new year"
    was, now = wh.in_force_loads(con, before), wh.in_force_loads(con, night)
    if loads_json(was) != loads_before:
        return None, "a snapshot of that night was stored again since"
    if carry.unpaired(con, night):
        return None, "a snapshot in force tonight is not the one tonight was linked with"
    if set(was) != set(now):
        return None, "a dataset came or went"
    changed = [ds for ds in DATASETS if ds.code in now and was[ds.code] != now[ds.code]]
    if any(not ds.persons for ds in changed):
        return None, "the divisions changed"
    if any(con.execute(f"SELECT count(*) FROM ds_{ds.code} WHERE row_hash IS NULL").fetchone()[0] for ds in changed):
        return None, "rows stored before their content was hashed"
    for name in (*SCOPE_TABLES, "rules_requote", REQUOTED_ROWS, "rules_register"):
        wh.drop_temp(con, name)
    con.execute("CREATE TEMP TABLE rules_persons (ident VARCHAR)")
    con.execute("CREATE TEMP TABLE rules_households (household_code VARCHAR)")
    con.execute("CREATE TEMP TABLE rules_hukou (hukou_number VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE rules_credit_changed (credit_code VARCHAR)")
    # what a record quoted in a carried hit, of a snapshot that changed, says of tonight's (`carry_sql`)
    con.execute("CREATE TEMP TABLE rules_requote (old_load BIGINT, snapshot_date DATE, load_id BIGINT, file VARCHAR)")
    for ds in changed:
        con.execute("INSERT INTO rules_requote SELECT ?, snapshot_date, load_id, file FROM snapshots "
                    "WHERE dataset = ? AND snapshot_date = ?", [was[ds.code][1], ds.code, now[ds.code][0]])
    _links_changed(con, before, night)
    # The whole register with its persons, read once: ages, the households a person is in, who is
    # registered (bidui.rules.views).
    con.execute("CREATE OR REPLACE TEMP TABLE rules_register (household_code VARCHAR, ident VARCHAR, person_key VARCHAR, "
                "id_number VARCHAR, id_number_status VARCHAR)")
    if "register_members" in now:
        members = linked_select(BY_CODE["register_members"], night, now["register_members"][0])
        con.execute(f"INSERT INTO rules_register SELECT household_code, ident, person_key, id_number, id_number_status "
                    f"FROM ({members})")
    relinked = {d for (d,) in con.execute("SELECT DISTINCT dataset FROM rules_links_changed").fetchall()}
    for ds in DATASETS:
        if not ds.persons or ds.code not in now:
            continue
        # The same snapshot on both nights and no link of it changed (the spine has none): no row
        # came, went or was linked otherwise, and its scan finds nothing.
        if was[ds.code][0] == now[ds.code][0] and (ds.code == "hukou" or ds.code not in relinked):
            continue
        _seed_changed_rows(con, ds, was[ds.code][0], now[ds.code][0])
    wh.drop_temp(con, "rules_links_changed")
    if "business_investors" in now:  # an enterprise that changed: its investors' clues read it
        investors = linked_select(BY_CODE["business_investors"], night, now["business_investors"][0],
                                  "d.credit_code IN (SELECT credit_code FROM rules_credit_changed)")
        _add(con, "rules_persons", "ident", f"SELECT ident FROM ({investors})")
    wh.drop_temp(con, "rules_credit_changed")
    if "hukou" in now:
        _seed_identities(con, was["hukou"][0], now["hukou"][0])
    _seed_quoting(con, before, night, changed, was, now)
    _seed_ages(con, before, night, now)
    for d in sorted({d for columns in declared.values() for d in columns}, key=str):
        if d.dataset in now:
            _seed_dated(con, d, before, night, now[d.dataset][0], parameters)
    households = _close(con, night, now)
    register = (snapshot_rows.at("register_households", literal(now["register_households"][0]))
                if "register_households" in now else None)
    total = con.execute(f"SELECT count(*) FROM {register}").fetchone()[0] if register else 0
    # Households that left the register tonight are in scope (their clues close) but not among
    # tonight's: counted with them, so that the share is of one set (it read "46 of 45").
    if total:
        total += con.execute(f"SELECT count(*) FROM rules_households ANTI JOIN (SELECT household_code FROM {register}) "
                             "USING (household_code)").fetchone()[0]
    if total and households > MOST * total:
        return None, f"{households} of {total} households in scope"
    hukou, persons = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("rules_hukou", "rules_persons"))
    return Plan(before, households, hukou, persons, time.perf_counter() - start, total), ""


def _add(con: duckdb.DuckDBPyConnection, table: str, column: str, select: str) -> None:
    con.execute(f"INSERT INTO {table} SELECT DISTINCT {column} FROM ({select}) WHERE {column} IS NOT NULL")


# SQL: a stored row (its table's alias with its dot) is in force on its dataset's snapshot of a date.
_in = snapshot_rows.held_sql


def _links_changed(con: duckdb.DuckDBPyConnection, before: date, night: date) -> None:
    """The links that hold on one of the two nights and not on the other (one scan of the links)."""
    b, n = literal(before), literal(night)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE rules_links_changed AS
        SELECT dataset, row_id, role, person_key, method, score, id_name_conflict, explanation,
               {on_night(n)} AS tonight
        FROM links WHERE {on_night(n)} <> {on_night(b)}""")


def _seed_changed_rows(con: duckdb.DuckDBPyConnection, ds: Dataset, snap_before: date, snap_now: date) -> None:
    """Persons (households, hukou households) of the rows that came or went between the two snapshots, or
    whose link did, less those that only moved: each row that came is matched with one that went
    by what it says and the link it has (and, for `BY_PLACE`, its place)."""
    names = {col.name for col in ds.columns}
    numbers = [c for c in HUKOU_NUMBER_COLUMNS if c in names]
    extra = [*numbers, *(["household_code"] if ds.code.startswith("register_") else []),
             *(["credit_code"] if ds.code == "businesses" else [])]
    cols = "".join(f", r.{c}" for c in extra)
    table = f"ds_{ds.code}"
    if ds.code == "hukou":
        # The spine is not linked: a row that came or went is the change; its persons are its ID
        # and its identity on that side's snapshot (a number two persons share: N~<hukou number>),
        # its hukou household its number (identities that changed alone: `_seed_identities`).
        changed = " UNION ALL ".join(
            f"SELECT r.id_number AS person, i.person_key AS own{cols} FROM {table} r "
            f"LEFT JOIN hukou_identity i ON i.snapshot_date = {literal(snap)} AND i.source_row = r.source_row "
            f"WHERE {_in(snap, 'r.')} AND NOT {_in(other, 'r.')}"
            for snap, other in ((snap_now, snap_before), (snap_before, snap_now)))
    else:
        ref = ds.persons[0]
        # The rows that only moved, set aside before they are grouped: a row stored again at its new
        # place keeps its identity, says the same, and when no link of it changed it would be found
        # on both sides alike and cancel (the large night 2's vehicles: 551,001 of 552,837 rows).
        # Not in BY_PLACE, where a row that moved is a change.
        aside = ""
        if ds.code not in BY_PLACE and snap_now != snap_before:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE rules_moved AS
                SELECT row_id FROM ({snapshot_rows.moved_sql(ds.code, snap_before, snap_now)})
                WHERE row_id NOT IN (SELECT row_id FROM rules_links_changed
                                     WHERE dataset = '{ds.code}' AND role = '{ref.role}' AND row_id IS NOT NULL)""")
            aside = "ANTI JOIN rules_moved m ON m.row_id = r.row_id"

        def side(snap: date, other_snap: date, sign: int, tonight: bool) -> str:
            what = (f"{sign} AS side, r.row_hash AS h, r.{ref.id_column} AS own, "
                    f"l.person_key AS person, l.method, l.score, l.id_name_conflict, l.explanation, r.source_row{cols}")
            on = f"l.dataset = '{ds.code}' AND l.role = '{ref.role}' AND l.row_id = r.row_id"
            # rows of this night's snapshot not in the other's, with this night's link; rows of both
            # whose link holds on one night only
            kept = f"""
                SELECT {what} FROM {table} r JOIN rules_links_changed l ON l.tonight = {tonight} AND {on}
                WHERE {_in(snap, 'r.')} AND {_in(other_snap, 'r.')}"""
            if snap == other_snap:
                return kept
            # A row that came is stored after the other snapshot (its row groups are skipped
            # otherwise). Its link, when it changed, is one made since; a row that only moved keeps
            # its identity and so its link (bidui.matching.link_nights), found on neither side: the
            # two cancel. A link missing otherwise counts the row as changed, which only widens the scope.
            after = f"r.snapshot_date > {literal(other_snap)} AND " if snap > other_snap else ""
            return f"""
                SELECT {what} FROM {table} r {aside} LEFT JOIN rules_links_changed l ON l.tonight = {tonight} AND {on}
                WHERE {after}{_in(snap, 'r.')} AND NOT {_in(other_snap, 'r.')}
                UNION ALL {kept}"""
        place = ", source_row" if ds.code in BY_PLACE else ""
        keys = f"h, own, person, method, score, id_name_conflict, explanation{place}{''.join(', ' + c for c in extra)}"
        changed = f"""
            SELECT {keys} FROM ({side(snap_now, snap_before, 1, True)} UNION ALL
                                {side(snap_before, snap_now, -1, False)})
            GROUP BY ALL HAVING sum(side) <> 0"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE rules_changed_rows AS {changed}")
    wh.drop_temp(con, "rules_moved")
    _add(con, "rules_persons", "person", "SELECT person FROM rules_changed_rows")
    _add(con, "rules_persons", "own", "SELECT own FROM rules_changed_rows")
    for c in extra:
        target = {"household_code": "rules_households", "credit_code": "rules_credit_changed"}.get(c, "rules_hukou")
        _add(con, target, c, f"SELECT {c} FROM rules_changed_rows")
    wh.drop_temp(con, "rules_changed_rows")


def _seed_identities(con: duckdb.DuckDBPyConnection, snap_before: date, snap_now: date) -> None:
    """Persons and hukou households of the hukou rows whose identity exception came or went."""
    if snap_before == snap_now:
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE rules_identity_changed AS
        SELECT any_value(snapshot_date) AS snapshot_date, source_row, person_key FROM hukou_identity
        WHERE snapshot_date IN ({literal(snap_before)}, {literal(snap_now)})
        GROUP BY source_row, person_key, is_primary HAVING count(*) = 1""")
    _add(con, "rules_persons", "person_key", "SELECT person_key FROM rules_identity_changed")
    for snap in (snap_before, snap_now):
        rows = (f"SELECT r.id_number, r.hukou_number FROM ds_hukou r SEMI JOIN rules_identity_changed i "
                f"ON i.source_row = r.source_row AND i.snapshot_date = {literal(snap)} WHERE {_in(snap, 'r.')}")
        _add(con, "rules_persons", "id_number", rows)
        _add(con, "rules_hukou", "hukou_number", rows)
    wh.drop_temp(con, "rules_identity_changed")


def in_scope(alias: str = "") -> str:
    """SQL: a hit (`alias`: its table's alias with its dot) is about a household in scope: a
    register household's, or for a missed-inclusion hit (no household code), a hukou household's."""
    return (f"CASE WHEN coalesce({alias}household_code, '') <> '' THEN {alias}household_code IN "
            f"(SELECT household_code FROM rules_households) "
            f"ELSE coalesce({alias}hukou_number IN (SELECT hukou_number FROM rules_hukou), FALSE) END")


# A record quoted whole in a hit's evidence (`to_json` of a snapshot row) begins with where it is:
# its snapshot's night, load and file, and its row. A carried hit quoting a record kept in place
# says the new snapshot's night, load and file, as the rule would write it tonight. The load says
# which dataset the record is of (an investor's row is quoted as evidence of businesses).
QUOTED_PLACE = (r'^\{"snapshot_date":"[0-9-]+","load_id":(-?[0-9]+),"source_file":"(?:[^"\\]|\\.)*",'
                r'"source_row":(-?[0-9]+),')


def _quoted(before: date) -> str:
    """The hits of `before` quoting a record, with the record's load and row."""
    return (f"SELECT *, TRY_CAST(regexp_extract(evidence_record, '{QUOTED_PLACE}', 1) AS BIGINT) AS quoted_load, "
            f"TRY_CAST(regexp_extract(evidence_record, '{QUOTED_PLACE}', 2) AS BIGINT) AS quoted_row "
            f"FROM rule_hits WHERE night = {literal(before)} AND contains(evidence_record, '\"source_row\":')")


def _seed_quoting(con: duckdb.DuckDBPyConnection, before: date, night: date, changed: list[Dataset], was: dict,
                  now: dict) -> None:
    """The households of the hits of `before` that quote a record of a dataset whose snapshot changed
    and that is not kept in place there (the rule would quote it from another row, or not at all),
    or a record this cannot place — unless the record only moved (`_moved_records`: quoted from its
    new row by `carry_sql`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE rules_quoting AS SELECT household_code, hukou_number, quoted_load, "
                f"quoted_row FROM ({_quoted(before)})")
    kept = " UNION ALL ".join(_kept_in_place(ds, was[ds.code], now[ds.code][0]) for ds in changed)
    _moved_records(con, before, night, [ds for ds in changed if ds.code not in BY_PLACE and ds.persons], was, now)
    if kept:
        kept += f" UNION ALL SELECT old_load, old_row FROM {REQUOTED_ROWS}"
    changed_loads = ", ".join(str(was[ds.code][1]) for ds in changed) or "NULL"
    moved = (f"SELECT household_code, hukou_number FROM rules_quoting q WHERE q.quoted_load IS NULL OR q.quoted_row IS NULL "
             f"OR (q.quoted_load IN ({changed_loads})"
             + (f" AND (q.quoted_load, q.quoted_row) NOT IN (SELECT * FROM ({kept}))" if kept else "") + ")")
    con.execute(f"CREATE OR REPLACE TEMP TABLE rules_moved AS {moved}")
    _add(con, "rules_households", "household_code", "SELECT household_code FROM rules_moved WHERE household_code <> ''")
    _add(con, "rules_hukou", "hukou_number", "SELECT hukou_number FROM rules_moved WHERE coalesce(household_code, '') = ''")
    wh.drop_temp(con, "rules_moved", "rules_quoting")


def _kept_in_place(ds: Dataset, was: tuple[date, int], snap_now: date) -> str:
    """SQL: the records quoted (rules_quoting) of the dataset's snapshot `was` (night, load) still at
    their row in that of `snap_now`. Outside BY_PLACE, not one with a row saying what it says (its
    row hash) that came or went: the rules choose between records that say the same by their place,
    so a twin that moved ahead of it, or came there, would be quoted instead. (In BY_PLACE such a
    twin is a change of its own, by its place: `_seed_changed_rows`.)"""
    snap_was, load = was
    at_row = (f"SELECT q.quoted_load, q.quoted_row FROM rules_quoting q JOIN ds_{ds.code} r ON r.source_row = q.quoted_row "
              f"AND {_in(snap_was, 'r.')} AND {_in(snap_now, 'r.')} WHERE q.quoted_load = {load}")
    if ds.code in BY_PLACE:
        return at_row
    return (f"{at_row} AND r.row_hash NOT IN (SELECT row_hash FROM ds_{ds.code} t WHERE t.row_hash IS NOT NULL "
            f"AND {_in(snap_was, 't.')} <> {_in(snap_now, 't.')})")


# The records quoted in carried hits that only moved in their file: (old_load, old_row) → new_row.
REQUOTED_ROWS = "rules_requoted_rows"


def _moved_records(con: duckdb.DuckDBPyConnection, before: date, night: date, datasets: list[Dataset],
                   was: dict, now: dict) -> None:
    """REQUOTED_ROWS: of the records the hits of `before` quote (rules_quoting), those of `datasets`
    not in tonight's snapshot at their row but at another, alone in saying what they say on each
    night (the row hash, among every row in force; and the delivered row's fingerprint: its
    unmapped cells and rejects too, which the quoted record shows), and linked to the same person
    in the same way. A whole evaluation would find the same record for the same person and quote it
    from its new row: the rules read no dataset's places but those of BY_PLACE (vehicles, businesses
    and hukou changes come in another order every night; their hits' households were all looked at
    again for it)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {REQUOTED_ROWS} (old_load BIGINT, old_row BIGINT, new_row BIGINT)")
    for ds in datasets:
        (snap_was, load_was), snap_now = was[ds.code], now[ds.code][0]
        quoted = f" AND r.source_row IN (SELECT quoted_row FROM rules_quoting WHERE quoted_load = {load_was})"
        con.execute(f"""
            INSERT INTO {REQUOTED_ROWS}
            WITH went AS ({_rows_apart(con, ds, snap_was, snap_now, before, quoted)}),
                 -- (narrowed to what the quoted records say before counting: counted over all that
                 -- came, a million vehicle and hukou-change rows cost 1.1 s instead of 0.18)
                 came AS (SELECT * FROM ({_rows_apart(con, ds, snap_now, snap_was, night)}) c
                          SEMI JOIN went w USING (row_hash, raw_hash)),
                 unique_came AS (SELECT * FROM came QUALIFY count(*) OVER (PARTITION BY row_hash, raw_hash) = 1),
                 unique_went AS (SELECT * FROM ({_rows_apart(con, ds, snap_was, snap_now, before)}) w
                                 SEMI JOIN came c USING (row_hash, raw_hash)
                                 QUALIFY count(*) OVER (PARTITION BY row_hash, raw_hash) = 1),
                 pairs AS (
                     SELECT w.source_row AS old_row, c.source_row AS new_row, row_hash
                     FROM unique_went w JOIN unique_came c USING (row_hash, raw_hash)
                     WHERE w.source_row IN (SELECT source_row FROM went)
                       AND w.person_key IS NOT DISTINCT FROM c.person_key AND w.method IS NOT DISTINCT FROM c.method
                       AND w.score IS NOT DISTINCT FROM c.score AND w.id_name_conflict IS NOT DISTINCT FROM c.id_name_conflict
                       AND w.explanation IS NOT DISTINCT FROM c.explanation),
                 -- Records that say the same (one row hash; a date written two ways) are quoted
                 -- alike but for their place, which then chooses between them (engine.PLACE_IN_RECORD):
                 -- one is requoted only when no other row in force on either night says what it says.
                 -- (Those among the rows that came or went are not enough: a twin may stay in place.)
                 alone AS (
                     SELECT row_hash FROM ds_{ds.code} r SEMI JOIN pairs USING (row_hash)
                     WHERE {_in(snap_was, 'r.')} OR {_in(snap_now, 'r.')}
                     GROUP BY row_hash
                     HAVING count(*) FILTER (WHERE {_in(snap_was, 'r.')}) = 1
                        AND count(*) FILTER (WHERE {_in(snap_now, 'r.')}) = 1)
            SELECT {load_was}, old_row, new_row FROM pairs SEMI JOIN alone USING (row_hash)""")


def _rows_apart(con: duckdb.DuckDBPyConnection, ds: Dataset, snap: date, other: date, linked: date,
                where: str = "") -> str:
    """SQL: the rows of dataset `ds`'s snapshot of `snap` not in that of `other`, with what they say
    (row_hash, raw_hash) and their link on the night `linked`."""
    ref = ds.persons[0]
    # a row stored after the other snapshot (its row groups are skipped otherwise)
    after = f"r.snapshot_date > {literal(other)} AND " if snap > other else ""
    return f"""
        SELECT r.source_row, r.row_hash, r.raw_hash, l.person_key, l.method, l.score, l.id_name_conflict, l.explanation
        FROM ds_{ds.code} r LEFT JOIN links l ON l.dataset = '{ds.code}' AND l.role = '{ref.role}'
             AND l.row_id = r.row_id AND {on_night(literal(linked), 'l.')}
        WHERE {after}{_in(snap, 'r.')} AND NOT {_in(other, 'r.')} AND r.raw_hash IS NOT NULL{where}"""


def carry_sql(ran: list[str]) -> str:
    """INSERT of the hits of the night before (parameters: tonight, that night) about the households
    out of scope, of the rules that ran: a quoted record of a dataset whose snapshot changed (kept
    in place, or only moved: REQUOTED_ROWS; else the household would be in scope) is quoted as of
    tonight's snapshot, from its row there."""
    codes = ", ".join(f"'{c}'" for c in ran) or "NULL"
    # what follows the place (which ends with the comma after the row)
    rest = f"regexp_replace(h.evidence_record, '{QUOTED_PLACE}', '')"
    requoted = ("'{\"snapshot_date\":' || to_json(q.snapshot_date) || ',\"load_id\":' || q.load_id || "
                "',\"source_file\":' || to_json(q.file) || ',\"source_row\":' || coalesce(m.new_row, h.quoted_row) || ',' || "
                + rest)
    return f"""
        INSERT INTO rule_hits
        SELECT h.* EXCLUDE (quoted_load, quoted_row) REPLACE (
                   ?::DATE AS night, CASE WHEN q.old_load IS NOT NULL THEN {requoted} ELSE h.evidence_record END AS evidence_record)
        FROM (SELECT *, TRY_CAST(regexp_extract(evidence_record, '{QUOTED_PLACE}', 1) AS BIGINT) AS quoted_load,
                     TRY_CAST(regexp_extract(evidence_record, '{QUOTED_PLACE}', 2) AS BIGINT) AS quoted_row
              FROM rule_hits WHERE night = ?) h
        LEFT JOIN rules_requote q ON q.old_load = h.quoted_load
        LEFT JOIN {REQUOTED_ROWS} m ON m.old_load = h.quoted_load AND m.old_row = h.quoted_row
        WHERE h.rule_code IN ({codes}) AND NOT ({in_scope('h.')})"""


def _seed_ages(con: duckdb.DuckDBPyConnection, before: date, night: date, now: dict) -> None:
    """The households of the members whose age changed between the two nights."""
    if "register_members" not in now:
        return
    _add(con, "rules_households", "household_code",
         f"SELECT household_code FROM (SELECT m.household_code, {BIRTH_SQL} AS birth FROM rules_register m) "
         f"WHERE ({age_sql('birth', literal(before))}) IS DISTINCT FROM ({age_sql('birth', literal(night))})")


def _seed_dated(con: duckdb.DuckDBPyConnection, d: Dated, before: date, night: date, snap: date,
                parameters: dict) -> None:
    """The persons of the rows whose date crossed the run date, or the far edge of the window, between
    the two nights."""
    b, n, col = literal(before), literal(night), f"d.{d.column}"
    crossed = [f"({col} > {b} AND {col} <= {n})"]
    if d.window:
        value = parameters[d.window]
        span = f"to_{d.unit}({int(value)})"
        crossed.append(f"({col} > {b} - {span} AND {col} <= {n} - {span})")
    rows = linked_select(BY_CODE[d.dataset], night, snap, " OR ".join(crossed))
    _add(con, "rules_persons", "ident", f"SELECT ident FROM ({rows})")


def _close(con: duckdb.DuckDBPyConnection, night: date, now: dict) -> int:
    """The scope closed over what ties households together; the register households in it.

    - Register households: those of the persons in scope, closed over the persons they share (a
      member of two households is one clue subject, 一人多户), and those of the persons of a
      household change (分户) that names a hukou household in scope (the clue depends on whether
      that household is registered).
    - Hukou households: those of the persons in scope (the missed-inclusion rules read each of
      their persons).
    - Persons: theirs too, for narrowing the datasets."""
    if "register_members" in now:
        con.execute("CREATE OR REPLACE TEMP TABLE rules_member_edges AS SELECT DISTINCT household_code, ident "
                    "FROM rules_register WHERE ident IS NOT NULL AND household_code IS NOT NULL")
    for table, column in (("rules_persons", "ident"), ("rules_households", "household_code"), ("rules_hukou", "hukou_number")):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL")
    if "hukou" in now:
        hukou = linked_select(BY_CODE["hukou"], night, now["hukou"][0],
                              "d.id_number IN (SELECT ident FROM rules_persons) OR d.source_row IN (SELECT source_row "
                              "FROM hukou_identity i WHERE i.snapshot_date = d.snapshot_date AND "
                              "i.person_key IN (SELECT ident FROM rules_persons))")
        _add(con, "rules_hukou", "hukou_number", f"SELECT hukou_number FROM ({hukou}) SEMI JOIN rules_persons USING (ident) "
                                                 "ANTI JOIN rules_hukou USING (hukou_number)")
    if "hukou_changes" in now:
        changes = linked_select(BY_CODE["hukou_changes"], night, now["hukou_changes"][0],
                                "d.from_hukou_number IN (SELECT hukou_number FROM rules_hukou) "
                                "OR d.to_hukou_number IN (SELECT hukou_number FROM rules_hukou)")
        _add(con, "rules_persons", "ident", f"SELECT ident FROM ({changes}) ANTI JOIN rules_persons USING (ident)")
    if "register_members" in now:
        steps = ["INSERT INTO rules_households SELECT DISTINCT household_code FROM rules_member_edges e "
                 "SEMI JOIN rules_persons p ON p.ident = e.ident ANTI JOIN rules_households h USING (household_code)",
                 "INSERT INTO rules_persons SELECT DISTINCT ident FROM rules_member_edges e "
                 "SEMI JOIN rules_households h USING (household_code) ANTI JOIN rules_persons p USING (ident)"]
        while sum(con.execute(step).fetchone()[0] for step in steps):
            pass
        wh.drop_temp(con, "rules_member_edges")
    if "hukou" in now:
        # every person of the hukou households in scope (only to narrow the datasets by)
        rows = linked_select(BY_CODE["hukou"], night, now["hukou"][0], "d.hukou_number IN (SELECT hukou_number FROM rules_hukou)")
        _add(con, "rules_persons", "ident", f"SELECT ident FROM ({rows}) ANTI JOIN rules_persons USING (ident)")
    # an investor's clue reads the enterprise's row, found by its credit code
    con.execute("CREATE OR REPLACE TEMP TABLE rules_credit (credit_code VARCHAR)")
    if "business_investors" in now:
        investors = linked_select(BY_CODE["business_investors"], night, now["business_investors"][0])
        _add(con, "rules_credit", "credit_code", f"SELECT credit_code FROM ({investors}) SEMI JOIN rules_persons USING (ident)")
    return con.execute("SELECT count(*) FROM rules_households").fetchone()[0]
