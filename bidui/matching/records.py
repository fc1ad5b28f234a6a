"""What is linked: every person-bearing record of the snapshots in force on a night, and the
hukou spine it is linked to. Read from the warehouse with SQL; keys joined from name_keys."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.datasets import DATASETS

# Datasets whose person is the head of a household (户主): the spec's 户主证件号码 / 户主姓名.
HEAD_DATASETS = ("dangerous_housing", "register_households")
# Context a dataset carries besides ID and name, usable as evidence of identity.
CONTEXT = {
    "register_members": {"birth": "m.birth_date", "sex": "m.sex", "village": "h.village_code"},
    "register_households": {"village": "m.village_code"},
    "dangerous_housing": {"village": "m.village_code"},
    "deaths": {"event": "m.death_date"},
}


def _snapshot(con: duckdb.DuckDBPyConnection, dataset: str, night: date) -> date | None:
    return wh.in_force(con, night).get(dataset)


# The identity of every hukou record with a valid ID (`person_key`): its ID number, unless that
# number is held by two different persons (一号多人: told apart by hukou number, and by rank within
# it should both sit in one household), or the record is a cancelled (注销) second number of a
# person with a living record under another number (一人多号: that record's key, not primary).
# Two rows of one person under one number (listed twice) share the key.
IDENTITY_SQL = """
    WITH h AS (
        SELECT h.source_row, h.id_number, h.hukou_number, h.status, h.sex, k.simplified AS form,
               substr(h.address_code, 1, 6) AS county,
               coalesce(h.birth_date, try_strptime(substr(h.id_number, 7, 8), '%Y%m%d')::DATE) AS born
        FROM ds_hukou h LEFT JOIN name_keys k ON k.name = h.name
        WHERE h.snapshot_date = ? AND h.id_number_status = 'valid'),
    shared AS (
        SELECT id_number FROM h GROUP BY id_number
        HAVING count(DISTINCT coalesce(form, '') || '|' || coalesce(CAST(born AS VARCHAR), '')) > 1),
    keyed AS (
        SELECT h.*, CASE WHEN s.id_number IS NULL THEN h.id_number
                         ELSE h.id_number || '~' || coalesce(h.hukou_number, '')
                              || CASE WHEN count(*) OVER (PARTITION BY h.id_number, h.hukou_number) > 1
                                      THEN '~' || dense_rank() OVER (PARTITION BY h.id_number, h.hukou_number
                                                                     ORDER BY h.form, h.born) ELSE '' END END AS own_key
        FROM h LEFT JOIN shared s ON s.id_number = h.id_number),
    second_numbers AS (
        SELECT c.source_row, min(o.own_key) AS person_key
        FROM keyed c JOIN keyed o ON o.form = c.form AND o.born = c.born AND o.county = c.county
             AND o.sex IS NOT DISTINCT FROM c.sex AND o.status = '正常' AND o.id_number <> c.id_number
        WHERE c.status = '注销'
        GROUP BY c.source_row HAVING count(DISTINCT o.own_key) = 1)
    SELECT k.source_row, coalesce(a.person_key, k.own_key) AS person_key, a.source_row IS NULL AS is_primary
    FROM keyed k LEFT JOIN second_numbers a ON a.source_row = k.source_row"""
IDENTITY_DDL = ("CREATE TABLE IF NOT EXISTS hukou_identity (snapshot_date DATE NOT NULL, source_row BIGINT NOT NULL, "
                "person_key VARCHAR NOT NULL, is_primary BOOLEAN NOT NULL)")
# Every name a hukou ID number has carried, so a record linked through a name that hukou has since
# corrected still finds its person (the register and departments follow a correction late).
NAME_HISTORY_DDL = ("CREATE TABLE IF NOT EXISTS hukou_names (id_number VARCHAR NOT NULL, form VARCHAR NOT NULL, "
                    "pinyin VARCHAR, first_seen DATE NOT NULL)")


def ensure_identity(con: duckdb.DuckDBPyConnection, snap: date) -> None:
    """The identities of a hukou snapshot, computed once and kept (the linker and the rules read them)."""
    con.execute(IDENTITY_DDL)
    if con.execute("SELECT count(*) FROM hukou_identity WHERE snapshot_date = ?", [snap]).fetchone()[0]:
        return
    con.execute(f"INSERT INTO hukou_identity SELECT ?::DATE, * FROM ({IDENTITY_SQL})", [snap, snap])


def remember_names(con: duckdb.DuckDBPyConnection, snap: date) -> None:
    """Add the snapshot's new (ID, name form) pairs to the name history."""
    con.execute(NAME_HISTORY_DDL)
    con.execute("""
        INSERT INTO hukou_names
        SELECT c.id_number, c.form, c.pinyin, ?::DATE FROM (
            SELECT h.id_number, k.simplified AS form, any_value(k.pinyin) AS pinyin
            FROM ds_hukou h JOIN name_keys k ON k.name = h.name
            WHERE h.snapshot_date = ? AND h.id_number_status = 'valid' AND k.simplified IS NOT NULL GROUP BY ALL) c
        ANTI JOIN hukou_names n ON n.id_number = c.id_number AND n.form = c.form""", [snap, snap])


