"""数据质量通报: per department and dataset, what a night's data in force looked like — rows
delivered and rejected (by reason), invalid ID numbers by kind, names with placeholders or
annotations, records linked exactly / fuzzily / not at all, ID numbers several persons share,
empty required values — and the change since the previous and the first night.

Counted in the warehouse after linking (the nightly run keeps the counts in its report, which the
ledger copies for the web page); the name defects are bidui.matching.quality's, not counted again.
Counts are stored by code (`bad_check`, `placeholder`) and worded in bidui.clues.present."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import duckdb

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.datasets import BY_CODE, DATASETS, Dataset
from bidui.matching import link_nights
from bidui.matching.carry import unpaired
from bidui.matching.link_nights import on_night
from bidui.names import DEFECT_PATTERNS, any_defect_pattern

# Reject reasons (bidui.connectors.normalise writes them in English for the log) by kind: the
# first prefix that a reason starts with names it.
REJECT_KINDS: tuple[tuple[str, str], ...] = (
    ("required value missing", "required_missing"), ("impossible date", "bad_date"), ("not a date", "bad_date"),
    ("date before", "early_date"), ("date after", "future_date"), ("not a finite number", "not_number"),
    ("not a number", "not_number"), ("negative", "negative"), ("over the ceiling", "over_ceiling"),
    ("not a year", "not_year"), ("not a 12-digit division code", "bad_code"), ("unknown value", "unknown_value"),
    ("unknown vehicle type", "unknown_value"), ("control character", "control_character"), ("longer than", "too_long"),
    ("Excel error value", "excel_error"),
)
# ID kinds the bulletin counts: the invalid statuses of bidui.ids, and two forms that normalise
# to a valid number but that a department should not send (the old 15 digits, full-width digits).
ID_KINDS = ("bad_check", "bad_length", "bad_province", "bad_birth_date", "excel_mangled", "too_few_digits", "missing",
            "old_15", "full_width")
LINK_KINDS = ("exact", "fuzzy", "none")
# Counts summed per department, in the order the bulletin shows them; the first is the headline.
TOTALS = ("problem_rows", "rows", "delivered", "rejected_rows", "invalid_ids", "name_defects", "exact", "fuzzy",
          "none", "shared_ids", "empty_required")


def reject_kind_sql(column: str = "reason") -> str:
    whens = " ".join(f"WHEN starts_with({column}, {wh.sql_text(p)}) THEN '{k}'" for p, k in REJECT_KINDS)
    return f"CASE {whens} ELSE 'other' END"


def id_kind_sql(c: str) -> str:
    """The row's ID problem (NULL: none). 15 digits once stripped and valid: the old form; full-width
    digits or X: typed on a Chinese input method. A valid number written as it is kept (18 ASCII
    characters) has neither, and is most rows: told by one comparison, not by the two patterns
    (0.50 → 0.13 s over the large prefecture's 4.1 M hukou rows)."""
    return (f"CASE WHEN {c}_status <> 'valid' THEN {c}_status WHEN {c}_raw = {c} THEN NULL "
            f"WHEN length(regexp_replace(coalesce({c}_raw, ''), '[\\s\u3000''\"]', '', 'g')) = 15 THEN 'old_15' "
            f"WHEN regexp_matches(coalesce({c}_raw, ''), '[０-９Ｘｘ]') THEN 'full_width' END")


def _name_defect_sql(n: str) -> str:
    """Any of the name defects, as one pattern: one pass of RE2 over each name, not one per defect
    (0.8 s against 1.2 s for the counts of the large prefecture's 4.1 M hukou rows)."""
    return f"regexp_matches(coalesce({n}_raw, ''), {wh.sql_text(any_defect_pattern())})"


def _empty(col: str) -> str:
    return f'"{col}" IS NULL'


def _required(ds: Dataset) -> list[str]:
    return list(ds.required)


def _latest_loads(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, dict]:
    """The night's load log by dataset (the last entry: a held file forced later is what counts)."""
    rows = con.execute("SELECT dataset, file, status, rows_read, rows_loaded, rows_rejected, message FROM load_log "
                       "WHERE night = ? AND dataset IS NOT NULL ORDER BY load_id", [night]).fetchall()
    out: dict[str, dict] = {}
    for dataset, file, status, read, loaded, rejected, message in rows:
        out[dataset] = {"file": file or "", "status": status, "delivered": int(read or 0), "loaded": int(loaded or 0),
                        "rejected_tonight": int(rejected or 0), "message": message or ""}
    return out


def _kind(method: str) -> str:
    return "fuzzy" if method in ("fuzzy", "review") else "none" if method == "none" else "exact"


def night_links(con: duckdb.DuckDBPyConnection, night: date, dataset: str | None = None,
                tallies: list[tuple[str, str, int, int]] | None = None) -> dict[str, dict]:
    """{dataset: {"kinds": {exact, fuzzy, none: links}, "digest": (links, sum of their hashes)}} of
    the night (of one dataset): from `tallies` (the link step's, `link_nights.tallies`) when given,
    else one scan of the links for every dataset, not two per dataset."""
    out: dict[str, dict] = {}
    for code, method, n, total in (link_nights.tallies(con, night) if tallies is None else tallies):
        if dataset is not None and code != dataset:
            continue
        entry = out.setdefault(code, {"kinds": {}, "digest": (0, 0)})
        kind = _kind(method)
        entry["kinds"][kind] = entry["kinds"].get(kind, 0) + int(n)
        entry["digest"] = (entry["digest"][0] + int(n), entry["digest"][1] + int(total))
    return out


def dataset_quality(con: duckdb.DuckDBPyConnection, ds: Dataset, night: date, snap: date | None,
                    defects: dict[str, int], links: dict[str, dict] | None = None,
                    apart: set[str] | None = None) -> dict:
    """The counts of one dataset's snapshot in force on the night (empty counts when none is).
    `links`: `night_links` of the night, `apart`: `carry.unpaired` of it (read here when not given)."""
    out: dict = {"rows": 0, "rejected_rows": 0, "rejects": {}, "ids": {}, "names": dict(defects), "links": {},
                 "shared_ids": int(defects.get("shared_ids", 0)), "empty": {}, "problem_rows": 0}
    out["names"].pop("shared_ids", None)
    out["names"].pop("second_numbers", None)
    if snap is None:
        return out
    ref = ds.persons[0] if ds.persons else None
    out |= snapshot_counts(con, ds, snap)
    if ref:
        mine = (links if links is not None else night_links(con, night, ds.code)).get(
            ds.code, {"kinds": {}, "digest": (0, 0)})
        out["links"] = dict(mine["kinds"])
        # hukou's own is the number two persons hold (bidui.matching.quality); links made on another
        # snapshot's rows than the one in force now are not paired with these (carry.unpaired)
        if ds.code != "hukou" and ds.code not in (unpaired(con, night) if apart is None else apart):
            out["shared_ids"] = _shared_ids(con, ds, night, snap, mine["digest"])
    return out


def _shared_ids(con: duckdb.DuckDBPyConnection, ds: Dataset, night: date, snap: date, digest: tuple[int, int]) -> int:
    """Valid numbers under which the linker found records of several persons (a child's record
    under a parent's number, one number typed for two people). Counted again only when the
    snapshot or its records' persons changed: joining the snapshot with the night's links took
    3 s a night at the large size, and a later night carries most links as they were; a digest of
    the links (each record and its person, as a multiset) costs a tenth of that."""
    c = ds.persons[0].id_column
    # Of two persons under one number at most one is the number itself: only the numbers with a
    # record linked to someone else (few) are grouped (1.17 → 0.51 s for the large prefecture's
    # 4.1 M medical-insurance rows).
    sql = f"""
        WITH pairs AS MATERIALIZED (
            SELECT d.{c} AS id, l.person_key FROM {snapshot_rows.at(ds.code, '?')} d
            JOIN links l ON {on_night('?::DATE', 'l.')} AND l.dataset = ? AND l.row_id = d.row_id
            WHERE d.{c}_status = 'valid' AND l.person_key IS NOT NULL)
        SELECT count(*) FROM (
            SELECT id FROM pairs SEMI JOIN (SELECT DISTINCT id FROM pairs WHERE person_key <> id) o USING (id)
            GROUP BY id HAVING count(DISTINCT person_key) > 1)"""
    n, total = digest
    counted = wh.counted_once(con, ds.code, snap, f"{sql}\x1elinks {n}:{total}",
                              lambda _load: {"shared_ids": int(con.execute(sql, [snap, night, ds.code]).fetchone()[0])})
    return int(counted["shared_ids"])


def _counts_sql(ds: Dataset, rows: str | None = None) -> str:
    """One scan of a snapshot (or of `rows`, a table expression): per ID kind (NULL: none), rows,
    rows with a rejected value, rows with any problem the bulletin counts, and empty required values."""
    required = _required(ds)
    ref = ds.persons[0] if ds.persons else None
    problems = ["rejected_columns IS NOT NULL", *(_empty(c) for c in required)]
    if ref:
        problems += ["k IS NOT NULL", _name_defect_sql(ref.name_column)]
    kind = id_kind_sql(ref.id_column) if ref else "NULL::VARCHAR"
    selects = ["k", "count(*)", "count(*) FILTER (WHERE rejected_columns IS NOT NULL)",
               "count(*) FILTER (WHERE " + " OR ".join(f"({p})" for p in problems) + ")",
               *(f"count(*) FILTER (WHERE {_empty(c)})" for c in required)]
    return (f"SELECT {', '.join(selects)} FROM (SELECT *, {kind} AS k FROM {rows or snapshot_rows.at(ds.code, '?')}) "
            "GROUP BY k ORDER BY k")


def snapshot_counts(con: duckdb.DuckDBPyConnection, ds: Dataset, snap: date) -> dict:
    """rows, rejected_rows, problem_rows, empty {column: n}, rejects {kind: n} and ids {kind: n} of
    the dataset's snapshot of `snap`, counted once per load (the scan is most of the bulletin's time),
    from the snapshot before's when it was counted (they add up over rows; `rejects`, read from the
    load's rejects, is read again)."""
    sql = _counts_sql(ds)
    required = _required(ds)
    rejects_sql = f"SELECT {reject_kind_sql()} AS k, count(*) FROM rejects WHERE load_id = ? GROUP BY k ORDER BY k"

    def rows_of(groups: list[tuple]) -> dict:
        rows, rejected, problem, *empty = [sum(int(g[i]) for g in groups) for i in range(1, 4 + len(required))]
        return {"rows": rows, "rejected_rows": rejected, "problem_rows": problem,
                "empty": {c: n for c, n in zip(required, empty, strict=True) if n},
                "ids": {g[0]: int(g[1]) for g in groups if g[0] is not None}}

    def rejects(load: int | None) -> dict:
        return {k: int(n) for k, n in con.execute(rejects_sql, [load]).fetchall()} if load else {}

    def count(load: int | None) -> dict:
        return rows_of(con.execute(sql, [snap]).fetchall()) | {"rejects": rejects(load)}

    def shape(counts: dict, load: int) -> dict:
        return counts | {"empty": {c: counts["empty"][c] for c in required if counts["empty"].get(c)},
                         "ids": {k: n for k, n in sorted(counts["ids"].items()) if n}, "rejects": rejects(load)}

    return wh.counted_once(con, ds.code, snap, sql + rejects_sql, count,
                           by_rows=lambda rows: rows_of(con.execute(_counts_sql(ds, rows)).fetchall()), shape=shape)


def _has_links(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'links'").fetchone()[0])


def night_bulletin(con: duckdb.DuckDBPyConnection, night: date, defects: dict[str, dict[str, int]],
                   tallies: list[tuple[str, str, int, int]] | None = None) -> dict[str, dict]:
    """{dataset: counts} for the night: its delivery (file, outcome, rows read) from the load log and
    the quality of the snapshot in force. `defects`: bidui.matching.quality.night_defects of the
    night; `tallies`: its links' (`link_nights.tallies`: the link step's), read here when not given."""
    loads = _latest_loads(con, night)
    snaps = wh.in_force(con, night)
    if not _has_links(con):  # a warehouse never linked: nothing linked, nothing shared
        con.execute("CREATE TEMP TABLE IF NOT EXISTS links (night DATE, dataset VARCHAR, row_id BIGINT, "
                    "person_key VARCHAR, method VARCHAR, last_night DATE)")
    out: dict[str, dict] = {}
    links, apart = night_links(con, night, tallies=tallies), unpaired(con, night)
    for ds in DATASETS:
        load = loads.get(ds.code)
        snap = snaps.get(ds.code)
        if load is None and snap is None:
            continue
        entry = {"department": ds.department, "file": "", "status": "none", "delivered": 0, "loaded": 0,
                 "rejected_tonight": 0, "message": "", **(load or {}), "snapshot": snap.isoformat() if snap else ""}
        entry |= dataset_quality(con, ds, night, snap, defects.get(ds.code, {}), links, apart)
        if entry["status"] == "duplicate":  # the same bytes again: delivered what is in force
            entry["delivered"] = entry["rows"]
        out[ds.code] = entry
    return out


def totals(entry: dict) -> dict[str, int]:
    """One dataset's counts as the flat totals a department's are summed from."""
    links = entry.get("links", {})
    return {"problem_rows": entry.get("problem_rows", 0), "rows": entry.get("rows", 0),
            "delivered": entry.get("delivered", 0), "rejected_rows": entry.get("rejected_rows", 0),
            "invalid_ids": sum(entry.get("ids", {}).values()), "name_defects": sum(entry.get("names", {}).values()),
            "exact": links.get("exact", 0), "fuzzy": links.get("fuzzy", 0), "none": links.get("none", 0),
            "shared_ids": entry.get("shared_ids", 0), "empty_required": sum(entry.get("empty", {}).values())}


def by_department(bulletin: dict[str, dict]) -> dict[str, dict[str, int]]:
    """{department: totals} (departments in the order of bidui.datasets)."""
    out: dict[str, dict[str, int]] = {}
    for ds in DATASETS:
        if ds.code not in bulletin:
            continue
        t = out.setdefault(ds.department, dict.fromkeys(TOTALS, 0))
        for k, v in totals(bulletin[ds.code]).items():
            t[k] += v
    return out


def departments() -> list[str]:
    return list(dict.fromkeys(ds.department for ds in DATASETS))


def datasets_of(department: str) -> list[Dataset]:
    return [ds for ds in DATASETS if ds.department == department]


@dataclass
class Problem:
    """One value a department should correct: where it is and why (the value as delivered; masked
    only where it is shown)."""

    dataset: str
    file: str
    row: int
    column: str
    value: str | None
    reason: str  # a kind: reject_<kind>, id_<kind>, name_<kind>


def problems(con: duckdb.DuckDBPyConnection, night: date, department: str) -> Iterable[Problem]:
    """The department's problem values in the snapshots in force on the night, file by file and
    row by row: rejected values, ID numbers invalid or in an old or full-width form, names with a
    placeholder or an annotation (or pinyin, an invisible character)."""
    snaps = wh.in_force(con, night)
    for ds in datasets_of(department):
        snap = snaps.get(ds.code)
        if snap is None:
            continue
        table = snapshot_rows.at(ds.code, "?")
        parts = [(f"SELECT r.file, r.source_row, r.column_name, r.value, 'reject_' || {reject_kind_sql('r.reason')} "
                  "FROM rejects r JOIN snapshots s ON s.load_id = r.load_id WHERE s.dataset = ? AND s.snapshot_date = ?",
                  [ds.code, snap])]
        for ref in ds.persons:
            c, n = ref.id_column, ref.name_column
            parts.append((f"SELECT source_file, source_row, '{c}', {c}_raw, 'id_' || k FROM "
                          f"(SELECT *, {id_kind_sql(c)} AS k FROM {table}) WHERE k IS NOT NULL",
                          [snap]))
            for kind, pattern in DEFECT_PATTERNS.items():
                parts.append((f"SELECT source_file, source_row, '{n}', {n}_raw, 'name_{kind}' FROM {table} "
                              f"WHERE regexp_matches(coalesce({n}_raw, ''), {wh.sql_text(pattern)})",
                              [snap]))
        sql = " UNION ALL ".join(f"({q})" for q, _ in parts) + " ORDER BY 1, 2, 3, 5"
        args = [a for _, params in parts for a in params]
        for file, row, column, value, reason in con.execute(sql, args).fetchall():
            yield Problem(ds.code, file, int(row), column, value, reason)


def column_kind(dataset: str, column: str) -> str:
    ds = BY_CODE.get(dataset)
    if ds is None:
        return "text"
    return next((c.kind for c in ds.columns if c.name == column), "text")
