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


def spine(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """Hukou persons in force: the identities records are linked to (person_key = hukou ID)."""
    snap = _snapshot(con, "hukou", night)
    if snap is None:
        raise LookupError(f"no hukou snapshot in force on {night}: ingest one first")
    return wh.query(con, """
        SELECT h.id_number AS person_key, h.name, k.simplified AS form, k.pinyin, h.sex, h.birth_date,
               h.address_code AS village, h.status, h.status_date, h.hukou_number, h.relation
        FROM ds_hukou h LEFT JOIN name_keys k ON k.name = h.name
        WHERE h.snapshot_date = ? AND h.id_number_status = 'valid'
    """, [snap]).unique("person_key", keep="first", maintain_order=True).sort("person_key")


def linked_datasets() -> list[str]:
    return [ds.code for ds in DATASETS if ds.persons and ds.code != "hukou"]


def records(con: duckdb.DuckDBPyConnection, night: date, only: list[str] | None = None,
            first_rec: int = 0) -> tuple[pl.DataFrame, list[str]]:
    """Person-bearing records in force (one row per person reference), numbered from `first_rec`,
    and the datasets skipped (no snapshot). `only` limits it to some datasets."""
    parts, skipped = [], []
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
            args = [night] if join else []
            sql = f"""
                SELECT '{ds.code}' AS dataset, m.source_file, m.source_row, '{ref.role}' AS role,
                       m.{ref.id_column}_raw AS id_raw, m.{ref.id_column} AS id, m.{ref.id_column}_status AS id_status,
                       m.{ref.name_column}_raw AS name_raw, m.{ref.name_column} AS name, k.simplified AS form, k.pinyin,
                       {ctx.get('birth', 'NULL::DATE')} AS birth, {ctx.get('sex', 'NULL::VARCHAR')} AS sex,
                       {ctx.get('village', 'NULL::VARCHAR')} AS village, {ctx.get('event', 'NULL::DATE')} AS event,
                       {'TRUE' if ds.code in HEAD_DATASETS else 'NULL::BOOLEAN'} AS is_head
                FROM ds_{ds.code} m {join}
                LEFT JOIN name_keys k ON k.name = m.{ref.name_column}
                WHERE m.snapshot_date = ?
            """
            parts.append(wh.query(con, sql, [*args, snap]))
    if not parts:
        return pl.DataFrame(), skipped
    out = pl.concat(parts, how="vertical_relaxed").with_row_index("rec", offset=first_rec)
    return out, skipped
