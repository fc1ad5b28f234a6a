"""Rule hits against a synthetic answer key (truth/<date>/clues.csv), per rule."""

from __future__ import annotations

from pathlib import Path

import polars as pl

KEY = ["rule_code", "subject_id_number", "place", "evidence_key"]


def _keyed(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        "rule_code", pl.col("subject_id_number").cast(pl.String).fill_null(""),
        pl.when(pl.col("household_code").fill_null("") != "").then(pl.col("household_code"))
        .otherwise(pl.col("hukou_number")).fill_null("").alias("place"),
        pl.col("evidence_key").cast(pl.String).fill_null("")).unique()


def evaluate(hits: pl.DataFrame, truth_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(per-rule table, false hits, missed clues)."""
    expected = _keyed(pl.read_csv(truth_dir / "clues.csv", infer_schema=False))
    got = _keyed(hits) if hits.height else expected.clear()
    tp = got.join(expected, on=KEY, how="semi")
    fp = got.join(expected, on=KEY, how="anti")
    fn = expected.join(got, on=KEY, how="anti")
    counts = [x.group_by("rule_code").len(name) for x, name in ((tp, "tp"), (fp, "fp"), (fn, "fn"))]
    rules = pl.concat([expected.select("rule_code"), got.select("rule_code")]).unique()
    table = rules
    for c in counts:
        table = table.join(c, on="rule_code", how="left")
    table = table.fill_null(0).with_columns(
        (pl.col("tp") / (pl.col("tp") + pl.col("fp"))).fill_nan(1.0).alias("precision"),
        (pl.col("tp") / (pl.col("tp") + pl.col("fn"))).fill_nan(1.0).alias("recall")).sort("rule_code")
    return table, fp, fn
