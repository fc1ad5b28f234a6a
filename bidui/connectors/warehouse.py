"""The DuckDB warehouse: one table per dataset holding every accepted snapshot, the load log,
the rejects, and the list of snapshots. Only batch processes open it (one writer at a time)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from bidui.connectors import snapshot_rows, stored
from bidui.connectors.stored import Known, KnownFile, raw_halves_sql, raw_whole_sql, table_columns
from bidui.datasets import DATASETS, Dataset
from bidui.matching.link_nights import literal

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS load_ids START 1;
CREATE TABLE IF NOT EXISTS load_log (
    load_id BIGINT PRIMARY KEY, night DATE NOT NULL, file VARCHAR NOT NULL, sha256 VARCHAR,
    dataset VARCHAR, fmt VARCHAR, encoding VARCHAR, delimiter VARCHAR,
    rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT, seconds DOUBLE,
    status VARCHAR NOT NULL,  -- accepted | forced | held | refused | duplicate | missing
    message VARCHAR, loaded_at TIMESTAMP DEFAULT current_timestamp,
    evidence VARCHAR  -- why the file was taken as whole: checksum file, night marker, settle time
);
CREATE TABLE IF NOT EXISTS rejects (
    load_id BIGINT NOT NULL, file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
    column_name VARCHAR NOT NULL, value VARCHAR, reason VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    dataset VARCHAR NOT NULL, snapshot_date DATE NOT NULL, load_id BIGINT NOT NULL, file VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, rows BIGINT NOT NULL, PRIMARY KEY (dataset, snapshot_date)
);
CREATE TABLE IF NOT EXISTS name_keys (name VARCHAR PRIMARY KEY, simplified VARCHAR, pinyin VARCHAR);
-- the form of a CSV file whose rows keep their lines' fingerprints (bidui.connectors.csv_lines)
CREATE TABLE IF NOT EXISTS line_forms (load_id BIGINT PRIMARY KEY, form VARCHAR NOT NULL);
-- the size of the file a snapshot was stored from (bidui.connectors.ingest: a night's file of
-- another size is not the same bytes; of the same size, it is hashed before anything is prepared for it)
CREATE TABLE IF NOT EXISTS load_bytes (load_id BIGINT PRIMARY KEY, bytes BIGINT NOT NULL);
"""


def table_name(ds: Dataset) -> str:
    return f"ds_{ds.code}"


MEMORY_LIMIT = "4GB"  # DuckDB's own default is 80% of RAM; batch steps also hold polars frames


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, set up (its tables, columns added since earlier versions, the datasets'
    macros) when this code has not set it up before. DuckDB's memory is capped (BIDUI_DUCKDB_MEMORY,
    default MEMORY_LIMIT): past it, it spills to `<warehouse>.tmp`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), config={"memory_limit": os.environ.get("BIDUI_DUCKDB_MEMORY", MEMORY_LIMIT)})
    con.execute("SET enable_progress_bar = false")  # batch jobs: progress is ours to show
    signature = _setup_signature()
    if signature is None or _stored_signature(con) != signature:
        _set_up(con)
        if signature is not None:
            con.execute("CREATE OR REPLACE TABLE warehouse_setup (signature VARCHAR NOT NULL)")
            con.execute("INSERT INTO warehouse_setup VALUES (?)", [signature])
    return con


def _dataset_tables() -> list[str]:
    statements = []
    for ds in DATASETS:
        cols = ", ".join(f'"{name}" {sql}' for name, sql in table_columns(ds))
        statements.append(f"CREATE TABLE IF NOT EXISTS {table_name(ds)} (snapshot_date DATE NOT NULL, "
                          f"load_id BIGINT NOT NULL, source_file VARCHAR NOT NULL, {cols}, row_hash UHUGEINT, "
                          "raw_hash UHUGEINT, line_hash UHUGEINT, last_date DATE, row_id BIGINT)")
    return statements


def _set_up(con: duckdb.DuckDBPyConnection) -> None:
    """The tables, the columns added since earlier versions, and the datasets' macros."""
    con.execute(SCHEMA)
    for statement in _dataset_tables():
        con.execute(statement)
    _rename_raw_json(con)
    _add_new_columns(con)
    snapshot_rows.create_macros(con)


@functools.cache
def _setup_signature() -> str | None:
    """What `_set_up` does in this version: its statements and the whole source of the modules
    whose code and constants it uses (this one, the macros', the stored columns'). A warehouse set
    up by the same is not set up again on each opening (about 65 ms each, seven openings a night);
    any change to those modules, or another DuckDB, sets it up again. None (always set up) when the
    source is not at hand."""
    try:
        code = [inspect.getsource(m) for m in (sys.modules[__name__], snapshot_rows, stored)]
    except (OSError, TypeError):
        return None
    parts = [duckdb.__version__, *_dataset_tables(), *code]  # (the tables: their columns come from bidui.datasets)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _stored_signature(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        return con.execute("SELECT max(signature) FROM warehouse_setup").fetchone()[0]
    except duckdb.CatalogException:
        return None


