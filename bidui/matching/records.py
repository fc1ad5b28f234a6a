"""What is linked: every person-bearing record of the snapshots in force on a night, and the
hukou spine it is linked to. Read from the warehouse with SQL; keys joined from name_keys."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.connectors.changes import COMPARED_COLUMNS, changed_rows
from bidui.datasets import BY_CODE, DATASETS
from bidui.matching.link_nights import literal

# Datasets whose person is the head of a household (户主): the spec's 户主证件号码 / 户主姓名.
HEAD_DATASETS = ("dangerous_housing", "register_households")
# Context a dataset carries besides ID and name, usable as evidence of identity.
CONTEXT = {
    "register_members": {"birth": "m.birth_date", "sex": "m.sex", "village": "h.village_code"},
    "register_households": {"village": "m.village_code"},
    "dangerous_housing": {"village": "m.village_code"},
    "deaths": {"event": "m.death_date"},
}


def reads_households(dataset: str) -> bool:
    """Does a record of the dataset take context from its register household (`h.`, joined by
    `records_sql`): a member's village is its household's."""
    return any(sql.startswith("h.") for sql in CONTEXT.get(dataset, {}).values())


def _snapshot(con: duckdb.DuckDBPyConnection, dataset: str, night: date) -> date | None:
    return wh.in_force(con, night).get(dataset)


# The identity of a hukou record with a valid ID (`person_key`) is its ID number, except in two
# cases, which `hukou_identity` lists (it stays small: a join with four million rows costs nothing):
# - a number held by two different persons (一号多人: another name or birth date): ID~hukou number
#   (and ~rank, should both sit in one household);
# - a cancelled (注销) record whose name, sex, birth date and county are those of exactly one living
#   (正常) record under another number (一人多号): that record's key, and not primary (it is not a
#   second person).
# Two rows of one person under one number (listed twice) are one person.
IDENTITY_SQL = """
    WITH h AS (
        SELECT source_row, id_number, name, hukou_number, status, sex, substr(address_code, 1, 6) AS county,
               coalesce(birth_date, try_strptime(substr(id_number, 7, 8), '%Y%m%d')::DATE) AS born
        FROM ds_hukou_at(?) WHERE id_number_status = 'valid'),
    repeated AS (SELECT h.* FROM h SEMI JOIN (SELECT id_number FROM h GROUP BY id_number HAVING count(*) > 1) x
                 ON x.id_number = h.id_number),
    shared AS (SELECT id_number FROM repeated GROUP BY id_number
               HAVING count(DISTINCT name) > 1 OR count(DISTINCT born) > 1),
    keyed AS (
        SELECT r.source_row, r.id_number || '~' || coalesce(r.hukou_number, '')
               || CASE WHEN count(*) OVER (PARTITION BY r.id_number, r.hukou_number) > 1
                       THEN '~' || dense_rank() OVER (PARTITION BY r.id_number, r.hukou_number ORDER BY r.name, r.born)
                       ELSE '' END AS person_key
        FROM repeated r SEMI JOIN shared s ON s.id_number = r.id_number),
    cancelled AS (SELECT * FROM h WHERE status = '注销'),
    living AS (
        SELECT l.*, coalesce(k.person_key, l.id_number) AS own_key
        FROM h l SEMI JOIN cancelled c ON c.name = l.name AND c.born = l.born AND c.county = l.county
        LEFT JOIN keyed k ON k.source_row = l.source_row
        WHERE l.status = '正常'),
    second AS (
        SELECT c.source_row, min(l.own_key) AS person_key
        FROM cancelled c JOIN living l ON l.name = c.name AND l.born = c.born AND l.county = c.county
             AND l.sex IS NOT DISTINCT FROM c.sex AND l.id_number <> c.id_number
        GROUP BY c.source_row HAVING count(DISTINCT l.own_key) = 1)
    SELECT source_row, person_key, TRUE AS is_primary FROM keyed ANTI JOIN second USING (source_row)
    UNION ALL
    SELECT source_row, person_key, FALSE FROM second"""
IDENTITY_DDL = ("CREATE TABLE IF NOT EXISTS hukou_identity (snapshot_date DATE NOT NULL, source_row BIGINT NOT NULL, "
                "person_key VARCHAR NOT NULL, is_primary BOOLEAN NOT NULL)")
IDENTITY_RUNS_DDL = "CREATE TABLE IF NOT EXISTS hukou_identity_runs (snapshot_date DATE PRIMARY KEY, load_id BIGINT)"
# The name each hukou number carries, and the one it carried before its last correction: a record
# linked through the old name still finds its person (the register and departments follow a
# correction late). Numbers two persons share are left out (neither name is a former one).
NAME_HISTORY_DDL = ("CREATE TABLE IF NOT EXISTS hukou_names (id_number VARCHAR NOT NULL, name VARCHAR NOT NULL, "
                    "former VARCHAR, changed_on DATE)")


def ensure_identity(con: duckdb.DuckDBPyConnection, snap: date, whole: bool = False) -> None:
    """The identity exceptions of a hukou snapshot, computed once per load of it and kept (the
    linker and the rules read them), from the snapshot before's where they can be (`whole`: not).
    A night run again with another hukou file has a new load: identities keyed to the rows of the
    file it replaced would name the wrong rows."""
    con.execute(IDENTITY_DDL)
    con.execute(IDENTITY_RUNS_DDL)
    # Nothing is written when the load's identities are there: the what-if reads a read-only warehouse.
    if "load_id" not in {c for c, in con.execute("SELECT column_name FROM information_schema.columns "
                                                 "WHERE table_name = 'hukou_identity_runs'").fetchall()}:
        # A warehouse of before: the next nightly run brings it up to date; read-only, it is taken as it is.
        if con.execute("SELECT current_setting('access_mode')").fetchall()[0][0] == "read_only":
            return
        con.execute("ALTER TABLE hukou_identity_runs ADD COLUMN load_id BIGINT")
    load = con.execute("SELECT max(load_id) FROM snapshots WHERE dataset = 'hukou' AND snapshot_date = ?",
                       [snap]).fetchall()[0][0]
    if con.execute("SELECT count(*) FROM hukou_identity_runs WHERE snapshot_date = ? AND load_id IS NOT DISTINCT FROM ?",
                   [snap, load]).fetchall()[0][0]:
        return
    con.execute("DELETE FROM hukou_identity WHERE snapshot_date = ?", [snap])
    con.execute("DELETE FROM hukou_identity_runs WHERE snapshot_date = ?", [snap])
    if whole or not _identity_from_before(con, snap):
        con.execute(f"INSERT INTO hukou_identity SELECT ?::DATE, * FROM ({IDENTITY_SQL})", [snap, snap])
    con.execute("INSERT INTO hukou_identity_runs (snapshot_date, load_id) VALUES (?, ?)", [snap, load])


# How IDENTITY_SQL reads a hukou row's birth date and county (the persons a cancelled number may be).
_BORN = "coalesce(birth_date, try_strptime(substr(id_number, 7, 8), '%Y%m%d')::DATE)"
_COUNTY = "substr(address_code, 1, 6)"
_IDENTITY_ROWS = "FROM ds_hukou_at(?) WHERE id_number_status = 'valid')"
assert _BORN in IDENTITY_SQL and _COUNTY in IDENTITY_SQL and IDENTITY_SQL.count(_IDENTITY_ROWS) == 1


def _identity_from_before(con: duckdb.DuckDBPyConnection, snap: date) -> bool:
    """The identity exceptions of a hukou snapshot from those of the snapshot just before (when
    they were computed for its load and most of its rows were kept in place): computed again only
    for the rows a change can reach, copied for the others (inside `ensure_identity`); False when
    they must be computed whole. An exception depends on the rows sharing the number (一号多人) and,
    for a cancelled number, on the living rows with its name, birth date and county and on their
    own numbers' rows (一人多号). So the rows computed again are those whose number a row that
    went or came had, and those of the name groups of every row under such a number; they are
    computed from every row of their numbers, and nothing outside them can change (1.26 s → about
    0.3 s at the large size)."""
    diff = snapshot_rows.difference(con, "hukou", snap)
    if diff is None:
        return False
    before, gone, came = diff
    (done,), = con.execute("SELECT count(*) FROM hukou_identity_runs r JOIN snapshots s ON s.dataset = 'hukou' "
                           "AND s.snapshot_date = r.snapshot_date AND s.load_id = r.load_id WHERE r.snapshot_date = ?",
                           [before]).fetchall()
    if not done:
        return False
    b, t = literal(before), literal(snap)
    valid = "id_number_status = 'valid'"
    group = f"name, {_BORN} AS born, {_COUNTY} AS county"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _identity_ids AS
                    SELECT id_number FROM {gone} WHERE id_number IS NOT NULL
                    UNION SELECT id_number FROM {came} WHERE id_number IS NOT NULL""")
    # The rows of `before` are those that went and those kept, and a kept row is the very row
    # stored for both snapshots: so the name groups of the rows under those numbers on either
    # snapshot are those of the rows that went and of tonight's (one scan of four million rows
    # fewer: 0.22 → 0.14 s at the large size).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _identity_groups AS
        SELECT {group} FROM {gone} WHERE {valid} UNION SELECT {group} FROM {came} WHERE {valid}
        UNION SELECT {group} FROM ds_hukou_at({t}) WHERE {valid} AND id_number IN (SELECT id_number FROM _identity_ids)""")
    # (the rows of the groups' names first: a birth date parsed for every row cost 0.18–0.22 s
    # at the large size, against 0.12 s)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _identity_redo AS
        SELECT source_row, id_number FROM ds_hukou_at({t}) WHERE {valid} AND id_number IN (SELECT id_number FROM _identity_ids)
        UNION SELECT h.source_row, h.id_number
              FROM (SELECT source_row, id_number, {group} FROM ds_hukou_at({t})
                    WHERE {valid} AND name IN (SELECT name FROM _identity_groups)) h
              SEMI JOIN _identity_groups g ON g.name = h.name AND g.born = h.born AND g.county = h.county""")
    # Computed from every row of the numbers of the rows computed again; kept for those rows only.
    only = IDENTITY_SQL.replace(_IDENTITY_ROWS, f"FROM ds_hukou_at(?) WHERE {valid} AND id_number IN "
                                                "(SELECT id_number FROM _identity_redo))")
    con.execute(f"INSERT INTO hukou_identity SELECT ?::DATE, * FROM ({only}) "
                "WHERE source_row IN (SELECT source_row FROM _identity_redo)", [snap, snap])
    # The others: the rows kept in place keep their row, and their exception.
    con.execute(f"""
        INSERT INTO hukou_identity SELECT {t}, source_row, person_key, is_primary FROM hukou_identity
        WHERE snapshot_date = {b} AND source_row NOT IN (SELECT source_row FROM _identity_redo)
          AND source_row NOT IN (SELECT source_row FROM {gone})""")
    for table in ("_identity_ids", "_identity_groups", "_identity_redo"):
        con.execute(f"DROP TABLE {table}")
    return True