# Parameters: the snapshot date, twice.
SPINE_SQL = """
    WITH cur AS (
        SELECT i.person_key, h.id_number, i.is_primary, h.name, k.simplified AS form, k.pinyin, h.sex, h.birth_date,
               h.address_code AS village, h.status, h.status_date, h.hukou_number, h.relation, h.source_row
        FROM ds_hukou h JOIN hukou_identity i ON i.snapshot_date = h.snapshot_date AND i.source_row = h.source_row
        LEFT JOIN name_keys k ON k.name = h.name
        WHERE h.snapshot_date = ?),
    renamed AS (SELECT id_number FROM hukou_names GROUP BY id_number HAVING count(*) > 1),
    former AS (
        SELECT c.person_key, c.id_number, arg_max(n.form, n.first_seen) AS former_form,
               arg_max(n.pinyin, n.first_seen) AS former_pinyin
        FROM cur c SEMI JOIN renamed r ON r.id_number = c.id_number
        -- a number two persons share carries both their names: neither is a former name
        JOIN hukou_names n ON n.id_number = c.id_number AND n.form <> c.form AND n.first_seen < ?
        WHERE c.person_key = c.id_number
        GROUP BY ALL)
    SELECT DISTINCT ON (c.person_key, c.id_number) c.* EXCLUDE (source_row), f.former_form, f.former_pinyin
    FROM cur c LEFT JOIN former f ON f.person_key = c.person_key AND f.id_number = c.id_number
    ORDER BY c.person_key, c.id_number, c.source_row"""


def spine_snapshot(con: duckdb.DuckDBPyConnection, night: date) -> date:
    snap = _snapshot(con, "hukou", night)
    if snap is None:
        raise LookupError(f"no hukou snapshot in force on {night}: ingest one first")
    return snap


def spine(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """Hukou records in force, one row per person and ID number: `person_key` is the person
    (records are linked to it), `id_number` the number this row carries (a person with a second,
    cancelled number has two rows); `former_form`, the name this number carried before a
    correction. A person listed twice under one number counts once (the first row)."""
    snap = spine_snapshot(con, night)
    prepare_spine(con, snap)
    return wh.query(con, SPINE_SQL, [snap, snap])


def prepare_spine(con: duckdb.DuckDBPyConnection, snap: date) -> None:
    ensure_identity(con, snap)
    remember_names(con, snap)


def linked_datasets() -> list[str]:
    return [ds.code for ds in DATASETS if ds.persons and ds.code != "hukou"]


REC_BLOCK = 10**12  # rec = person reference × REC_BLOCK + source row


def records_sql(con: duckdb.DuckDBPyConnection, night: date, only: list[str] | None = None
                ) -> tuple[str | None, list, list[str]]:
    """SQL selecting the person-bearing records in force (one row per person reference), its
    parameters, and the datasets skipped (no snapshot). `only` limits the datasets. `rec` numbers
    the records: a snapshot is one file, so (person reference, source row) is unique."""
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
            join = ("LEFT JOIN ds_register_households h ON h.household_code = m.household_code "
                    "AND h.snapshot_date = (SELECT max(snapshot_date) FROM snapshots WHERE dataset = 'register_households' "
                    "AND snapshot_date <= ?)") if "h." in " ".join(ctx.values()) else ""
            args += [night] if join else []
            parts.append(f"""
                SELECT {len(parts)} * {REC_BLOCK} + m.source_row AS rec, '{ds.code}' AS dataset, m.source_file, m.source_row, '{ref.role}' AS role,
                       m.{ref.id_column}_raw AS id_raw, m.{ref.id_column} AS id, m.{ref.id_column}_status AS id_status,
                       m.{ref.name_column}_raw AS name_raw, m.{ref.name_column} AS name, k.simplified AS form, k.pinyin,
                       {ctx.get('birth', 'NULL::DATE')} AS birth, {ctx.get('sex', 'NULL::VARCHAR')} AS sex,
                       {ctx.get('village', 'NULL::VARCHAR')} AS village, {ctx.get('event', 'NULL::DATE')} AS event,
                       {'TRUE' if ds.code in HEAD_DATASETS else 'NULL::BOOLEAN'} AS is_head
                FROM ds_{ds.code} m {join}
                LEFT JOIN name_keys k ON k.name = m.{ref.name_column}
                WHERE m.snapshot_date = ?""")
            args.append(snap)
    return (" UNION ALL ".join(parts) if parts else None), args, skipped


def records(con: duckdb.DuckDBPyConnection, night: date, only: list[str] | None = None) -> tuple[pl.DataFrame, list[str]]:
    """Person-bearing records in force as a frame (for small tasks and benchmarks: the nightly
    linker keeps them in DuckDB), and the datasets skipped."""
    sql, args, skipped = records_sql(con, night, only)
    if sql is None:
        return pl.DataFrame(), skipped
    return wh.query(con, sql, args), skipped
