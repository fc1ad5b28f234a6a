"""The linking cascade of a night: exact ID with a name check, then Fellegi–Sunter on the residue,
then one-to-one resolution; every fuzzy link keeps its explanation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.matching import compare as cmp
from bidui.matching.fs import Model, fit_with_labels, score
from bidui.matching.records import linked_datasets, records, spine

COMPARED = ["id", "name", "birth", "sex", "village", "head"]
LINKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    night DATE NOT NULL, dataset VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
    role VARCHAR, id_number_raw VARCHAR, name_raw VARCHAR, person_key VARCHAR, method VARCHAR NOT NULL,
    score DOUBLE, id_name_conflict BOOLEAN, explanation VARCHAR
);
CREATE TABLE IF NOT EXISTS link_runs (night DATE PRIMARY KEY, records BIGINT, exact BIGINT, fuzzy BIGINT, review BIGINT,
    none BIGINT, pairs BIGINT, seconds DOUBLE, model VARCHAR, skipped VARCHAR);
"""


@dataclass(frozen=True)
class Thresholds:
    link: float = 0.99  # probability at or above: linked
    review: float = 0.80  # at or above (below link): linked, marked "identity to confirm"
    margin: float = 0.50  # a runner-up this probable …
    margin_bits: float = 5.0  # … and within this many bits (32×) of the best: a tie, not a link

    @classmethod
    def from_config(cls, cfg: dict) -> Thresholds:
        m = cfg.get("matching", {})
        return cls(float(m.get("link_probability", 0.99)), float(m.get("review_probability", 0.80)),
                   float(m.get("ambiguity_probability", 0.50)), float(m.get("ambiguity_bits", 5.0)))


@dataclass
class LinkResult:
    links: pl.DataFrame
    model: Model | None
    counts: dict[str, int] = field(default_factory=dict)
    pairs: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)


def _keys(p: pl.DataFrame) -> pl.DataFrame:
    return p.select(pl.col("person_key"), pl.col("form").alias("k_form"), pl.col("pinyin").alias("k_pinyin"),
                    pl.col("sex").alias("k_sex"), pl.col("birth_date").alias("k_birth"), pl.col("village").alias("k_village"),
                    pl.col("status_date").alias("k_event"), pl.col("relation").alias("k_relation"),
                    pl.col("person_key").str.slice(0, 6).alias("k_region"),
                    pl.col("person_key").str.slice(6, 8).alias("k_birth8"), pl.col("person_key").str.slice(0, 15).alias("k_first15"),
                    pl.col("person_key").str.slice(6, 4).alias("k_year"), pl.col("person_key").str.slice(10, 4).alias("k_mmdd"),
                    pl.col("person_key").str.slice(14, 4).alias("k_tail"))


def candidate_pairs(residue: pl.DataFrame, people: pl.DataFrame) -> pl.DataFrame:
    """Blocking that survives the real corruptions: each rule catches what another loses."""
    k = _keys(people)
    r = residue.with_columns(
        pl.col("id").str.slice(0, 6).alias("r_region"),
        pl.when(pl.col("id").str.len_chars() == 18).then(pl.col("id").str.slice(6, 8)).alias("r_birth8"),
        pl.when(pl.col("id").str.len_chars() >= 15).then(pl.col("id").str.slice(0, 15)).alias("r_first15"),
        *[pl.when(pl.col("id").str.len_chars() == 18).then(pl.col("id").str.slice(a, 4)).alias(n)
          for a, n in ((6, "r_year"), (10, "r_mmdd"), (14, "r_tail"))])
    blocks = [
        r.join(k, left_on=["r_region", "r_birth8"], right_on=["k_region", "k_birth8"]),  # typo after the birth date
        r.join(k, left_on="r_first15", right_on="k_first15"),  # Excel kept 15 digits
        # A typo or swap inside the birth date: one or two of year, month-day and the last four
        # characters survive it, and with pinyin and county they are narrow (pinyin and county
        # alone pair a common name with hundreds of people at 4 M residents).
        *[r.join(k, left_on=["pinyin", "r_region", f"r_{g}"], right_on=["k_pinyin", "k_region", f"k_{g}"])
          for g in ("year", "mmdd", "tail")],
        r.filter(pl.col("village").is_not_null()).join(k, left_on=["form", "village"], right_on=["k_form", "k_village"]),
        r.filter(pl.col("event").is_not_null()).join(k, left_on=["form", "event"], right_on=["k_form", "k_event"]),
        r.filter(pl.col("birth").is_not_null()).join(k, left_on=["pinyin", "birth"], right_on=["k_pinyin", "k_birth"]),
    ]
    keep = ["rec", "person_key"]
    pairs = pl.concat([b.select(keep) for b in blocks]).unique().sort(keep)
    return pairs.join(r, on="rec").join(k, on="person_key")


def random_pairs(recs: pl.DataFrame, keys: pl.DataFrame, n: int = 200_000, seed: int = 0) -> pl.DataFrame:
    """Record × person pairs drawn at random: almost all non-matches, for u-probabilities."""
    n = min(n, recs.height * keys.height)
    a = recs.sort("rec").sample(n, with_replacement=True, seed=seed)
    b = keys.sort("person_key").sample(n, with_replacement=True, seed=seed + 1)
    return pl.concat([a, b], how="horizontal")


