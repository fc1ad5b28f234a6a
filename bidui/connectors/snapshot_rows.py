"""A dataset's snapshot as readers see it: `ds_<code>_at(night)`, a table macro.

A row of a snapshot table (ds_<code>) is stored for the night it was delivered (`snapshot_date`)
and may hold on later snapshots of its dataset, through `last_date`, when it came again at the same
row of the file with the same content: NULL, that snapshot only; a date, through the snapshot of
that date; OPEN, through every later snapshot until one does not deliver it again. A row stored
for the dataset's last snapshot is open, so that a night that delivers most rows again writes only
the rows that went (`keep` closes them) and the rows that came — not a new `last_date` for every
row kept (4.1 M hukou rows: 1 s, and their commit). Every reader asks for one snapshot through the
macro, never `WHERE snapshot_date = ...`: the macro gives each row as the snapshot of that night
would have stored it — its night, load and file are that snapshot's — so what a reader sees does
not depend on whether a row was stored again or kept.

A night with no snapshot of the dataset has no rows: a kept row shows on the nights of the
dataset's snapshots (the snapshots table), not on the nights between them.
"""

from __future__ import annotations

from datetime import date

import duckdb

from bidui.datasets import DATASETS
from bidui.matching.link_nights import literal

# The `last_date` of a row that holds on every later snapshot of its dataset until one does not
# deliver it again (a real date: a reader that fetches it gets a date).
OPEN = date(9999, 12, 31)


def at(code: str, night_sql: str) -> str:
    """The table expression of dataset `code`'s snapshot of `night_sql` (a SQL date: a literal, `?`
    or a column of an outer query is not allowed — a table macro takes a constant or a parameter)."""
    return f"ds_{code}_at({night_sql})"


def in_force_sql(code: str, night_sql: str) -> str:
    """SQL, a scalar: the date of dataset `code`'s snapshot in force on `night_sql` (an SQL date
    expression; a column of an outer query is allowed): its last snapshot stored for that night or
    before, NULL when none was."""
    return (f"(SELECT max(s.snapshot_date) FROM snapshots s WHERE s.dataset = '{code}' "
            f"AND s.snapshot_date <= {night_sql})")


def held_sql(snap: date, alias: str = "") -> str:
    """SQL: a stored row (`alias`: its table's alias with its dot) is in its dataset's snapshot of
    `snap` (stored for it, or kept into it)."""
    s = literal(snap)
    return f"({alias}snapshot_date <= {s} AND coalesce({alias}last_date, {alias}snapshot_date) >= {s})"


def moved_sql(code: str, before: date, after: date) -> str:
    """SQL: the identities (`row_id`) of dataset `code`'s rows that only moved in their file from
    its snapshot of `before` to that of `after`: a row of `after`'s and not `before`'s with the
    identity and the row hash of a row of `before`'s and not `after`'s (stored again at its new
    place, saying the same: warehouse.ROW_ID). A row without a stored hash is not among them.
    Where only what rows say counts, such pairs neither went nor came."""
    table = f"ds_{code}"
    return (f"SELECT x.row_id FROM {table} x JOIN {table} y ON y.row_id = x.row_id AND y.row_hash = x.row_hash "
            f"WHERE x.snapshot_date > {literal(before)} AND {held_sql(after, 'x.')} AND NOT {held_sql(before, 'x.')} "
            f"AND {held_sql(before, 'y.')} AND NOT {held_sql(after, 'y.')}")


def macro_sql(code: str, table: str | None = None, snapshots: str = "snapshots", identity: bool = True) -> str:
    """The body of dataset `code`'s macro (parameter `night`) over its snapshot table `table` (default
    `ds_<code>`) with its `last_date` and the `snapshots` table: the rows stored for the night, and
    those kept into it as that night's snapshot would have stored them. Without `identity` (a
    warehouse of an earlier version, read-only) the records' identities are NULL."""
    table = table or f"ds_{code}"
    ident = "" if identity else ", NULL::BIGINT AS row_id"
    return f"""
        SELECT * EXCLUDE (last_date){ident} FROM {table} WHERE snapshot_date = night
        UNION ALL BY NAME
        SELECT night::DATE AS snapshot_date, s.load_id, s.file AS source_file,
               d.* EXCLUDE (snapshot_date, load_id, source_file, last_date){ident}
        FROM {table} d, (SELECT load_id, file FROM {snapshots} WHERE dataset = '{code}' AND snapshot_date = night) s
        WHERE d.snapshot_date < night AND night <= d.last_date"""