# The hukou snapshot (and its load) the name history was last brought up to.
NAMES_AT_DDL = "CREATE TABLE IF NOT EXISTS hukou_names_at (snapshot_date DATE NOT NULL, load_id BIGINT)"
# How many times the history was read again from the first: a night linked with another reading
# may have taken other former names for numbers whose rows did not change (`names_epoch`).
NAMES_EPOCH_DDL = "CREATE TABLE IF NOT EXISTS hukou_names_epoch (epoch BIGINT NOT NULL)"


def names_epoch(con: duckdb.DuckDBPyConnection) -> int:
    """The reading of the name history now (the carry plan compares it with the night before's)."""
    con.execute(NAMES_EPOCH_DDL)
    return int(con.execute("SELECT coalesce(max(epoch), 0) FROM hukou_names_epoch").fetchone()[0])


def remember_names(con: duckdb.DuckDBPyConnection, snap: date) -> None:
    """Bring the name history up to the snapshot: a number whose name changed keeps the old one.
    The history is what reading every stored hukou snapshot up to this one in date order gives:
    it is brought up through each snapshot since the one it was last brought up to, and read
    again from the first when it is ahead of this one (a night folder that came late, an older
    night run again) or that snapshot is gone or was loaded again (else a late night would take
    names from a later snapshot for former ones, and say a correction was undone)."""
    con.execute(NAME_HISTORY_DDL)
    con.execute(NAMES_AT_DDL)
    last = con.execute("SELECT a.snapshot_date, a.load_id = s.load_id FROM hukou_names_at a "
                       "LEFT JOIN snapshots s ON s.dataset = 'hukou' AND s.snapshot_date = a.snapshot_date").fetchone()
    if last is not None and last[0] == snap and last[1]:
        return  # brought up to this very load already
    since = last[0] if last is not None and last[1] and last[0] < snap else None
    if since is None:
        con.execute("DELETE FROM hukou_names")
        con.execute("DELETE FROM hukou_names_at")
        epoch = names_epoch(con) + 1
        con.execute("DELETE FROM hukou_names_epoch")
        con.execute("INSERT INTO hukou_names_epoch VALUES (?)", [epoch])
    days = [d for d, in con.execute("SELECT DISTINCT snapshot_date FROM snapshots WHERE dataset = 'hukou' AND "
                                    "snapshot_date <= ? AND snapshot_date > coalesce(?::DATE, DATE '0001-01-01') "
                                    "ORDER BY 1", [snap, since]).fetchall()]
    for day in days:
        _bring_names_up(con, day, since)
        since = day


