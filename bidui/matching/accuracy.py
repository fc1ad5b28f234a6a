"""Linkage accuracy against a synthetic answer key (truth/<date>/records.parquet)."""

from __future__ import annotations

from pathlib import Path

import polars as pl


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