def _add_new_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Warehouses made by an earlier version: columns added since (load_log.evidence, each dataset's
    rejected_columns) are added, empty for the rows already there."""
    have: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_schema = 'main'").fetchall():
        have.setdefault(table, set()).add(column)
    if "evidence" not in have.get("load_log", {"evidence"}):
        con.execute("ALTER TABLE load_log ADD COLUMN evidence VARCHAR")
    # Links stored before a kept link held on later nights (bidui.matching.link_nights), or before
    # carried ones were marked: every reader asks for `last_night`, a read-only one (what-if) too.
    for column, sql in (("carried", "BOOLEAN"), ("last_night", "DATE")):
        if column not in have.get("links", {column}):
            con.execute(f"ALTER TABLE links ADD COLUMN {column} {sql}")
    # Links stored when they named their record's file too: the file is the snapshot's of each
    # night the link holds for (bidui.matching.link_nights), so a kept link can hold on a night
    # whose file has another name.
    if "source_file" in have.get("links", set()):
        con.execute("ALTER TABLE links DROP COLUMN source_file")
    for ds in DATASETS:
        # last_date: rows kept on later snapshots (bidui.connectors.snapshot_rows); row_id: ROW_ID
        for name, sql in [*table_columns(ds), *((h, "UHUGEINT") for h in HASH_COLUMNS), ("last_date", "DATE"),
                          (ROW_ID, "BIGINT")]:
            if name not in have.get(table_name(ds), {name}):
                con.execute(f'ALTER TABLE {table_name(ds)} ADD COLUMN "{name}" {sql}')
                if name == ROW_ID:  # each row stored so far is a record of its own
                    con.execute(f"UPDATE {table_name(ds)} SET {ROW_ID} = {new_row_id('load_id')}")
    if "source_row" in have.get("links", set()):
        _links_by_identity(con)


def _links_by_identity(con: duckdb.DuckDBPyConnection) -> None:
    """Links stored when they named their record by its row: each names it by its identity
    (ROW_ID) instead, that of the row it named in the snapshot the last night it holds for was
    linked with (that in force on the night, for a night linked before those were kept): the night
    the next one carries from. A link held over several nights was held at one row saying the same;
    where that row was stored again within the range (another form, or a warehouse older than the
    identities), the earlier nights of the range read the record unlinked — history, which linking
    such a night again makes whole. One whose row is no longer stored names no record (NULL): it
    reads as unlinked, as such a link did. In one transaction: a conversion cut short is done again
    at the next opening."""
    linked = ("SELECT night, dataset, snapshot_date FROM link_loads" if con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'link_loads'").fetchone()[0]
        else "SELECT NULL::DATE AS night, NULL::VARCHAR AS dataset, NULL::DATE AS snapshot_date WHERE FALSE")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("ALTER TABLE links ADD COLUMN IF NOT EXISTS row_id BIGINT")
        for ds in DATASETS:
            if not ds.persons or ds.code == "hukou":
                continue
            # The links' (last night, row) first, then each found by its row (an equality join):
            # not every stored row of every night.
            con.execute(f"""
                UPDATE links SET row_id = x.row_id
                FROM (SELECT w.at, w.source_row, d.row_id
                      FROM (SELECT DISTINCT coalesce(last_night, night) AS at, source_row FROM links
                            WHERE dataset = '{ds.code}') w
                      JOIN (SELECT a.at, coalesce(k.snapshot_date, {snapshot_rows.in_force_sql(ds.code, 'a.at')}) AS snap
                            FROM (SELECT DISTINCT coalesce(last_night, night) AS at FROM links WHERE dataset = '{ds.code}') a
                            LEFT JOIN ({linked}) k ON k.night = a.at AND k.dataset = '{ds.code}') n ON n.at = w.at
                      JOIN {table_name(ds)} d ON d.source_row = w.source_row AND d.snapshot_date <= n.snap
                           AND coalesce(d.last_date, d.snapshot_date) >= n.snap) x
                WHERE links.dataset = '{ds.code}' AND coalesce(links.last_night, links.night) = x.at
                      AND links.source_row = x.source_row""")
        con.execute("ALTER TABLE links DROP COLUMN source_row")
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise


def _rename_raw_json(con: duckdb.DuckDBPyConnection) -> None:
    """Warehouses made before `extra_json`: their `raw_json` (the whole delivered row) takes its place."""
    old = con.execute("SELECT table_name FROM information_schema.columns WHERE column_name = 'raw_json' "
                      "AND table_name LIKE 'ds\\_%' ESCAPE '\\'").fetchall()
    for (table,) in old:
        con.execute(f"ALTER TABLE {table} RENAME COLUMN raw_json TO extra_json")


def query(con: duckdb.DuckDBPyConnection, sql: str, args: list | None = None) -> pl.DataFrame:
    """A query's result as a polars frame (one Arrow copy: results here are small or one-off). As a
    relation: a DB-API result (`execute`) copies its rows once more on the way to Arrow. (A
    half-read result of `execute` is finished first, as `execute` would have: a relation refuses to
    run beside one.)"""
    con.complete()
    return pl.from_arrow(con.sql(sql, params=args or None).to_arrow_table())  # type: ignore[return-value]


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """The frame registered on `con` itself while the block runs (a temp table made from it must be
    on this connection). DuckDB refuses to register or unregister while a result is half-read — a
    `fetchone()` of a one-row query leaves one — so such a result is finished first."""
    con.complete()
    con.register(name, frame)
    try:
        yield
    finally:
        con.complete()
        con.unregister(name)


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame, columns: list[str] | None = None) -> None:
    """INSERT a polars frame (registered explicitly: no reliance on DuckDB finding Python locals)."""
    cols = columns or df.columns
    quoted = ", ".join(f'"{c}"' for c in cols)
    with registered(con, "_incoming", df.select(cols)):
        con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM _incoming")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Undo the open transaction after a failure. A ROLLBACK after a failed COMMIT (disk full) can
    fail too; it must not replace the error that says why."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def new_load_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT nextval('load_ids')").fetchone()[0])


def current_with_hash(con: duckdb.DuckDBPyConnection, dataset: str, sha256: str, night: date) -> tuple[int, date] | None:
    """The snapshot in force on the night, if it holds exactly these bytes: (load id, date)."""
    row = con.execute("SELECT load_id, snapshot_date, sha256 FROM snapshots WHERE dataset = ? AND snapshot_date <= ? "
                      "ORDER BY snapshot_date DESC LIMIT 1", [dataset, night]).fetchone()
    return (int(row[0]), row[1]) if row and row[2] == sha256 else None


def in_force_hashes(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, str]:
    """The SHA-256 of each dataset's snapshot in force on the night (what `current_with_hash` compares)."""
    return dict(con.execute("""
        SELECT s.dataset, s.sha256 FROM snapshots s
        JOIN (SELECT dataset, max(snapshot_date) AS d FROM snapshots WHERE snapshot_date <= ? GROUP BY dataset) m
             ON m.dataset = s.dataset AND m.d = s.snapshot_date
        WHERE s.sha256 IS NOT NULL""", [night]).fetchall())


