"""Linkage accuracy against a synthetic answer key (truth/<date>/records.parquet)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.matching.records import SPINE_SQL, prepare_spine, records_sql, spine_snapshot


def persons(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """Each linked person's key with the ID number and hukou number of its primary hukou record:
    what the answer key names a person by (two persons may share a number, 一号多人)."""
    snap = spine_snapshot(con, night)
    prepare_spine(con, snap)
    return wh.query(con, f"SELECT person_key, id_number AS p_id, hukou_number AS p_hukou FROM ({SPINE_SQL}) "
                         "WHERE is_primary", [snap, snap]).unique("person_key", keep="first")


def _truth_in_force(links: pl.DataFrame, truth_dir: Path) -> pl.DataFrame:
    """The answer key of the files the links are about: a file the night did not replace (skipped,
    held, the same bytes again) is an earlier night's, and so is its key."""
    nights = sorted(d for d in truth_dir.parent.iterdir() if (d / "records.parquet").exists() and d.name <= truth_dir.name)
    files = links.select("dataset", "source_file").unique()
    parts = [pl.read_parquet(d / "records.parquet").join(files, on=["dataset", "source_file"], how="semi")
             for d in nights or [truth_dir]]
    truth = pl.concat(parts, how="diagonal_relaxed").filter(pl.col("dataset") != "hukou")
    return truth.unique(["dataset", "source_file", "source_row", "role"], keep="last", maintain_order=True)


def evaluate(links: pl.DataFrame, truth_dir: Path, people: pl.DataFrame | None = None,
             ties: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-record comparison, summary by dataset, by corruption and by phenomenon) for a night's
    links. `people` (from `persons`) maps a person key to the ID and hukou number the answer key
    uses; without it a key is taken for the ID number. `ties` (from `tie_records`): records
    nothing in which tells two persons apart, whose right outcome is no link."""
    truth = _truth_in_force(links, truth_dir)
    if ties is not None and ties.height:
        tie = ties.select("dataset", "source_file", "source_row", "role").with_columns(pl.lit(True).alias("_tie"))
        truth = truth.join(tie, on=["dataset", "source_file", "source_row", "role"], how="left").with_columns(
            pl.when(pl.col("_tie")).then(None).otherwise(pl.col("hukou_id_number")).alias("hukou_id_number"),
            pl.when(pl.col("_tie")).then(pl.lit("namesake_tie")).otherwise(pl.col("phenomenon")).alias("phenomenon")
            if "phenomenon" in truth.columns else pl.lit("namesake_tie").alias("phenomenon")).drop("_tie")
    if "phenomenon" not in truth.columns:
        truth = truth.with_columns(pl.lit("").alias("phenomenon"))
    got = links.select("dataset", "source_file", "source_row", "role", "method",
                       pl.when(pl.col("method") != "none").then(pl.col("person_key")).alias("person_key"))
    if people is None:
        got = got.with_columns(pl.col("person_key").alias("p_id"), pl.lit(None, pl.String).alias("p_hukou"))
    else:
        got = got.join(people, on="person_key", how="left")
    got = got.with_columns(pl.when(pl.col("person_key").is_not_null()).then(pl.col("p_id")).alias("predicted"))
    j = truth.join(got, on=["dataset", "source_file", "source_row", "role"], how="left")
    same = pl.col("predicted") == pl.col("hukou_id_number")
    if "true_hukou_number" in truth.columns and people is not None:
        same = same & (pl.col("p_hukou") == pl.col("true_hukou_number")).fill_null(True)
    j = j.with_columns(same.alias("_same")).with_columns(
        (pl.col("predicted").is_not_null() & pl.col("_same").fill_null(False)).alias("tp"),
        (pl.col("predicted").is_not_null() & ~pl.col("_same").fill_null(False)).alias("fp"),
        (pl.col("hukou_id_number").is_not_null() & ~pl.col("_same").fill_null(False)).alias("fn"),
        pl.when(pl.col("id_corruption") != "").then(pl.col("id_corruption"))
        .when(pl.col("name_corruption") != "").then(pl.col("name_corruption")).otherwise(pl.lit("clean")).alias("corruption"))

    def summary(by: str) -> pl.DataFrame:
        return j.group_by(by).agg(pl.len().alias("records"), pl.col("tp").sum(), pl.col("fp").sum(), pl.col("fn").sum()
                                  ).with_columns(
            (pl.col("tp") / (pl.col("tp") + pl.col("fp"))).fill_nan(1.0).alias("precision"),
            (pl.col("tp") / (pl.col("tp") + pl.col("fn"))).fill_nan(1.0).alias("recall")).sort(by)

    overall = j.select(pl.lit("all").alias("group"), pl.len().alias("records"), pl.col("tp").sum(), pl.col("fp").sum(),
                       pl.col("fn").sum()).with_columns(
        (pl.col("tp") / (pl.col("tp") + pl.col("fp"))).alias("precision"),
        (pl.col("tp") / (pl.col("tp") + pl.col("fn"))).alias("recall"))
    phenomena = summary("phenomenon").filter(pl.col("phenomenon") != "").with_columns(
        ("phenomenon:" + pl.col("phenomenon")).alias("phenomenon"))
    table = pl.concat([t.rename({t.columns[0]: "group"}).with_columns(pl.lit(kind).alias("kind"))
                       for kind, t in (("all", overall), ("dataset", summary("dataset")),
                                       ("corruption", summary("corruption")), ("phenomenon", phenomena))],
                      how="vertical_relaxed")
    return j, table


def tie_records(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """Records without an ID whose name and village fit two or more hukou persons (household
    heads, for records that name a head): nothing in them tells the persons apart, and the linker
    must not choose (a tie is no link). Their keys: dataset, source_file, source_row, role."""
    sql, args, _ = records_sql(con, night)
    if sql is None:
        return pl.DataFrame(schema={"dataset": pl.String, "source_file": pl.String, "source_row": pl.Int64,
                                    "role": pl.String})
    snap = spine_snapshot(con, night)
    prepare_spine(con, snap)
    return wh.query(con, f"""
        SELECT r.dataset, r.source_file, r.source_row, r.role
        FROM ({sql}) r JOIN ({SPINE_SQL}) s ON s.form = r.form AND s.village = r.village AND s.is_primary
             AND (r.is_head IS NULL OR s.relation = '户主')
        WHERE r.id_status = 'missing'
        GROUP BY ALL HAVING count(*) >= 2""", [*args, snap, snap])