def _bring_names_up(con: duckdb.DuckDBPyConnection, snap: date, last: date | None) -> None:
    """One step of the name history: from the snapshot `last` it was brought up to, only the
    numbers of rows that changed since are read again (grouping the whole hukou by number was
    1.3 s a night at the large size; the rows that changed are the ones the carry plan compared,
    `changed_rows`); all of them the first time."""
    load = con.execute("SELECT max(load_id) FROM snapshots WHERE dataset = 'hukou' AND snapshot_date = ?",
                       [snap]).fetchone()[0]
    only = ""
    if last is not None:
        changed = changed_rows(con, BY_CODE["hukou"], last, snap, COMPARED_COLUMNS["hukou"])
        only = f" AND id_number IN (SELECT id_number FROM {changed} WHERE id_number IS NOT NULL)"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _names_now AS
        SELECT id_number, min(name) AS name FROM ds_hukou_at(?)
        WHERE id_number_status = 'valid' AND name IS NOT NULL AND name <> ''{only}
        GROUP BY id_number HAVING min(name) = max(name)""", [snap])
    # A corrected number's row is replaced, not updated: DuckDB's UPDATE of a few hundred names
    # rewrote the whole four-million-row table's columns (0.55 s, against 0.07 s).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _names_moved AS
        SELECT n.id_number, c.name, n.name AS former, ?::DATE AS changed_on
        FROM _names_now c JOIN hukou_names n ON n.id_number = c.id_number WHERE c.name <> n.name""", [snap])
    con.execute("DELETE FROM hukou_names WHERE id_number IN (SELECT id_number FROM _names_moved)")
    con.execute("INSERT INTO hukou_names SELECT id_number, name, former, changed_on FROM _names_moved")
    con.execute("INSERT INTO hukou_names SELECT c.id_number, c.name, NULL, NULL FROM _names_now c "
                "ANTI JOIN hukou_names n ON n.id_number = c.id_number")
    con.execute("DROP TABLE _names_now")
    con.execute("DROP TABLE _names_moved")
    # Last, so that a run stopped before it brings the history up again from where it was.
    con.execute("DELETE FROM hukou_names_at")
    con.execute("INSERT INTO hukou_names_at VALUES (?, ?)", [snap, load])


