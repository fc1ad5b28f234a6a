"""What changed in each dataset since its previous snapshot, row by row (the run report's 新增 /
变更 / 删除 / 未变): rows are compared by `row_hash` (what the row says, whatever the delivery's
form), and a row that is not the same is told new or changed by what it is about
(`Dataset.row_identity`: the person's ID number, a plate, a credit code…).

A dataset whose file did not come tonight, or came again with the same bytes, keeps its snapshot:
all of its rows are carried, and nothing is counted. A comparison is made once per pair of
snapshots (`warehouse.counted_once`): a later run of the night reads it."""

from __future__ import annotations

from datetime import date

import duckdb

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.datasets import DATASETS, Dataset
from bidui.matching.link_nights import literal


def _rows_sql(ds: Dataset, snap: date, columns: tuple[str, ...] | list[str] = ()) -> str:
    """The snapshot's rows as (h, columns…; by default its identity): the stored hash, or the same
    hash computed for rows stored before hashes were kept."""
    cols = ", ".join(f'"{c}"' for c in (columns or ds.row_identity))
    return (f"SELECT coalesce(row_hash, {wh.row_hash_sql(ds)}) AS h, {cols} "
            f"FROM ds_{ds.code}_at(DATE '{snap.isoformat()}')")


def compare_rows_sql(ds: Dataset, before: date, after: date, columns: list[str]) -> str:
    """The rows (these columns, and `came`: false for a row that went) that went from `before`'s
    snapshot or came in `after`'s."""
    cols = ", ".join(f'"{c}"' for c in columns)
    return f"""
        WITH a AS ({_rows_sql(ds, before, columns)}), b AS ({_rows_sql(ds, after, columns)})
        SELECT {cols}, FALSE AS came FROM a ANTI JOIN b ON a.h = b.h
        UNION ALL
        SELECT {cols}, TRUE FROM b ANTI JOIN a ON a.h = b.h"""


