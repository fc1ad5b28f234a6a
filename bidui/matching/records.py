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


SPINE_SQL = """
    SELECT DISTINCT ON (h.id_number) h.id_number AS person_key, h.name, k.simplified AS form, k.pinyin, h.sex,
           h.birth_date, h.address_code AS village, h.status, h.status_date, h.hukou_number, h.relation
    FROM ds_hukou h LEFT JOIN name_keys k ON k.name = h.name
    WHERE h.snapshot_date = ? AND h.id_number_status = 'valid'
    ORDER BY h.id_number, h.source_row"""


def spine_snapshot(con: duckdb.DuckDBPyConnection, night: date) -> date:
    snap = _snapshot(con, "hukou", night)
    if snap is None:
        raise LookupError(f"no hukou snapshot in force on {night}: ingest one first")
    return snap


def spine(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """Hukou persons in force: the identities records are linked to (person_key = hukou ID); a
    person listed twice counts once (the first row)."""
    return wh.query(con, SPINE_SQL, [spine_snapshot(con, night)])


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