# Which of the rows of a person listed twice under one number stands for the person: by what the
# rows say (a living row before a cancelled one, then by household…), not by their place in the
# file. An expression over a hukou row whose address column is `{village}`; the least is chosen.
# The spine chooses by it, and so do the rules' views (`bidui.rules.views`: hukou_person).
PERSON_ROW_KEY = ("(status IS DISTINCT FROM '正常', coalesce(hukou_number, ''), coalesce(relation, ''), "
                  "coalesce({village}, ''), coalesce(status_date, DATE '0001-01-01'), coalesce(sex, ''), "
                  "coalesce(birth_date, DATE '0001-01-01'), coalesce(name, ''), source_row)")

# Parameters: the snapshot date, twice. `source_row`: the hukou row each spine row is (unique in
# the snapshot; `spine()` leaves it out).
SPINE_SQL = """
    WITH cur AS (
        SELECT coalesce(i.person_key, h.id_number) AS person_key, h.id_number, coalesce(i.is_primary, TRUE) AS is_primary,
               h.name, h.sex, h.birth_date, h.address_code AS village, h.status, h.status_date, h.hukou_number,
               h.relation, h.source_row
        FROM ds_hukou_at(?) h LEFT JOIN hukou_identity i ON i.snapshot_date = h.snapshot_date AND i.source_row = h.source_row
        WHERE h.id_number_status = 'valid'),
    -- A person listed twice under one number is one spine row: the first by what the rows say
    -- (a living row before a cancelled one, then by household…), not by their place in the file,
    -- so that hukou sent again in another order gives the same spine (a household link reads the
    -- row's household) and links carried from the night before stay what linking them would give.
    -- The few rows that are not their person's first are found and left out, rather than every
    -- first row found and kept: a semi join on four million rows cost 1 s of the spine's 2.3–4.5.
    -- Only the rows of a number listed twice are grouped by person: one column grouped over the
    -- four million rows, not two.
    listed AS (SELECT * FROM cur SEMI JOIN (SELECT id_number FROM cur GROUP BY id_number HAVING count(*) > 1) USING (id_number)),
    twice AS (SELECT person_key, id_number FROM listed GROUP BY ALL HAVING count(*) > 1),
    not_first AS (
        SELECT c.source_row FROM listed c SEMI JOIN twice USING (person_key, id_number)
        EXCEPT
        SELECT arg_min(c.source_row, """ + PERSON_ROW_KEY.format(village="village") + """)
        FROM listed c SEMI JOIN twice USING (person_key, id_number)
        GROUP BY c.person_key, c.id_number),
    former AS (SELECT n.id_number, k.simplified AS former_form, k.pinyin AS former_pinyin
               FROM hukou_names n JOIN name_keys k ON k.name = n.former
               WHERE n.former IS NOT NULL AND n.changed_on <= ?)
    SELECT c.*, k.simplified AS form, k.pinyin, f.former_form, f.former_pinyin
    FROM cur c ANTI JOIN not_first USING (source_row)
    LEFT JOIN name_keys k ON k.name = c.name
    LEFT JOIN former f ON f.id_number = c.id_number AND c.person_key = c.id_number"""