def _levels(pairs: pl.DataFrame) -> pl.DataFrame:
    birth_from_id = pl.when(pl.col("id").str.len_chars() == 18).then(
        pl.col("id").str.slice(6, 8).str.to_date("%Y%m%d", strict=False))
    sex_from_id = pl.when(pl.col("id").str.len_chars() == 18).then(
        pl.when(pl.col("id").str.slice(16, 1).cast(pl.Int8, strict=False) % 2 == 1).then(pl.lit("男")).otherwise(pl.lit("女")))
    levels = pairs.select(
        "rec", "person_key",
        cmp.id_level(pl.col("id"), pl.col("id_status"), pl.col("person_key")).alias("id"),
        cmp.name_level(pl.col("form"), pl.col("pinyin"), pl.col("k_form"), pl.col("k_pinyin")).alias("name"),
        cmp.birth_level(pl.coalesce(pl.col("birth"), birth_from_id), pl.col("k_birth")).alias("birth"),
        cmp.sex_level(pl.coalesce(pl.col("sex"), sex_from_id), pl.col("k_sex")).alias("sex"),
        cmp.village_level(pl.col("village"), pl.col("k_village")).alias("village"),
        cmp.head_level(pl.col("is_head"), pl.col("k_relation")).alias("head"),
        pl.col("k_form"),
    )
    return levels


def explain(row: dict, model: Model) -> str:
    parts = [{"comparison": c, "level": cmp.COMPARISONS[c][row[c]] if row[c] >= 0 else "not observed",
              "weight": round(row[f"w_{c}"], 2)} for c in COMPARED]
    if row.get("w_tf"):
        parts.append({"comparison": "name frequency", "level": "adjustment", "weight": round(row["w_tf"], 2)})
    return json.dumps({"parts": parts, "total": round(row["weight"], 2), "probability": round(row["probability"], 4)},
                      ensure_ascii=False)


def link_night(con: duckdb.DuckDBPyConnection, night: date, thresholds: Thresholds = Thresholds()) -> LinkResult:
    """Link every dataset in force, one dataset at a time (memory bounded by the largest one)."""
    start = time.perf_counter()
    people = spine(con, night)
    skipped: list[str] = []

    def batches():
        first = 0
        for code in linked_datasets():
            recs, missing = records(con, night, only=[code], first_rec=first)
            skipped.extend(missing)
            if recs.height:
                first += recs.height
                yield recs

    result = link_batches(batches(), people, thresholds, seed=night.toordinal())
    result.skipped, result.seconds = skipped, time.perf_counter() - start
    return result


def link_frame(recs: pl.DataFrame, people: pl.DataFrame, thresholds: Thresholds = Thresholds(),
               seed: int = 0) -> LinkResult:
    """The cascade on any records (the frame `records()` gives) against any spine (`spine()`)."""
    return link_batches(iter([recs]), people, thresholds, seed)


SAMPLE_PER_BATCH = 50_000  # exact links and records kept per dataset for estimating m and u


