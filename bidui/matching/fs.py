"""Fellegi–Sunter: m/u probabilities by EM over tabulated comparison patterns, match weights,
and a term-frequency adjustment so that a common name (王伟) counts for less than a rare one.

Estimation, robust on small residues: u-probabilities from random record × person pairs (almost
all non-matches), m-probabilities of the name, birth, sex and village comparisons from the exact-ID
links (thousands of labelled true matches), and EM only for what those cannot give — the ID
comparison's m and the share of matches among candidate pairs. EM runs on the distinct patterns
with their counts (a few hundred rows), not on the pairs. Missing comparisons (level -1) are left
out of a pattern's likelihood.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from bidui.matching.compare import COMPARISONS

M_MAX, U_MIN = 0.9999, 1e-5


@dataclass
class Model:
    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    prior: float
    iterations: int = 0
    history: list[float] = field(default_factory=list)
    levels: dict[str, tuple[str, ...]] = field(default_factory=lambda: COMPARISONS)  # meaning of each level

    def advance(self, prior: float, delta: float, iteration: int, tol: float) -> bool:
        """Take an EM iteration's share of matches and its largest change; True once converged."""
        self.prior = prior
        self.history.append(delta)
        self.iterations = iteration + 1
        return delta < tol

    def weight(self, comparison: str, level: int) -> float:
        if level < 0:
            return 0.0
        return math.log2(self.m[comparison][level] / self.u[comparison][level])

    def weights_table(self) -> pl.DataFrame:
        rows = [(c, lvl, self.levels[c][lvl], float(self.m[c][lvl]), float(self.u[c][lvl]), self.weight(c, lvl))
                for c in self.m for lvl in range(len(self.m[c]))]
        return pl.DataFrame(rows, schema=["comparison", "level", "meaning", "m", "u", "weight"], orient="row")


def score(pairs: pl.DataFrame, model: Model, comparisons: list[str], name_freq: pl.Expr | None = None) -> pl.DataFrame:
    """Add per-comparison weights, the term-frequency adjustment, total weight and probability."""
    exprs = []
    for c in comparisons:
        table = {lvl: model.weight(c, lvl) for lvl in range(len(model.levels[c]))} | {-1: 0.0}
        exprs.append(pl.col(c).replace_strict(table, return_dtype=pl.Float64).alias(f"w_{c}"))
    out = pairs.with_columns(exprs)
    if name_freq is not None and "name" in comparisons:
        # Splink-style: an exact name agreement weighs log2(m / tf) instead of log2(m / u).
        u_exact = float(model.u["name"][3])
        adj = pl.when(pl.col("name") == 3).then((pl.lit(u_exact) / name_freq).log(2)).otherwise(0.0)
        out = out.with_columns(adj.alias("w_tf"))
    else:
        out = out.with_columns(pl.lit(0.0).alias("w_tf"))
    total = pl.sum_horizontal([pl.col(f"w_{c}") for c in comparisons]) + pl.col("w_tf")
    prior_w = math.log2(model.prior / (1 - model.prior))
    return out.with_columns(total.alias("weight")).with_columns(
        (1.0 / (1.0 + (2.0 ** -(pl.col("weight") + prior_w)))).alias("probability"))


def level_shares(levels: pl.DataFrame, comparison: str, floor: float = 1e-4, k: int | None = None) -> np.ndarray:
    """Share of each level among observed values (level ≥ 0), floored and renormalised."""
    k = k or len(COMPARISONS[comparison])
    values = levels[comparison].to_numpy().astype(int)
    values = values[values >= 0]
    counts = np.bincount(values, minlength=k).astype(float) if len(values) else np.ones(k)
    shares = np.maximum(counts / counts.sum(), floor)
    return shares / shares.sum()


def fit_with_labels(positives: pl.DataFrame, randoms: pl.DataFrame, candidates: pl.DataFrame, comparisons: list[str],
                    anchored: dict[str, tuple[float, ...]], anchor_bits: float = 20.0, prior_strength: float = 10.0,
                    max_iter: int = 200, tol: float = 1e-7) -> Model:
    """m from labelled true matches, u from random pairs; for each comparison in `anchored` (whose
    labelled matches are biased: the exact-ID links all agree on the ID), m from anchor pairs —
    candidates whose other comparisons alone weigh at least `anchor_bits` — with `anchored[c]`
    as light pseudo-counts; then EM for the share of matches among the candidates."""
    # m floored at 1e-3: a disagreement the exact links cannot show (they accept only form and
    # sound differences in names) still happens in about one true match in a thousand.
    m = {c: level_shares(positives, c, floor=1e-3) for c in comparisons}
    u = {c: level_shares(randoms, c, floor=1e-7) for c in comparisons}
    model = Model(m, u, 0.5)
    for c, prior in anchored.items():
        others = [o for o in comparisons if o != c]
        evidence = pl.sum_horizontal([
            pl.col(o).replace_strict({lvl: model.weight(o, lvl) for lvl in range(len(COMPARISONS[o]))} | {-1: 0.0},
                                     return_dtype=pl.Float64) for o in others])
        anchors = candidates.filter(evidence >= anchor_bits)
        values = anchors[c].to_numpy().astype(int)
        values = values[values >= 0]
        k = len(COMPARISONS[c])
        pseudo = prior_strength * np.asarray(prior) / np.sum(prior)
        mm = np.bincount(values, minlength=k) + pseudo
        model.m[c] = np.clip(mm / mm.sum(), 1e-7, M_MAX)
    return estimate_prior(model, candidates, comparisons, max_iter, tol)