def in_force_sizes(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, int]:
    """The size in bytes of the file of each dataset's snapshot in force on the night, where it was
    kept (snapshots stored before sizes were: none)."""
    loads = {load: code for code, (_, load) in in_force_loads(con, night).items()}
    kept = con.execute("SELECT load_id, bytes FROM load_bytes WHERE load_id IN (SELECT unnest(?))",
                       [list(loads)]).fetchall() if loads else []
    return {loads[load]: int(size) for load, size in kept}


def last_snapshot(con: duckdb.DuckDBPyConnection, dataset: str, before: date) -> tuple[date, int] | None:
    """The latest accepted snapshot strictly before a night: (date, rows)."""
    row = con.execute("SELECT snapshot_date, rows FROM snapshots WHERE dataset = ? AND snapshot_date < ? "
                      "ORDER BY snapshot_date DESC LIMIT 1", [dataset, before]).fetchone()
    return (row[0], int(row[1])) if row else None


def sql_text(s: str) -> str:
    """A string as an SQL literal (for text built into a statement, such as a pattern)."""
    return "'" + s.replace("'", "''") + "'"


# Counts that depend on a snapshot's rows alone (the bulletin's, the name defects of the run
# report) are counted once. A snapshot still in force on a later night (its dataset's file came
# again unchanged, or not at all) is not scanned again: its counts are kept by the load that made
# it (a snapshot replaced the same night is another load) and the digest of the counting SQL
# (another version of bidui counts again). Scanning runs name and ID patterns over every row.
COUNTS_DDL = ("CREATE TABLE IF NOT EXISTS quality_counts (load_id BIGINT NOT NULL, digest VARCHAR NOT NULL, "
              "counts VARCHAR NOT NULL, PRIMARY KEY (load_id, digest))")


def counted_once(con: duckdb.DuckDBPyConnection, dataset: str, snap: date, how: str,
                 count: Callable[[int | None], dict], by_rows: Callable[[str], dict] | None = None,
                 shape: Callable[[dict, int], dict] = lambda c, _load: c) -> dict:
    """`count(load_id)` for the dataset's snapshot of `snap`, or what it gave for the same load and
    `how` (the counting SQL) before. JSON round-trips the result: keys are strings.

    `by_rows(rows)`: the same counts over a table expression of rows, when they add up over rows
    (every number in the dict, nested dicts too, a sum over the rows). Then a snapshot whose
    previous one was counted is counted from it: its counts less those of the rows not kept, plus
    those of the rows stored (`snapshot_rows.difference`), `shape`d as `count` gives them for the
    load (which keys are left out when zero, in which order): four million hukou rows are not scanned again
    for a few hundred that changed."""
    digest = _digest(how)
    load = con.execute("SELECT load_id FROM snapshots WHERE dataset = ? AND snapshot_date = ?", [dataset, snap]).fetchone()
    if load is None:
        return count(None)
    con.execute(COUNTS_DDL)
    kept = con.execute("SELECT counts FROM quality_counts WHERE load_id = ? AND digest = ?", [load[0], digest]).fetchone()
    if kept:
        return json.loads(kept[0])
    counts = _counted_from_before(con, dataset, snap, load[0], digest, by_rows, shape) if by_rows is not None else None
    if counts is None:
        counts = count(load[0])
    remember_counts(con, load[0], how, counts)
    return counts


