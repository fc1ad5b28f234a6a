"""Linking any two tables of text fields with the Fellegi–Sunter engine of `fs`, through a
generic comparison set: every field is compared as text, on characters (edit distance), never on
UTF-8 bytes. No labels, no ID spine: u from random pairs, m and the share of matches by EM.

The nightly linker (`link.py`) uses the Chinese-specific comparisons of `compare.py` and labels
from exact-ID links; this path exists to check the engine where its answers are public (FEBRL4,
`bench/febrl.py`) and to link tables that share no ID number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from bidui.matching import fs
from bidui.matching.compare import char_matrix

STRING_LEVELS = ("different", "similar (edit similarity ≥ 0.7)", "close (≥ 0.88)", "equal")
WIDTH = 24  # characters compared; longer values are compared on their first 24


def edit_distance(a: pl.Series, b: pl.Series, width: int = WIDTH) -> np.ndarray:
    """Levenshtein distance of each pair (a[i], b[i]) in characters, vectorised over the pairs:
    one row of the dynamic programme at a time for all pairs at once."""
    n = len(a)
    la = a.fill_null("").str.len_chars().clip(upper_bound=width).to_numpy().astype(np.int32)
    lb = b.fill_null("").str.len_chars().clip(upper_bound=width).to_numpy().astype(np.int32)
    ca, cb = char_matrix(a, width), char_matrix(b, width)
    wa, wb = int(la.max(initial=0)), int(lb.max(initial=0))
    prev = np.tile(np.arange(wb + 1, dtype=np.int32), (n, 1))
    out = lb.copy()  # distance when a is empty
    rows = np.arange(n)
    for i in range(1, wa + 1):
        cur = np.empty_like(prev)
        cur[:, 0] = i
        cost = (cb[:, :wb] != ca[:, i - 1:i]).astype(np.int32)
        sub = prev[:, :-1] + cost
        dele = prev[:, 1:] + 1
        best = np.minimum(sub, dele)
        for j in range(1, wb + 1):  # insertion depends on the cell to the left: sequential in j
            cur[:, j] = np.minimum(best[:, j - 1], cur[:, j - 1] + 1)
        done = la == i
        out[done] = cur[rows[done], lb[done]]
        prev = cur
    return out


def string_level(a: pl.Series, b: pl.Series) -> np.ndarray:
    """STRING_LEVELS index per pair; -1 where either side is missing. The edit distance is worked
    out once per distinct pair of values, and only where the lengths leave similarity ≥ 0.7 possible."""
    f = pl.DataFrame({"a": a.cast(pl.String), "b": b.cast(pl.String)}).with_columns(
        pl.col("a").str.len_chars().alias("la"), pl.col("b").str.len_chars().alias("lb"))
    f = f.with_columns(pl.max_horizontal("la", "lb").alias("longest"))
    missing = (f["a"].is_null() | f["b"].is_null() | (f["la"] == 0) | (f["lb"] == 0)).to_numpy()
    equal = (f["a"] == f["b"]).fill_null(False).to_numpy()
    # |la - lb| edits at least: beyond 30% of the longer value, similarity is below 0.7.
    todo = ~missing & ~equal & ((f["la"] - f["lb"]).abs() <= 0.3 * f["longest"]).fill_null(False).to_numpy()
    sim = np.zeros(len(f))
    if todo.any():
        distinct = f.filter(pl.Series(todo)).select("a", "b", "longest").unique()
        distinct = distinct.with_columns(pl.Series("d", edit_distance(distinct["a"], distinct["b"])))
        back = f.select("a", "b").with_row_index("i").filter(pl.Series(todo)).join(distinct, on=["a", "b"])
        sim[back["i"].to_numpy()] = 1.0 - back["d"].to_numpy() / np.maximum(back["longest"].to_numpy(), 1)
    level = np.select([equal, sim >= 0.88, sim >= 0.7], [3, 2, 1], default=0).astype(np.int8)
    level[missing] = -1
    return level


def compare(left: pl.DataFrame, right: pl.DataFrame, pairs: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Comparison levels for pairs given as row positions (`l`, `r`)."""
    li, ri = pairs["l"], pairs["r"]
    return pairs.with_columns(
        pl.Series(f, string_level(left[f].cast(pl.String).gather(li), right[f].cast(pl.String).gather(ri)))
        for f in fields)


def candidate_pairs(left: pl.DataFrame, right: pl.DataFrame, blocks: list[list[str]]) -> pl.DataFrame:
    """Row-position pairs agreeing exactly on at least one blocking key (a list of fields)."""
    lpos = left.with_row_index("l")
    rpos = right.with_row_index("r")
    parts = [lpos.select("l", *key).drop_nulls().join(rpos.select("r", *key).drop_nulls(), on=key).select("l", "r")
             for key in blocks]
    return pl.concat(parts).unique().sort("l", "r")


def random_pairs(n_left: int, n_right: int, n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"l": rng.integers(0, n_left, n, dtype=np.uint32),
                         "r": rng.integers(0, n_right, n, dtype=np.uint32)})


@dataclass
class GenericLinks:
    pairs: pl.DataFrame  # l, r, one level per field, weight, probability (every candidate pair)
    model: fs.Model

    def one_to_one(self, threshold: float = 0.5) -> pl.DataFrame:
        return mutual_best(self.pairs, threshold)


def mutual_best(pairs: pl.DataFrame, threshold: float = 0.5) -> pl.DataFrame:
    """Pairs (l, r, probability) at or above the threshold that are each other's most probable partner."""
    p = pairs.filter(pl.col("probability") >= threshold)
    best_l = p.sort("probability", "r", descending=[True, False]).unique("l", keep="first")
    best_r = p.sort("probability", "l", descending=[True, False]).unique("r", keep="first")
    return best_l.join(best_r.select("l", "r"), on=["l", "r"]).select("l", "r", "probability").sort("l")


def link_tables(left: pl.DataFrame, right: pl.DataFrame, fields: list[str], blocks: list[list[str]],
                random_n: int = 200_000, seed: int = 0) -> GenericLinks:
    candidates = compare(left, right, candidate_pairs(left, right, blocks), fields)
    randoms = compare(left, right, random_pairs(left.height, right.height, random_n, seed), fields)
    model = fs.fit_em(candidates, randoms, {f: STRING_LEVELS for f in fields})
    return GenericLinks(fs.score(candidates, model, fields), model)
