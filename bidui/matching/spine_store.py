"""The spine kept across nights (issue 18, part 2): the hukou persons linking compares records
with (`link_spine`), stored in the warehouse and brought from one hukou snapshot to the next by
the numbers that changed, instead of built again from four million rows every night (2.0–3.6 s
at the large size; brought up, 0.5 s), and its blocking keys with it (below).

A spine row depends on its hukou row, the rows sharing its number (a person listed twice under
one number is one row, 一号多人 rows are one each), the number's identity exception (一人多号:
bidui.matching.records.ensure_identity) and its name history (the former name). So from the
snapshot the stored spine was built for to the next one, only the numbers of
- the rows not kept into the next snapshot and the rows stored for it (`snapshot_rows.difference`:
  rows kept in place have the same row, so the same `pi`),
- the rows whose identity exception came, went or changed, and
- the numbers whose name history moved since (a correction, dated the snapshot it came with)
are built again: their rows are deleted and built from tonight's snapshot restricted to them
(what building the whole spine gives for those numbers, as nothing groups rows of two numbers).

Built whole instead when the stored spine is of another snapshot than the one just before, was
built by other SQL, the name history was read again from the first (its epoch), most of the
snapshot was stored anew, or when asked (`bidui run --from-scratch`: the reference the
incremental nights are compared with). `tests/test_carry.py` compares the stored spine with one
built whole night after night.

What changed is left for the linker to read (`CHANGED`, `WAS`, `SINCE`: temp tables): the numbers
built again, their rows as they were before, and the snapshot the stored spine was of — a scored
link carried from the night before is one no changed person could pair with
(bidui.matching.link). None of them is left when the spine was built whole (what changed is not
known).

The spine's blocking keys are kept beside it (`spine_keys`, staged as `link_spine_keys`) and
brought up with it: the rows of the numbers built again lose their keys and get new ones. Made
from four million persons every night they cost the large prefecture's later nights 0.4 s;
stored, a night that builds the spine whole writes them for about 0.75 s more (once, on the first
night). They hold DuckDB's `hash` of names: a stored spine of another DuckDB version is built again."""

from __future__ import annotations

import hashlib
from datetime import date

import duckdb

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.matching.link_nights import literal
from bidui.matching.records import IDENTITY_DDL, SPINE_SQL, names_epoch

SPINE_TABLE = "spine_rows"
KEYS_TABLE = "spine_keys"  # the blocking keys of the stored spine's rows (by `pi`)
KEYS_VIEW = "link_spine_keys"  # what linking blocks with: a view of KEYS_TABLE
CHANGED, WAS, SINCE = "spine_changed", "spine_was", "spine_since"  # temp tables: see the module's text
# The snapshot (and load) the stored spine is of, the name history's epoch and the SQL it was
# built with; `how` it was last staged (kept, updated, built: for the engineer and the tests).
STATE_DDL = ("CREATE TABLE IF NOT EXISTS spine_state (snapshot_date DATE NOT NULL, load_id BIGINT NOT NULL, "
             "epoch BIGINT NOT NULL, code VARCHAR NOT NULL, how VARCHAR NOT NULL)")


def _code(columns: list[str], keys: str) -> str:
    """What built the stored spine and its keys (built again by other SQL, or another DuckDB: the
    keys hash names with DuckDB's `hash`)."""
    return hashlib.sha256("\x1f".join((SPINE_SQL, ",".join(columns), keys, duckdb.__version__)).encode()).hexdigest()[:16]


def _load(con: duckdb.DuckDBPyConnection, snap: date) -> int:
    (load,), = con.execute("SELECT load_id FROM snapshots WHERE dataset = 'hukou' AND snapshot_date = ?",
                           [snap]).fetchall()
    return int(load)


def stage(con: duckdb.DuckDBPyConnection, snap: date, columns: list[str], keys: str, whole: bool = False) -> str:
    """`link_spine` (pi and `columns`) and `link_spine_keys` (`keys`: the SELECT of a spine
    relation's keys, `{spine}` naming it) as temp views of the stored spine and its keys, brought
    to the hukou snapshot of `snap` (`prepare_spine` has run for it); how: "kept", "updated" or
    "built"."""
    con.execute(STATE_DDL)
    code, load, epoch = _code(columns, keys), _load(con, snap), names_epoch(con)
    state = con.execute("SELECT snapshot_date, load_id, epoch, code FROM spine_state").fetchone()
    (stored,), = con.execute("SELECT count(*) = 2 FROM duckdb_tables() WHERE NOT temporary AND table_name IN (?, ?)",
                             [SPINE_TABLE, KEYS_TABLE]).fetchall()
    how = "built"
    wh.drop_temp(con, CHANGED, WAS, SINCE)
    con.execute("BEGIN TRANSACTION")
    try:
        if not whole and state is not None and stored and state[2:] == (epoch, code):
            if state[:2] == (snap, load):
                how = "kept"
                con.execute(f"CREATE TEMP TABLE {CHANGED} (id_number VARCHAR)")
                con.execute(f"CREATE TEMP TABLE {WAS} AS SELECT * FROM {SPINE_TABLE} LIMIT 0")
            elif _update(con, state[0], state[1], snap, columns, keys):
                how = "updated"
        if how == "built":
            con.execute(f"CREATE OR REPLACE TABLE {SPINE_TABLE} AS {_spine_sql(columns)}", [snap, snap])
            con.execute(f"CREATE OR REPLACE TABLE {KEYS_TABLE} AS {keys.replace('{spine}', SPINE_TABLE)}")
        else:
            con.execute(f"CREATE TEMP TABLE {SINCE} AS SELECT ?::DATE AS snapshot_date", [state[0]])
        # In the same transaction as the rows: a run stopped half way leaves both as they were.
        con.execute("DELETE FROM spine_state")
        con.execute("INSERT INTO spine_state VALUES (?, ?, ?, ?, ?)", [snap, load, epoch, code, how])
        con.execute("COMMIT")
    except Exception:
        wh.rollback(con)
        raise
    wh.drop_temp(con, "link_spine", KEYS_VIEW)
    con.execute(f"CREATE TEMP VIEW link_spine AS SELECT * FROM {SPINE_TABLE}")
    con.execute(f"CREATE TEMP VIEW {KEYS_VIEW} AS SELECT * FROM {KEYS_TABLE}")
    return how