def create_macros(con: duckdb.DuckDBPyConnection, *, temporary: bool = False) -> None:
    """The macros of every dataset: stored in the warehouse, replaced when the warehouse is set up
    by other code than last time (`warehouse.connect`: so they match the code that reads through
    them, and any connection to the file has them); `temporary`, on this connection only (a
    read-only one)."""
    columns = con.execute("SELECT table_name, bool_or(column_name = 'last_date'), bool_or(column_name = 'row_id') "
                          "FROM duckdb_columns() WHERE table_name LIKE 'ds\\_%' ESCAPE '\\' GROUP BY ALL").fetchall()
    ranged = {table: last for table, last, _ in columns}  # table: whether it has last_date
    identified = {table for table, _, ident in columns if ident}  # tables with row_id
    for ds in DATASETS:
        table = f"ds_{ds.code}"
        if table not in ranged:  # (a dataset added since a read-only warehouse was made: read as before, it fails)
            continue
        create = f"CREATE OR REPLACE {'TEMP ' if temporary else ''}MACRO {table}_at(night) AS TABLE"
        if not ranged[table]:  # a warehouse of an earlier version, read-only (what-if): every row is its night's
            ident = "" if table in identified else ", NULL::BIGINT AS row_id"
            con.execute(f"{create} SELECT *{ident} FROM {table} WHERE snapshot_date = night")
            continue
        con.execute(f"{create} {macro_sql(ds.code, identity=table in identified)}")