def _counted_from_before(con: duckdb.DuckDBPyConnection, dataset: str, snap: date, load: int, digest: str,
                         by_rows: Callable[[str], dict], shape: Callable[[dict, int], dict]) -> dict | None:
    """`counted_once`'s counts from the previous snapshot's, or None when it was not counted."""
    diff = snapshot_rows.difference(con, dataset, snap)
    if diff is None:
        return None
    before, gone, came = diff
    prev = con.execute("SELECT q.counts FROM quality_counts q JOIN snapshots s ON s.load_id = q.load_id "
                       "WHERE s.dataset = ? AND s.snapshot_date = ? AND q.digest = ?", [dataset, before, digest]).fetchone()
    if prev is None:
        return None
    return shape(_added(json.loads(prev[0]), by_rows(gone), by_rows(came)), load)


def _added(prev: dict, gone: dict, came: dict) -> dict:
    """prev − gone + came, key by key (a missing key counts 0), nested dicts alike."""
    out: dict = {}
    for k in [*prev, *(k for k in came if k not in prev), *(k for k in gone if k not in prev and k not in came)]:
        a, g, c = prev.get(k), gone.get(k), came.get(k)
        if isinstance(a, dict) or isinstance(g, dict) or isinstance(c, dict):
            out[k] = _added(a or {}, g or {}, c or {})
        else:
            out[k] = (a or 0) - (g or 0) + (c or 0)
    return out