def link_batches(batches, people: pl.DataFrame, thresholds: Thresholds = Thresholds(), seed: int = 0) -> LinkResult:
    """Exact step per batch (only the residue and samples are kept), then one model fitted on the
    pooled residue, labelled samples and random pairs, then one-to-one."""
    start = time.perf_counter()
    key_cols = people.select("person_key", pl.col("form").alias("k_form"), pl.col("pinyin").alias("k_pinyin"))
    agree = (pl.col("form") == pl.col("k_form")) | ((pl.col("pinyin") == pl.col("k_pinyin")) & (pl.col("pinyin") != ""))
    heads, exact_parts, residues, positives, samples, conflict = [], [], [], [], [], []
    for recs in batches:
        # 1. exact: a valid ID found in hukou, and a name that differs at most in form or sound.
        exact = recs.filter(pl.col("id_status") == "valid").join(key_cols, left_on="id", right_on="person_key",
                                                                 how="inner")
        exact_ok = exact.filter(agree)
        conflict.append(exact.filter(~agree).select("rec"))
        exact_parts.append(exact_ok.select("rec", pl.col("id").alias("person_key")))
        residues.append(recs.join(exact_ok.select("rec"), on="rec", how="anti"))
        positives.append(exact_ok.select(recs.columns).sample(min(exact_ok.height, SAMPLE_PER_BATCH), seed=seed))
        samples.append(recs.sample(min(recs.height, SAMPLE_PER_BATCH), seed=seed))
        heads.append(recs.select("rec", "dataset", "source_file", "source_row", "role",
                                 pl.col("id_raw").alias("id_number_raw"), "name_raw"))
    out = pl.concat(heads) if heads else pl.DataFrame()
    if out.is_empty():
        return LinkResult(pl.DataFrame(), None)
    exact_ok = pl.concat(exact_parts)
    conflict_recs = pl.concat(conflict)["rec"]
    residue = pl.concat(residues, how="vertical_relaxed")
    # 2. probabilistic on the residue.
    pairs = candidate_pairs(residue, people)
    model = None
    fuzzy = pl.DataFrame()
    if pairs.height:
        levels = _levels(pairs)
        k = _keys(people)
        pos = pl.concat(positives, how="vertical_relaxed")
        positive_levels = _levels(pos.join(k, left_on="id", right_on="person_key", how="inner")
                                  .with_columns(pl.col("id").alias("person_key")))
        randoms = _levels(random_pairs(pl.concat(samples, how="vertical_relaxed"), k, seed=seed))
        model = fit_with_labels(positive_levels, randoms, levels, COMPARED, {"id": cmp.ID_M_PRIOR})
        freq = people.group_by("form").len("n").with_columns((pl.col("n") / people.height).alias("tf"))
        levels = levels.join(freq.select(pl.col("form").alias("k_form"), "tf"), on="k_form", how="left")
        scored = score(levels, model, COMPARED, name_freq=pl.col("tf").fill_null(1.0 / people.height))
        # 3. one-to-one: the best candidate, unless a second one is also probable.
        # Probabilities saturate (two candidates can both be ≈ 1): compare weights for ambiguity.
        ranked = scored.sort(["rec", "weight"], descending=[False, True])
        best = ranked.group_by("rec", maintain_order=True).head(2).with_columns(
            pl.col("probability").shift(-1).over("rec").alias("second"),
            pl.col("weight").shift(-1).over("rec").alias("second_weight"),
            pl.int_range(pl.len()).over("rec").alias("rank")).filter(pl.col("rank") == 0)
        best = best.with_columns(pl.col("second").fill_null(0.0), pl.col("second_weight").fill_null(-1e9))
        ambiguous = (pl.col("second") >= thresholds.margin) & (pl.col("second_weight") >= pl.col("weight") - thresholds.margin_bits)
        # A tie is not a link: two people fit equally (a common name in one village, no ID).
        # Nor is a valid ID that is not the candidate's: a typo always breaks the check character,
        # so a valid ID names someone else, however alike the names, birthdays and villages.
        fuzzy = best.with_columns(
            pl.when(ambiguous | (pl.col("id") == 0)).then(pl.lit("none"))
            .when(pl.col("probability") >= thresholds.link).then(pl.lit("fuzzy"))
            .when(pl.col("probability") >= thresholds.review).then(pl.lit("review"))
            .otherwise(pl.lit("none")).alias("method"))
        fuzzy = fuzzy.with_columns(
            pl.when((pl.col("method") == "review") & (pl.col("probability") < thresholds.review)).then(pl.lit("none"))
            .otherwise(pl.col("method")).alias("method"))
        fuzzy = fuzzy.with_columns(pl.struct(pl.all()).map_elements(lambda r: explain(r, model), return_dtype=pl.String)
                                   .alias("explanation"))
    exact_part = exact_ok.select("rec", "person_key", pl.lit("exact").alias("method"), pl.lit(1.0).alias("score"),
                                 pl.lit(None, pl.String).alias("explanation"))
    fuzzy_part = (fuzzy.select("rec", pl.when(pl.col("method") != "none").then(pl.col("person_key")).alias("person_key"),
                               "method", pl.col("probability").alias("score"), "explanation")
                  if fuzzy.height else exact_part.clear())
    links = out.join(pl.concat([exact_part, fuzzy_part], how="vertical_relaxed"), on="rec", how="left").with_columns(
        pl.col("method").fill_null("none"), pl.col("rec").is_in(conflict_recs.implode()).alias("id_name_conflict"))
    counts = links.group_by("method").len().to_dict(as_series=False)
    return LinkResult(links, model, dict(zip(counts["method"], counts["len"], strict=True)), pairs.height,
                      time.perf_counter() - start)


def store_links(con: duckdb.DuckDBPyConnection, night: date, result: LinkResult) -> None:
    con.execute(LINKS_SCHEMA)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM links WHERE night = ?", [night])
        con.execute("DELETE FROM link_runs WHERE night = ?", [night])
        frame = result.links.with_columns(pl.lit(night).alias("night"))
        wh.insert_frame(con, "links", frame, ["night", "dataset", "source_file", "source_row", "role", "id_number_raw",
                                               "name_raw", "person_key", "method", "score", "id_name_conflict", "explanation"])
        c = result.counts
        model = result.model.weights_table().write_json() if result.model else None
        con.execute("INSERT INTO link_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [night, result.links.height, c.get("exact", 0), c.get("fuzzy", 0), c.get("review", 0), c.get("none", 0),
                     result.pairs, result.seconds, model, ",".join(result.skipped)])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def export(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    con.execute(LINKS_SCHEMA)
    return wh.query(con, """
        SELECT dataset, source_file, source_row, id_number_raw, name_raw, person_key,
               CASE WHEN method = 'none' THEN NULL ELSE person_key END AS hukou_id_number, method, score
        FROM links WHERE night = ? ORDER BY dataset, source_file, source_row""", [night])