def spine_snapshot(con: duckdb.DuckDBPyConnection, night: date) -> date:
    snap = _snapshot(con, "hukou", night)
    if snap is None:
        raise LookupError(f"no hukou snapshot in force on {night}: ingest one first")
    return snap


def spine(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """Hukou records in force, one row per person and ID number: `person_key` is the person
    (records are linked to it), `id_number` the number this row carries (a person with a second,
    cancelled number has two rows); `former_form`, the name this number carried before a
    correction. A person listed twice under one number counts once (the first row by what the rows
    say, whatever their order)."""
    snap = spine_snapshot(con, night)
    prepare_spine(con, snap)
    return wh.query(con, SPINE_SQL, [snap, snap]).drop("source_row")


def prepare_spine(con: duckdb.DuckDBPyConnection, snap: date, whole: bool = False) -> None:
    ensure_identity(con, snap, whole)
    remember_names(con, snap)


def linked_datasets() -> list[str]:
    return [ds.code for ds in DATASETS if ds.persons and ds.code != "hukou"]


REC_BLOCK = 10**12  # rec = person reference × REC_BLOCK + source row


def restaged(dataset: str, role: str) -> str:
    return (f" AND m.row_id IN (SELECT row_id FROM link_restage WHERE dataset = '{dataset}' "
            f"AND role = '{role}')")


def records_sql(con: duckdb.DuckDBPyConnection, night: date, only: list[str] | None = None,
                restage: list[str] | tuple[str, ...] = ()) -> tuple[str | None, list, list[str]]:
    """SQL selecting the person-bearing records in force (one row per person reference), its
    parameters, and the datasets skipped (no snapshot). `only` limits the datasets; of those in
    `restage`, only the rows the temp table `link_restage` (dataset, role, row_id) lists
    (`bidui.matching.carry`). `rec` numbers the records the same either way: a snapshot is one
    file, so (person reference, source row) is unique."""
    parts, args, skipped = [], [], []
    in_force = wh.in_force(con, night)
    for ds in DATASETS:
        if not ds.persons or ds.code == "hukou" or (only is not None and ds.code not in only):
            continue
        snap = in_force.get(ds.code)
        if snap is None:
            skipped.append(ds.code)
            continue
        for ref in ds.persons:
            ctx = CONTEXT.get(ds.code, {})
            join = ("LEFT JOIN ds_register_households_at(?) h ON h.household_code = m.household_code"
                    if reads_households(ds.code) else "")
            args += [snap] + ([in_force.get("register_households")] if join else [])
            parts.append(f"""
                SELECT {len(parts)} * {REC_BLOCK} + m.source_row AS rec, '{ds.code}' AS dataset, m.source_file, m.source_row, '{ref.role}' AS role,
                       m.{ref.id_column}_raw AS id_raw, m.{ref.id_column} AS id, m.{ref.id_column}_status AS id_status,
                       m.{ref.name_column}_raw AS name_raw, m.{ref.name_column} AS name, k.simplified AS form, k.pinyin,
                       {ctx.get('birth', 'NULL::DATE')} AS birth, {ctx.get('sex', 'NULL::VARCHAR')} AS sex,
                       {ctx.get('village', 'NULL::VARCHAR')} AS village, {ctx.get('event', 'NULL::DATE')} AS event,
                       {'TRUE' if ds.code in HEAD_DATASETS else 'NULL::BOOLEAN'} AS is_head, m.row_id
                FROM ds_{ds.code}_at(?) m {join}
                LEFT JOIN name_keys k ON k.name = m.{ref.name_column}
                WHERE TRUE{restaged(ds.code, ref.role) if ds.code in restage else ''}""")
    return (" UNION ALL ".join(parts) if parts else None), args, skipped


def records(con: duckdb.DuckDBPyConnection, night: date, only: list[str] | None = None) -> tuple[pl.DataFrame, list[str]]:
    """Person-bearing records in force as a frame (for small tasks and benchmarks: the nightly
    linker keeps them in DuckDB), and the datasets skipped."""
    sql, args, skipped = records_sql(con, night, only)
    if sql is None:
        return pl.DataFrame(), skipped
    return wh.query(con, sql, args), skipped