def drop_temp(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Drop the temp tables or views of these names, whichever kind each is (a night's run may
    have made it the other kind; the spine is a view of the stored spine). Only the views are looked
    up (information_schema took 4 ms a name, on a night that drops some eighty): dropping a table
    of a view's name is an error, which would end a transaction."""
    if not names:
        return
    views = {v for v, in con.execute("SELECT view_name FROM duckdb_views() WHERE database_name = 'temp' "
                                     "AND list_contains(?, view_name)", [list(names)]).fetchall()}
    for name in names:
        # Qualified: a name with no temp object must not reach a stored table of that name.
        con.execute(f"DROP VIEW temp.main.{name}" if name in views else f"DROP TABLE IF EXISTS temp.main.{name}")


def remember_counts(con: duckdb.DuckDBPyConnection, load_id: int, how: str, counts: dict) -> None:
    """Keep what `counted_once` would count for this load and `how` (counted while it was stored)."""
    con.execute(COUNTS_DDL)
    con.execute("INSERT OR REPLACE INTO quality_counts VALUES (?, ?, ?)",
                [load_id, _digest(how), json.dumps(counts)])


def _digest(how: str) -> str:
    return hashlib.sha256(how.encode()).hexdigest()[:16]


def in_force(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, date]:
    """For each dataset, the date of the snapshot in force on a night (latest accepted ≤ night)."""
    return {d: snap for d, (snap, _) in in_force_loads(con, night).items()}


def in_force_loads(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, tuple[date, int]]:
    """For each dataset, the snapshot in force on a night as the warehouse holds it now: its date
    and the load that stored it (a snapshot of a date may be stored again, by another load)."""
    rows = con.execute("""SELECT s.dataset, s.snapshot_date, s.load_id FROM snapshots s
                          JOIN (SELECT dataset, max(snapshot_date) AS d FROM snapshots WHERE snapshot_date <= ?
                                GROUP BY dataset) f ON f.dataset = s.dataset AND f.d = s.snapshot_date""",
                       [night]).fetchall()
    return {d: (snap, int(load)) for d, snap, load in rows}


def log(con: duckdb.DuckDBPyConnection, load_id: int, night: date, file: str, **fields: object) -> None:
    cols = ["load_id", "night", "file", *fields]
    con.execute(f"INSERT INTO load_log ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [load_id, night, file, *fields.values()])


# What a row says, as one stable number: the MD5 of its columns as text, in the dataset's order
# (so the same whatever form the delivery took: CSV or XLSX, encoding, header words, column order).
# Not its place (file, row number), nor the unmapped columns (`extra_json`: keyed by the header's
# words) or which values were refused (they follow from the rest). Text forms that no library
# version changes: dates as ISO, numbers with 17 significant digits. (polars' and DuckDB's own
# hashes change between versions: a stored hash must not.)
HASH_EXCLUDED = frozenset({"source_row", "extra_json", "rejected_columns"})


def row_hash_sql(ds: Dataset) -> str:
    """The SQL of a row's `row_hash` (over the dataset table's own column names)."""
    def text(name: str, sql: str) -> str:
        value = f"printf('%.17g', \"{name}\")" if sql == "DOUBLE" else f'"{name}"::VARCHAR'
        return f"coalesce({value}, chr(0))"

    parts = ", ".join(text(n, sql) for n, sql in table_columns(ds) if n not in HASH_EXCLUDED)
    return f"md5_number(concat_ws(chr(31), {parts}))"


def apply_snapshot(con: duckdb.DuckDBPyConnection, ds: Dataset, night: date, load_id: int, file: str, sha256: str,
                   rows: str, count: int, carried: int = 0, line_form: str | None = None,
                   carried_from: date | None = None) -> None:
    """Replace the dataset's snapshot of this night with the `count` rows of the relation `rows`
    (tonight's normalised rows: a registered frame, or a view over a worker's handover file) and
    the `carried` rows staged in CARRIED_ROWS from the snapshot of `carried_from` (inside the
    caller's transaction); `line_form`: the file's form, when its rows carry their lines'
    fingerprints (`line_hi`, `line_lo`). A carried row at the same place in the file as in that
    snapshot, when it is the dataset's last, is kept there rather than stored again
    (bidui.connectors.snapshot_rows)."""
    table = table_name(ds)
    snapshot_rows.forget(con, ds.code, night)
    con.execute("DELETE FROM snapshots WHERE dataset = ? AND snapshot_date = ?", [ds.code, night])
    have = {d[0] for d in con.execute(f"SELECT * FROM {rows} LIMIT 0").description}
    # The delivered row's fingerprint (bidui.connectors.normalise.raw_row_hashes), where it has one.
    raw = raw_whole_sql() if {"raw_hi", "raw_lo"} <= have else "NULL::UHUGEINT"
    line = raw_whole_sql(kind="line") if line_form and {"line_hi", "line_lo"} <= have else "NULL::UHUGEINT"
    own = ", ".join(f'"{n}"' for n, _ in table_columns(ds))
    # The night, load and file are constants of the statement, not columns added to the rows.
    fresh = new_row_id(str(int(load_id)))
    rows_sql = f"SELECT ?::DATE, ?::BIGINT, ?::VARCHAR, {own}, {row_hash_sql(ds)}, {raw}, {line}, {fresh} FROM {rows}"
    args: list = [night, load_id, file]
    kept = False
    if carried:
        # Same values, so the same row hash; the fingerprint is of the same text. In row order, as a
        # file normalised whole is stored.
        carried_line = "line_hash" if line_form else "NULL::UHUGEINT"
        in_place = _in_place(con)
        if in_place and carried_from is not None:
            # Without a form a row stored whole has no line fingerprint: one listed with one is not that row.
            same_lines = line_form or not con.execute(f"SELECT count(line_hash) FROM {IN_PLACE_ROWS}").fetchone()[0]
            kept = bool(same_lines) and snapshot_rows.keep(con, ds.code, night, carried_from, IN_PLACE, NOT_IN_PLACE)
        rest = f"SELECT * FROM {CARRIED_ROWS}"
        if in_place and not kept:
            rest += f" UNION ALL BY NAME SELECT * FROM {IN_PLACE_ROWS}"
        rows_sql = (f"SELECT * FROM ({rows_sql} UNION ALL SELECT ?::DATE, ?::BIGINT, ?::VARCHAR, {own}, row_hash, raw_hash, "
                    f"{carried_line}, coalesce({ROW_ID}, {fresh}) FROM ({rest})) ORDER BY source_row")
        args += [night, load_id, file]
    if not kept:
        snapshot_rows.close(con, ds.code, night)
    until = snapshot_rows.stored_until(con, ds.code, night)
    con.execute(f"INSERT INTO {table} (snapshot_date, load_id, source_file, {own}, row_hash, raw_hash, line_hash, "
                f"{ROW_ID}, last_date) SELECT *, {literal(until) if until else 'NULL'}::DATE FROM ({rows_sql})", args)
    con.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)", [ds.code, night, load_id, file, sha256, count + carried])
    if line_form:
        con.execute("INSERT OR REPLACE INTO line_forms VALUES (?, ?)", [load_id, line_form])


# Columns of a snapshot table that are about the row, not what it says: no rule or person reads them.
HASH_COLUMNS = ("row_hash", "raw_hash", "line_hash")
# A record's identity across nights (issue 18, part 2; docs/storage-redesign.md, step 1): a row
# normalised tonight is a new record, `new_row_id` of its load and row (unique for ever: a load's
# id is never used again); a row delivered again as it was (carried: in place or moved) is the
# record it was, and keeps its id; a row kept in place keeps its stored row and so its id. It says
# nothing a person reads and is not compared between a home run incrementally and one run from
# scratch (there every row is normalised, so a new record each night).
ROW_ID = "row_id"
ROW_COLUMNS = (*HASH_COLUMNS, ROW_ID)


def new_row_id(load_sql: str, row_sql: str = '"source_row"') -> str:
    """SQL: the identity of a record first stored by load `load_sql` at row `row_sql` (a file has
    fewer than 2**32 rows)."""
    return f"(({load_sql})::BIGINT << 32) + ({row_sql})::BIGINT"


def _known_sql(con: duckdb.DuckDBPyConnection, ds: Dataset, night: date) -> tuple[str, date, int, str | None] | None:
    """The SQL of the fingerprints of the dataset's snapshot in force on the night (`Known.of`), with
    that snapshot, its load and its line form; None when it has none."""
    found = in_force_loads(con, night).get(ds.code)
    if found is None:
        return None
    snap, load = found
    form = con.execute("SELECT form FROM line_forms WHERE load_id = ?", [load]).fetchone()
    lines = f", {raw_halves_sql('line_hash', 'line')}, source_row" if form else ""
    sql = (f"SELECT {raw_halves_sql('raw_hash')}{lines} FROM {snapshot_rows.at(ds.code, literal(snap))} "
           "WHERE raw_hash IS NOT NULL")
    return sql, snap, load, form[0] if form else None


def known_rows(con: duckdb.DuckDBPyConnection, ds: Dataset, night: date) -> Known | None:
    """The fingerprints of the dataset's snapshot in force on the night (None when it has none or
    none has fingerprints): what ingest need not normalise again."""
    found = _known_sql(con, ds, night)
    if found is None:
        return None
    sql, snap, load, form = found
    prints = query(con, sql)
    return Known.of(snap, prints, form, load) if prints.height else None


def known_rows_file(con: duckdb.DuckDBPyConnection, ds: Dataset, night: date, folder: Path) -> KnownFile | None:
    """`known_rows` written to a Parquet file in `folder` (a worker's handover folder) by DuckDB,
    for a worker process to read if it needs them."""
    found = _known_sql(con, ds, night)
    if found is None:
        return None
    sql, snap, load, form = found
    path = folder / f"known-{uuid.uuid4().hex}.parquet"
    # (uncompressed: the fingerprints are random)
    (rows,), = con.execute(f"COPY ({sql}) TO {sql_text(str(path))} (FORMAT parquet, COMPRESSION uncompressed)").fetchall()
    if not rows:
        path.unlink(missing_ok=True)
        return None
    return KnownFile(snap, path, form, load)


# Tonight's rows delivered as before, with their values from the snapshot they were read for
# (`stage_carried_rows`), until `apply_snapshot` stores them: they never leave DuckDB. Those at the
# same place in that snapshot, with the same fingerprints (most of a file sent again), are only
# listed (IN_PLACE: source_row) and read from it where they lie (IN_PLACE_ROWS, a view):
# they are usually kept there (bidui.connectors.snapshot_rows), not written anywhere.
CARRIED_ROWS = "_carried_rows"
IN_PLACE = "_carried_in_place"
IN_PLACE_ROWS = "_carried_in_place_rows"
# The rows of that snapshot not in place (source_row): the few a night changed, listed once. The
# profile of tonight's rows and the rows kept are worked out from them: each of those three asking
# the four million hukou rows whether they are in place cost 0.4-0.8 s of the writer.
NOT_IN_PLACE = "_carried_not_in_place"
CARRIED_AT = "_carried_at"  # the rows carried, each marked in place or not


def stage_carried_rows(con: duckdb.DuckDBPyConnection, ds: Dataset, snap: date, carried: pl.DataFrame,
                       night: date | None = None, in_place: pl.DataFrame | None = None,
                       load: int | None = None) -> int:
    """The rows of the snapshot of `snap` whose fingerprints `carried` (source_row, raw_hi, raw_lo;
    and line_hi, line_lo: tonight's lines' own) lists, as the normaliser would give them tonight —
    its columns, at tonight's source rows, with their row hash and fingerprint — staged as
    CARRIED_ROWS and, for a snapshot before `night`, IN_PLACE_ROWS; how many were found (fewer
    than listed: that snapshot changed since the file was read). Copied before tonight's snapshot
    replaces anything when `snap` may be tonight's own earlier one (`night` not given, or not after
    it). A row's line fingerprint is always tonight's: the row carried may have been read from a
    line in another form. `in_place`: the rows the reader found in place (runs of source rows,
    `normalise.Normalised.in_place`), in the snapshot stored by `load`; `carried` then lists none
    of them."""
    cols = ", ".join(f'd."{n}"' for n, _ in table_columns(ds) if n != "source_row")
    line = raw_whole_sql("c.", "line") if {"line_hi", "line_lo"} <= set(carried.columns) else "NULL::UHUGEINT"
    at = snapshot_rows.at(ds.code, literal(snap))
    drop_carried_rows(con)
    found = 0
    with registered(con, "_carried", carried):
        source = "_carried"
        if night is not None and snap < night and in_place is not None:
            found = _stage_runs(con, ds, snap, at, in_place, load)
        elif night is not None and snap < night:
            # Each carried row marked by whether it is in place, by one join; the rows of the snapshot
            # not in place then by one anti join (to find the carried rows not in place, another
            # anti join of four million rows cost the writer 0.4-0.6 s more).
            con.execute(f"""
                CREATE TEMP TABLE {CARRIED_AT} AS
                SELECT c.*, d.source_row IS NOT NULL AS in_place
                FROM _carried c LEFT JOIN (SELECT source_row, raw_hash, line_hash FROM {at}) d
                     ON d.source_row = c.source_row AND d.raw_hash = {raw_whole_sql('c.')}
                        AND d.line_hash IS NOT DISTINCT FROM {line}""")
            con.execute(f"CREATE TEMP TABLE {IN_PLACE} AS SELECT source_row FROM {CARRIED_AT} WHERE in_place")
            con.execute(f"CREATE TEMP TABLE {NOT_IN_PLACE} AS SELECT source_row FROM {at} ANTI JOIN {IN_PLACE} USING (source_row)")
            source = f"(SELECT * EXCLUDE (in_place) FROM {CARRIED_AT} WHERE NOT in_place)"
        if night is not None and snap < night:
            # (a row in place has tonight's line fingerprint: its line is the one stored)
            con.execute(f"CREATE TEMP VIEW {IN_PLACE_ROWS} AS SELECT d.source_row, {cols}, d.row_hash, d.raw_hash, "
                        f"d.line_hash, d.{ROW_ID} FROM {at} d SEMI JOIN {IN_PLACE} c USING (source_row)")
        con.execute(f"""
            CREATE TEMP TABLE {CARRIED_ROWS} AS
            SELECT c.source_row, {cols}, d.row_hash, d.raw_hash, {line} AS line_hash, d.{ROW_ID}
            FROM {source} c JOIN {at} d ON d.raw_hash = {raw_whole_sql('c.')}""")
    (n,), = con.execute(f"SELECT count(*) FROM {CARRIED_ROWS}").fetchall()
    return int(n) + (found if in_place is not None else (_in_place(con) or 0))


def _stage_runs(con: duckdb.DuckDBPyConnection, ds: Dataset, snap: date, at: str, runs: pl.DataFrame,
                load: int | None) -> int:
    """IN_PLACE and NOT_IN_PLACE from the runs of rows the reader found in place; how many of the
    snapshot's rows the runs hold: none when the snapshot is no longer the one it read (another
    load), fewer when a row of it went, so that the caller refuses the file.
    The rows not in place are those of the snapshot between the runs, a few (four million hukou
    rows joined to find them cost the writer 0.9 s, and handing them over one by one 0.6 s)."""
    (stored,), = con.execute("SELECT count(*) FROM snapshots WHERE dataset = ? AND snapshot_date = ? AND load_id = ?",
                             [ds.code, snap, load]).fetchall()
    if not stored:
        runs = runs.clear()
    with registered(con, "_runs", runs.select(pl.col("first_row").cast(pl.Int64), pl.col("last_row").cast(pl.Int64))):
        con.execute(f"CREATE TEMP TABLE {IN_PLACE} AS SELECT unnest(range(first_row, last_row + 1)) AS source_row FROM _runs")
    (top,), = con.execute(f"SELECT coalesce(max(source_row), 0) FROM {at}").fetchall()
    # Runs of rows of the snapshot as it was read, apart (+1 where one starts, -1 after it ends): a
    # run may now reach past its last row, if that row went since (then refused, by the count).
    end = max(int(top), int(runs["last_row"].max() or 0)) if runs.height else int(top)
    edges = np.zeros(end + 2, dtype=np.int64)
    np.add.at(edges, runs["first_row"].to_numpy(), 1)
    np.add.at(edges, runs["last_row"].to_numpy() + 1, -1)
    gaps = pl.DataFrame({"source_row": np.flatnonzero(np.cumsum(edges)[1:int(top) + 1] == 0) + 1})
    with registered(con, "_gaps", gaps):
        con.execute(f"CREATE TEMP TABLE {NOT_IN_PLACE} AS SELECT source_row FROM {at} SEMI JOIN _gaps USING (source_row)")
    # The snapshot's rows in the runs: all of them, unless a row went since it was read.
    (rows,), = con.execute(f"SELECT (SELECT count(*) FROM {at}) - (SELECT count(*) FROM {NOT_IN_PLACE})").fetchall()
    return int(rows)


def _in_place(con: duckdb.DuckDBPyConnection) -> int | None:
    """How many rows IN_PLACE lists (None: none was staged)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [IN_PLACE]).fetchone()[0]:
        return None
    return int(con.execute(f"SELECT count(*) FROM {IN_PLACE}").fetchone()[0])


def drop_carried_rows(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP VIEW IF EXISTS {IN_PLACE_ROWS}")
    for table in (CARRIED_AT, IN_PLACE, NOT_IN_PLACE, CARRIED_ROWS):
        con.execute(f"DROP TABLE IF EXISTS {table}")


# Tonight's normalised rows of the file being stored, as DuckDB reads them (bidui.connectors.ingest).
NEW_ROWS = "_new"


def tonight_rows_sql(con: duckdb.DuckDBPyConnection, ds: Dataset, in_place: bool = True) -> str:
    """The rows `apply_snapshot` would store, as a query over NEW_ROWS and the carried rows staged
    (but those in place, unless `in_place`): for profiling them in DuckDB."""
    names = ", ".join(f'"{n}"' for n, _ in table_columns(ds))
    sql = f"SELECT {names} FROM {NEW_ROWS} UNION ALL SELECT {names} FROM {CARRIED_ROWS}"
    return sql + (f" UNION ALL SELECT {names} FROM {IN_PLACE_ROWS}" if in_place and _in_place(con) is not None else "")


def tail_gone(con: duckdb.DuckDBPyConnection, ds: Dataset, snap: date, least: int, rows: int | None = None) -> int:
    """How many of the last records of the dataset's snapshot of `snap` are missing from tonight's
    rows (NEW_ROWS and the rows staged carried or in place), counted back from its end to the last
    of its records tonight still has — when at least `least` are, some record before them is there,
    and they outnumber by `least` or more tonight's rows after where it has that one: the mark of
    an extract cut at a line (a file cut inside one is held by its reader). 0 otherwise. A record
    is its `Dataset.row_identity` (a person's ID number, a plate, a credit code…): a record that
    changed (the newest of a file sorted by date change most) or moved (a file sorted by status) is
    still there; rows without one are left out. Only the snapshot's last `least` records are read
    unless they are all missing, so a night pays one pass over tonight's rows per changed file.
    `rows`: how many rows the snapshot has, when known (its profile): then its last records are
    looked for among its last rows first (see `_last_rows`)."""
    ident = ds.row_identity
    if least <= 0 or not ident:
        return 0
    cols = ", ".join(f'"{c}"' for c in ident)
    known = " AND ".join(f'"{c}" IS NOT NULL' for c in ident)
    carried = bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
                               [CARRIED_ROWS]).fetchone()[0])
    in_place = _in_place(con) is not None
    tonight = " UNION ALL ".join([f"SELECT source_row, {cols} FROM {NEW_ROWS}",
                                  *([f"SELECT source_row, {cols} FROM {CARRIED_ROWS}"] if carried else [])])
    rows_tonight = " UNION ALL ".join([f"SELECT source_row FROM {NEW_ROWS}",
                                       *([f"SELECT source_row FROM {CARRIED_ROWS}"] if carried else []),
                                       *([f"SELECT source_row FROM {IN_PLACE}"] if in_place else [])])
    same = " AND ".join(f't."{c}" = x."{c}"' for c in ident)
    at = snapshot_rows.at(ds.code, literal(snap))

    def pairs(rows: str) -> str:  # (old row, tonight's row) of the records of `rows` tonight still has
        back = f"SELECT t.source_row AS old, x.source_row AS new FROM ({tonight}) x JOIN {rows} t ON {same}"
        return back + (f" UNION ALL SELECT t.source_row, t.source_row FROM {IN_PLACE} i JOIN {rows} t USING (source_row)"
                       if in_place else "")

    try:
        last = f"CREATE OR REPLACE TEMP TABLE _tail AS SELECT source_row, {cols} FROM {at} WHERE {known}"
        found = 0
        if rows:
            con.execute(f"{last} AND {_last_rows(rows, 4 * least)} ORDER BY source_row DESC LIMIT {int(least)}")
            (found,), = con.execute("SELECT count(*) FROM _tail").fetchall()
        if found < least:  # (fewer records than that among them: all rows)
            con.execute(f"{last} ORDER BY source_row DESC LIMIT {int(least)}")
            (found,), = con.execute("SELECT count(*) FROM _tail").fetchall()
        (back,), = con.execute(f"SELECT count(*) FROM ({pairs('_tail')})").fetchall()
        if found < least or back:
            return 0
        # All missing: how far back the cut goes, whether anything before it is there (a file that
        # shares no record with the snapshot before is judged by the other checks), and what
        # tonight's file holds past that record (its row: a file sent in another order puts it anywhere).
        con.execute(f"CREATE OR REPLACE TEMP TABLE _tail AS SELECT source_row, {cols} FROM {at} WHERE {known}")
        last_old, last_new = con.execute(f"SELECT max(old), arg_max(new, old) FROM ({pairs('_tail')})").fetchone()
        if last_old is None:
            return 0
        (gone,), = con.execute("SELECT count(*) FROM _tail WHERE source_row > ?", [last_old]).fetchall()
        (after,), = con.execute(f"SELECT count(*) FROM ({rows_tonight}) WHERE source_row > ?", [last_new]).fetchall()
        return int(gone) if gone - after >= least else 0
    finally:
        con.execute("DROP TABLE IF EXISTS _tail")


def _last_rows(rows: int, window: int) -> str:
    """SQL: a condition that holds for the last `window` rows (at least) of a snapshot of `rows`
    rows, by their row alone: of `rows` distinct row numbers, none below 1, the k-th last is at
    least rows - k + 1. Whatever `rows` says, a row it leaves out is numbered below every row it
    keeps: the last records found among those are the snapshot's last. Rows are stored in their
    order, so the scan reads only the few row groups where these lie (the large hukou snapshot's
    last 20 records: 0.15 s to find among all its rows)."""
    return f"source_row > {int(rows) - int(window)}"


def in_place_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many of tonight's rows are staged in place (IN_PLACE; 0 when none was staged)."""
    return _in_place(con) or 0


def add_rejects(con: duckdb.DuckDBPyConnection, load_id: int, file: str, rejects: pl.DataFrame) -> None:
    if rejects.is_empty():
        return
    insert_frame(con, "rejects", rejects.select(pl.lit(load_id, pl.Int64).alias("load_id"), pl.lit(file).alias("file"),
                                                "source_row", "column_name", "value", "reason"))


def add_name_keys(con: duckdb.DuckDBPyConnection, names: pl.Series) -> int:
    """Derived keys for names not seen before (computed once per distinct name)."""
    from bidui.names import name_keys

    with registered(con, "_names", pl.DataFrame({"name": names.drop_nulls().unique()})):
        new = query(con, "SELECT f.name FROM _names f ANTI JOIN name_keys k ON f.name = k.name")["name"].to_list()
    if not new:
        return 0
    forms, pinyins = name_keys(new)
    insert_frame(con, "name_keys", pl.DataFrame({"name": new, "simplified": forms, "pinyin": pinyins}))
    return len(new)


def load_log(con: duckdb.DuckDBPyConnection, night: date | None = None) -> pl.DataFrame:
    where, args = ("WHERE night = ?", [night]) if night else ("", [])
    return query(con, f"SELECT load_id, night, file, dataset, status, rows_read, rows_loaded, rows_rejected, "
                 f"round(seconds, 2) AS seconds, fmt, encoding, evidence, message FROM load_log {where} ORDER BY load_id",
                 args)
