"""Linkage accuracy against a synthetic answer key (truth/<date>/records.parquet)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.matching.records import SPINE_SQL, records_sql, spine_snapshot


def evaluate(links: pl.DataFrame, truth_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-record comparison, summary by dataset and by corruption) for a night's links."""
    truth = pl.read_parquet(truth_dir / "records.parquet").filter(pl.col("dataset") != "hukou")
    got = links.select("dataset", "source_file", "source_row", "role", "method",
                       pl.when(pl.col("method") != "none").then(pl.col("person_key")).alias("predicted"))
    j = truth.join(got, on=["dataset", "source_file", "source_row", "role"], how="left")
    j = j.with_columns(
        (pl.col("predicted").is_not_null() & (pl.col("predicted") == pl.col("hukou_id_number"))).alias("tp"),
        (pl.col("predicted").is_not_null() & (pl.col("predicted") != pl.col("hukou_id_number")).fill_null(True)).alias("fp"),
        (pl.col("hukou_id_number").is_not_null() & (pl.col("predicted") != pl.col("hukou_id_number")).fill_null(True)
         ).alias("fn"),
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
    table = pl.concat([overall, summary("dataset").rename({"dataset": "group"}),
                       summary("corruption").rename({"corruption": "group"})], how="vertical_relaxed")
    return j, table


def namesake_ties(con: duckdb.DuckDBPyConnection, night: date, per_record: pl.DataFrame) -> pl.DataFrame:
    """Records without an ID whose name and village fit two or more hukou persons (household
    heads, for records that name a head): nothing in them tells the persons apart, and the linker
    must not choose (a tie is no link). Returns per_record's rows for them."""
    sql, args, _ = records_sql(con, night)
    if sql is None:
        return per_record.clear()
    ties = wh.query(con, f"""
        SELECT r.dataset, r.source_file, r.source_row, r.role
        FROM ({sql}) r JOIN ({SPINE_SQL}) s ON s.form = r.form AND s.village = r.village
             AND (r.is_head IS NULL OR s.relation = '户主')
        WHERE r.id_status = 'missing'
        GROUP BY ALL HAVING count(*) >= 2""", [*args, spine_snapshot(con, night)])
    return per_record.join(ties, on=["dataset", "source_file", "source_row", "role"], how="semi")