def keys_staged(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `link_spine_keys` is the stored spine's keys (`stage`), not yet to be made."""
    (n,), = con.execute("SELECT count(*) FROM duckdb_views() WHERE database_name = 'temp' AND view_name = ?",
                        [KEYS_VIEW]).fetchall()
    return bool(n)


def _spine_sql(columns: list[str], only: str | None = None) -> str:
    """The spine as built whole (parameters: the snapshot, twice), or of the numbers `only` lists."""
    sql = SPINE_SQL if only is None else SPINE_SQL.replace(
        "WHERE h.id_number_status = 'valid')", f"WHERE h.id_number_status = 'valid' AND h.id_number IN ({only}))", 1)
    assert only is None or sql != SPINE_SQL, "SPINE_SQL no longer filters valid numbers where expected"
    return f"SELECT source_row AS pi, {', '.join(columns)} FROM ({sql})"


def _update(con: duckdb.DuckDBPyConnection, built: date, built_load: int, snap: date, columns: list[str],
            keys: str) -> bool:
    """Bring the stored spine of the snapshot of `built` to that of `snap` by the numbers that
    changed (inside the caller's transaction); False (nothing done) when `built` is not the
    snapshot just before, is no longer stored as it was built, or most of the snapshot was stored
    anew (building it whole is cheaper)."""
    diff = snapshot_rows.difference(con, "hukou", snap)
    if diff is None or diff[0] != built or _load(con, built) != built_load or snap <= built:
        return False
    _, gone, came = diff
    con.execute(IDENTITY_DDL)
    b, s = literal(built), literal(snap)
    then, now = (f"SELECT source_row, person_key, is_primary FROM hukou_identity WHERE snapshot_date = {d}" for d in (b, s))
    # The numbers built again: of rows that went or came; of rows whose identity exception came,
    # went or changed (read on both snapshots: a row kept in place keeps its row; when the living
    # person a cancelled number belonged to leaves, the number is its own person again, its row
    # unchanged); whose history moved.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE spine_touched AS
        WITH moved AS ((({then}) EXCEPT ({now})) UNION (({now}) EXCEPT ({then})))
        SELECT id_number FROM {gone} UNION SELECT id_number FROM {came}
        UNION SELECT h.id_number FROM ds_hukou_at({b}) h SEMI JOIN moved x ON x.source_row = h.source_row
        UNION SELECT h.id_number FROM ds_hukou_at({s}) h SEMI JOIN moved x ON x.source_row = h.source_row
        UNION SELECT id_number FROM hukou_names WHERE changed_on > {b} AND changed_on <= {s}""")
    con.execute("DELETE FROM spine_touched WHERE id_number IS NULL")
    con.execute(f"CREATE TEMP TABLE {WAS} AS SELECT * FROM {SPINE_TABLE} WHERE id_number IN (SELECT id_number FROM spine_touched)")
    con.execute(f"DELETE FROM {SPINE_TABLE} WHERE id_number IN (SELECT id_number FROM spine_touched)")
    # (Staged first: the keys are made from the few rows built, not from the stored spine searched.)
    con.execute(f"CREATE OR REPLACE TEMP TABLE spine_built AS {_spine_sql(columns, 'SELECT id_number FROM spine_touched')}",
                [snap, snap])
    con.execute(f"INSERT INTO {SPINE_TABLE} SELECT * FROM spine_built")
    # Their keys as their rows: `pi` is a spine row's own (one row per `pi`), so the rows deleted
    # (WAS) name exactly the keys to go.
    con.execute(f"DELETE FROM {KEYS_TABLE} WHERE pi IN (SELECT pi FROM {WAS})")
    con.execute(f"INSERT INTO {KEYS_TABLE} {keys.replace('{spine}', 'spine_built')}")
    wh.drop_temp(con, "spine_built")
    con.execute(f"ALTER TABLE spine_touched RENAME TO {CHANGED}")
    return True
