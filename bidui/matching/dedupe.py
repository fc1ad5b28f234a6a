"""Register de-duplication: the same person listed in two households, or twice in one.

Members linked to one hukou person are one person (the linker already tolerates typos, homophones,
Excel and form variants); members nobody can find are compared on their own valid ID, then on
name and birth date."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.matching.link_nights import on_night


def register_duplicates(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """One row per member row that shares its person with another row: group, household, row
    (from the night's stored links)."""
    snap = wh.in_force(con, night).get("register_members")
    if snap is None:
        return pl.DataFrame()
    members = wh.query(con, """
        SELECT m.source_file, m.source_row, m.row_id, m.household_code, m.id_number, m.id_number_status, m.name, k.simplified AS form,
               m.birth_date
        FROM ds_register_members_at(?) m LEFT JOIN name_keys k ON k.name = m.name""", [snap])
    from bidui.matching.carry import unpaired  # (carry reads the matching modules)

    paired = "register_members" not in unpaired(con, night)  # links made on these rows, not another snapshot's
    linked = wh.query(con, f"SELECT row_id, person_key FROM links WHERE {on_night('?::DATE')} "
                           f"AND dataset = 'register_members' AND method <> 'none' AND {str(paired).upper()}", [night])
    m = members.join(linked, on="row_id", how="left")
    key = (pl.when(pl.col("person_key").is_not_null()).then(pl.lit("P:") + pl.col("person_key"))
           .when(pl.col("id_number_status") == "valid").then(pl.lit("I:") + pl.col("id_number"))
           .when(pl.col("birth_date").is_not_null() & pl.col("form").is_not_null())
           .then(pl.lit("N:") + pl.col("form") + "|" + pl.col("birth_date").cast(pl.String)))
    m = m.with_columns(key.alias("group_key")).filter(pl.col("group_key").is_not_null())
    dup = m.filter(pl.len().over("group_key") >= 2)
    return dup.select("group_key", "household_code", "source_file", "source_row", "person_key").sort("group_key", "source_row")


def store_duplicates(con: duckdb.DuckDBPyConnection, night: date, dups: pl.DataFrame) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS register_duplicates (night DATE, group_key VARCHAR, household_code VARCHAR, "
                "source_file VARCHAR, source_row BIGINT, person_key VARCHAR)")
    con.execute("DELETE FROM register_duplicates WHERE night = ?", [night])
    if dups.height:
        wh.insert_frame(con, "register_duplicates", dups.with_columns(pl.lit(night).alias("night")),
                        ["night", "group_key", "household_code", "source_file", "source_row", "person_key"])