def estimate_prior(model: Model, candidates: pl.DataFrame, comparisons: list[str], max_iter: int = 200,
                   tol: float = 1e-7) -> Model:
    """EM for the share of matches among the candidates, m and u held (a model kept between
    nights learns each night's share of matches, nothing else)."""
    patterns = _patterns(candidates, comparisons)
    counts = patterns["count"].to_numpy().astype(float)
    if not counts.sum():
        return model
    _, log_m, log_u = _pattern_logs(patterns, model, comparisons)
    model.history, model.iterations = [], 0
    for it in range(max_iter):
        g = _match_share(log_m, log_u, model.prior)
        new_prior = min(max(float((counts * g).sum() / counts.sum()), 1e-6), 1 - 1e-6)
        if model.advance(new_prior, abs(new_prior - model.prior), it, tol):
            break
    return model


def to_json(model: Model, shares: dict[str, list[float]]) -> str:
    """A model as stored between nights, with the candidates' level shares it was trained on
    (what drift is measured against)."""
    return json.dumps({"m": {c: v.tolist() for c, v in model.m.items()}, "u": {c: v.tolist() for c, v in model.u.items()},
                       "prior": model.prior, "shares": shares})


def from_json(text: str) -> tuple[Model, dict[str, list[float]]]:
    value = json.loads(text)
    model = Model({c: np.asarray(v) for c, v in value["m"].items()}, {c: np.asarray(v) for c, v in value["u"].items()},
                  float(value["prior"]))
    return model, value.get("shares", {})


def drift(candidates: pl.DataFrame, shares: dict[str, list[float]]) -> tuple[float, str]:
    """How far tonight's candidates are from those a model was trained on: the largest total
    variation distance between the level shares of one comparison, and that comparison."""
    worst, where = 0.0, ""
    for c, before in shares.items():
        if c not in candidates.columns:
            continue
        now = level_shares(candidates, c, floor=0.0, k=len(before))
        distance = 0.5 * float(np.abs(now - np.asarray(before)).sum())
        if distance > worst:
            worst, where = distance, c
    return worst, where


def _patterns(candidates: pl.DataFrame, comparisons: list[str]) -> pl.DataFrame:
    """The candidates' distinct patterns with their counts, in one order (polars' group order
    varies, and EM's sums over the patterns would differ in their last bits from run to run)."""
    return candidates.group_by(comparisons).len("count").sort(comparisons)


def _match_share(log_m: np.ndarray, log_u: np.ndarray, prior: float) -> np.ndarray:
    """The E step: each pattern's probability of being a match."""
    return 1.0 / (1.0 + np.exp(np.clip(np.log1p(-prior) + log_u - np.log(prior) - log_m, -700, 700)))


def _pattern_logs(patterns: pl.DataFrame, model: Model, comparisons: list[str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    levels = [patterns[c].to_numpy().astype(int) for c in comparisons]
    log_m, log_u = np.zeros(patterns.height), np.zeros(patterns.height)
    for c, lv in zip(comparisons, levels, strict=True):
        seen = lv >= 0
        log_m[seen] += np.log(model.m[c][lv[seen]])
        log_u[seen] += np.log(model.u[c][lv[seen]])
    return levels, log_m, log_u


def fit_em(candidates: pl.DataFrame, randoms: pl.DataFrame, levels: dict[str, tuple[str, ...]], prior: float = 0.1,
           max_iter: int = 100, tol: float = 1e-6) -> Model:
    """Fellegi–Sunter without labels, for any comparison set (`levels`: comparison → meaning of
    each level, weakest first): u from random pairs (almost all non-matches) and held there, m and
    the share of matches by EM over the candidate pairs' distinct patterns. m starts leaning to the
    top level, so EM settles on the cluster that agrees, not the one that disagrees."""
    comparisons = list(levels)
    u = {c: level_shares(randoms, c, floor=1e-7, k=len(levels[c])) for c in comparisons}
    m = {}
    for c in comparisons:
        k = len(levels[c])
        start = np.full(k, 0.1 / max(k - 1, 1))
        start[-1] = 0.9 if k > 1 else 1.0
        m[c] = start / start.sum()
    model = Model(m, u, prior, levels=levels)
    patterns = _patterns(candidates, comparisons)
    counts = patterns["count"].to_numpy().astype(float)
    for it in range(max_iter):
        lv, log_m, log_u = _pattern_logs(patterns, model, comparisons)
        g = _match_share(log_m, log_u, model.prior)
        weighted = counts * g
        delta = 0.0
        for c, values in zip(comparisons, lv, strict=True):
            seen = values >= 0
            mm = np.bincount(values[seen], weights=weighted[seen], minlength=len(levels[c])) + 1e-9
            new = np.clip(mm / mm.sum(), 1e-7, M_MAX)
            delta = max(delta, float(np.abs(new - model.m[c]).max()))
            model.m[c] = new
        new_prior = min(max(float(weighted.sum() / counts.sum()), 1e-6), 1 - 1e-6)
        if model.advance(new_prior, max(delta, abs(new_prior - model.prior)), it, tol):
            break
    return model