def compare_kept_sql(ds: Dataset, before: date, after: date, columns: list[str]) -> str:
    """`compare_rows_sql` of two snapshots of the dataset with none between them, read by the rows
    each does not share with the other: a row kept from one to the next (bidui.connectors.
    snapshot_rows) says the same on both sides, so only the rows of `before` not kept and the rows
    stored for `after` can have gone or come (645 rows of hukou's 4.1 M on a night, instead of
    joining both snapshots whole). A row that did is still looked for among all the other
    snapshot's rows, as `compare_rows_sql` does (another row may say the same)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    h = f"coalesce(row_hash, {wh.row_hash_sql(ds)})"
    b_, a_, table = literal(before), literal(after), f"ds_{ds.code}"

    def hashes(night: str, of: str) -> str:
        # Filters a scan can apply and a narrow read: a row's hash is computed from its columns
        # only where it has none stored (rows of an early version).
        return (f"SELECT row_hash AS h FROM {table}_at({night}) WHERE row_hash IN (SELECT h FROM {of}) "
                f"UNION ALL SELECT h FROM (SELECT {h} AS h FROM {table}_at({night}) WHERE row_hash IS NULL) "
                f"WHERE h IN (SELECT h FROM {of})")

    # A row that only moved in its file is stored again with its identity (warehouse.ROW_ID) and
    # what it says: it is among both sides, and it neither went nor came. Those pairs are set
    # aside first, by identity (the large night 2's vehicles: 551,001 of 552,837 rows), and the
    # rest looked for among all the other snapshot's rows as before.
    return f"""
        WITH a0 AS (SELECT {h} AS h, row_id, {cols} FROM {table} WHERE snapshot_date = {b_} AND last_date IS NULL
                    UNION ALL
                    SELECT {h} AS h, row_id, {cols} FROM {table} WHERE snapshot_date <= {b_} AND last_date = {b_}),
             b0 AS (SELECT {h} AS h, row_id, {cols} FROM {table} WHERE snapshot_date = {a_}),
             moved AS ({snapshot_rows.moved_sql(ds.code, before, after)}),
             a AS (SELECT * FROM a0 ANTI JOIN moved m ON m.row_id = a0.row_id),
             b AS (SELECT * FROM b0 ANTI JOIN moved m ON m.row_id = b0.row_id),
             a_all AS ({hashes(b_, 'b')}),
             b_all AS ({hashes(a_, 'a')})
        SELECT {cols}, FALSE AS came FROM a ANTI JOIN b_all ON a.h = b_all.h
        UNION ALL
        SELECT {cols}, TRUE FROM b ANTI JOIN a_all ON a_all.h = b.h"""


# What the linking steps read of hukou's changed rows (bidui.matching.carry, relinks, records): the
# run report's counts ask for the same columns, so that one comparison serves them all.
COMPARED_COLUMNS = {"hukou": ["id_number", "hukou_number"]}


def _with_identity(ds: Dataset, columns: list[str]) -> list[str]:
    return [*columns, *(c for c in ds.row_identity if c not in columns)]


def changed_rows(con: duckdb.DuckDBPyConnection, ds: Dataset, before: date, after: date, columns: list[str]) -> str:
    """A temp table of `compare_rows_sql`'s rows, made once per connection for a pair of loads:
    the carry plan, the links-changed report and the run report's counts (`snapshot_changes`) all
    compare hukou's same two snapshots (1.1 s to 2.5 s each at the large size). It holds the
    dataset's row identity too, whatever columns were asked for. Keyed by the snapshots' loads, so
    a night ingested again is compared again."""
    columns = _with_identity(ds, columns)
    loads = [con.execute("SELECT max(load_id) FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                         [ds.code, d]).fetchone()[0] for d in (before, after)]
    name = "_".join(["changed", ds.code, f"{before:%Y%m%d}", str(loads[0]), f"{after:%Y%m%d}", str(loads[1]), *columns])
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]).fetchone()[0]:
        (between,), = con.execute("SELECT count(*) FROM snapshots WHERE dataset = ? AND snapshot_date > ? "
                                  "AND snapshot_date < ?", [ds.code, before, after]).fetchall()
        compare = compare_kept_sql if before < after and not between else compare_rows_sql
        con.execute(f'CREATE TEMP TABLE "{name}" AS {compare(ds, before, after, columns)}')
    return f'"{name}"'


def compare_sql(ds: Dataset, changed: str) -> str:
    """new, changed, removed rows of the later snapshot against the earlier, from their
    `changed_rows`: a row is unchanged when a row of the other snapshot says the same (duplicates
    count as their content); of the rest, a row is changed when a row the other snapshot lost is
    about the same thing."""
    on = " AND ".join(f'x."{c}" = y."{c}"' for c in ds.row_identity)
    return f"""
        WITH came AS (SELECT * FROM {changed} WHERE came), gone AS (SELECT * FROM {changed} WHERE NOT came)
        SELECT (SELECT count(*) FROM came x ANTI JOIN gone y ON {on}) AS new,
               (SELECT count(*) FROM came x SEMI JOIN gone y ON {on}) AS changed,
               (SELECT count(*) FROM gone x ANTI JOIN came y ON {on}) AS removed,
               (SELECT count(*) FROM came) AS came"""


def snapshot_changes(con: duckdb.DuckDBPyConnection, ds: Dataset, night: date) -> dict:
    """The dataset's rows on the night, against its previous snapshot:
    {"since": date or None, "rows", "new", "changed", "removed", "unchanged", "carried"}. `carried`:
    the snapshot in force is an earlier night's (no file tonight, or the same bytes again)."""
    in_force = wh.in_force(con, night).get(ds.code)
    if in_force is None:
        return {}
    rows = con.execute("SELECT rows FROM snapshots WHERE dataset = ? AND snapshot_date = ?", [ds.code, in_force]).fetchone()[0]
    if in_force < night:
        return {"since": in_force.isoformat(), "rows": rows, "carried": True}
    before = wh.last_snapshot(con, ds.code, night)
    if before is None:
        return {"since": None, "rows": rows, "new": rows, "changed": 0, "removed": 0, "unchanged": 0, "carried": False}
    columns = COMPARED_COLUMNS.get(ds.code, [])
    how = f"{compare_sql(ds, '')}\n-- {compare_rows_sql(ds, before[0], night, _with_identity(ds, columns))}"
    (before_load,), = con.execute("SELECT load_id FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                                  [ds.code, before[0]]).fetchall()

    def count(_load: int | None) -> dict:
        new, changed, removed, came = con.execute(compare_sql(ds, changed_rows(con, ds, before[0], night, columns))).fetchone()
        return {"new": int(new), "changed": int(changed), "removed": int(removed), "unchanged": int(rows - came)}

    # Kept by tonight's load; the earlier snapshot's load is part of what was counted.
    counts = wh.counted_once(con, ds.code, night, f"{how}\n-- against load {before_load}", count)
    return {"since": before[0].isoformat(), "rows": rows, **counts, "carried": False}


def night_changes(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, dict]:
    """`snapshot_changes` of every dataset with a snapshot in force on the night."""
    return {ds.code: found for ds in DATASETS if (found := snapshot_changes(con, ds, night))}