def forget(con: duckdb.DuckDBPyConnection, code: str, night: date) -> None:
    """Dataset `code` has no rows on `night` any more; its other snapshots keep theirs (inside the
    caller's transaction, before the night's snapshot is stored again or its row in the snapshots
    table goes). A row kept through the night onto later snapshots holds again from the next one
    (as stored there: that snapshot's night, load and file); one kept into it holds until the
    snapshot before it."""
    table, n = f"ds_{code}", literal(night)
    before, after = con.execute(
        "SELECT max(snapshot_date) FILTER (WHERE snapshot_date < ?), min(snapshot_date) FILTER (WHERE snapshot_date > ?) "
        "FROM snapshots WHERE dataset = ?", [night, night, code]).fetchone()
    if after is not None:
        a = literal(after)
        load, file = con.execute("SELECT load_id, file FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                                 [code, after]).fetchone()
        # Stored before the night and kept past it: the part after it, stored as of the next snapshot.
        con.execute(f"INSERT INTO {table} SELECT * REPLACE ({a} AS snapshot_date, ?::BIGINT AS load_id, "
                    f"?::VARCHAR AS source_file) FROM {table} WHERE snapshot_date < {n} AND last_date > {n}",
                    [load, file])
        # Stored on the night and kept past it: as of the next snapshot.
        con.execute(f"UPDATE {table} SET snapshot_date = {a}, load_id = ?, source_file = ? "
                    f"WHERE snapshot_date = {n} AND last_date > {n}", [load, file])
    # Kept into it: until the snapshot before it — open again when that one is the last now.
    con.execute(f"UPDATE {table} SET last_date = ? WHERE snapshot_date < {n} AND last_date >= {n}",
                [before if after is not None else OPEN])
    con.execute(f"DELETE FROM {table} WHERE snapshot_date = {n}")


def close(con: duckdb.DuckDBPyConnection, code: str, night: date) -> None:
    """The rows open before `night` end on the snapshot before it: the dataset's next snapshot is
    stored whole on `night` (inside the caller's transaction; after `forget`)."""
    before = con.execute("SELECT max(snapshot_date) FROM snapshots WHERE dataset = ? AND snapshot_date < ?",
                         [code, night]).fetchone()[0]
    if before is not None:
        con.execute(f"UPDATE ds_{code} SET last_date = ? WHERE last_date = ? AND snapshot_date < ?", [before, OPEN, night])


def stored_until(con: duckdb.DuckDBPyConnection, code: str, night: date) -> date | None:
    """The `last_date` of the rows stored for `night`: open when it is the dataset's last snapshot
    (none after it), else that snapshot only."""
    later = con.execute("SELECT count(*) FROM snapshots WHERE dataset = ? AND snapshot_date > ?", [code, night]).fetchone()[0]
    return None if later else OPEN


def keep(con: duckdb.DuckDBPyConnection, code: str, night: date, before: date, in_place: str,
         not_in_place: str | None = None) -> bool:
    """Keep on `night` the rows of the dataset's snapshot of `before` that tonight's file delivered
    again at the same row with the same content and line (`in_place`: a table of their source
    rows; `not_in_place`, when given, the table of the others), instead of storing them again; the
    other rows of `before` end on it (inside the caller's transaction). Only when `before` is the
    dataset's last snapshot and earlier than the night (whether it was kept)."""
    last = con.execute("SELECT max(snapshot_date) FROM snapshots WHERE dataset = ?", [code]).fetchone()[0]
    if last is None or last != before or before >= night:
        return False
    b = literal(before)
    # The rows open on the last snapshot hold on: those not delivered again end on it (a few
    # hundred rows written, not every row kept).
    # (The open rows are those of `before`: its rows not in place are the ones to end.)
    gone = f"IN (SELECT source_row FROM {not_in_place})" if not_in_place else f"NOT IN (SELECT source_row FROM {in_place})"
    con.execute(f"UPDATE ds_{code} SET last_date = {b} WHERE last_date = {literal(OPEN)} AND source_row {gone}")
    # Rows of the last snapshot that end on it (stored by an earlier version, or before a night
    # after it was withdrawn) but were delivered again: open now.
    con.execute(f"""
        UPDATE ds_{code} SET last_date = {literal(OPEN)}
        WHERE snapshot_date <= {b} AND coalesce(last_date, snapshot_date) = {b}
          AND source_row IN (SELECT source_row FROM {in_place})""")
    return True


def difference(con: duckdb.DuckDBPyConnection, code: str, snap: date) -> tuple[date, str, str] | None:
    """(before, gone, came): the dataset's snapshot just before `snap`'s, the rows of that snapshot
    not kept into `snap`'s and the rows stored for `snap`'s (table expressions; the rows as stored:
    their night, load and file are not those the macro gives). A count that adds up over rows is
    the one of `before` less `gone`'s plus `came`'s. None when no snapshot came before, when most
    of `snap`'s was stored anew (a file sent in another order: reading it whole is cheaper than
    the difference), or when the table keeps no rows in place (a warehouse of an earlier version,
    read-only)."""
    before = con.execute("SELECT max(snapshot_date) FROM snapshots WHERE dataset = ? AND snapshot_date < ?",
                         [code, snap]).fetchone()[0]
    ranged = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = 'last_date'",
                         [f"ds_{code}"]).fetchone()[0]
    if before is None or not ranged:
        return None
    b = literal(before)
    # The rows in force on `before` end on it unless they were kept into the next snapshot, `snap`'s.
    gone = f"(SELECT * EXCLUDE (last_date) FROM ds_{code} WHERE snapshot_date <= {b} AND coalesce(last_date, snapshot_date) = {b})"
    came = f"(SELECT * EXCLUDE (last_date) FROM ds_{code} WHERE snapshot_date = {literal(snap)})"
    (stored,), = con.execute(f"SELECT count(*) FROM {came}").fetchall()
    (rows,), = con.execute("SELECT rows FROM snapshots WHERE dataset = ? AND snapshot_date = ?", [code, snap]).fetchall()
    return None if stored * 2 > rows else (before, gone, came)
