"""Linkage side by side, in one run on the same data and machine: bidui vs Splink 5 (DuckDB
backend) vs recordlinkage, on the register ↔ hukou task (every register member to its hukou
person), scored against the synthetic answer key; plus bidui linking every dataset of the night.

    python bench/linkage.py --size medium [--tools bidui,splink,recordlinkage] [--timeout 1800]

Each tool runs in its own process (wall time of the linking only, peak RSS of that process).
Splink is configured as its documentation recommends: a deterministic rule for the prior, u by
random sampling, m by EM over two blocking rules, term-frequency adjustment on the name; it is
given pinyin for names (its string distances count UTF-8 bytes, wrong on Chinese characters).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

NIGHT = date(2026, 11, 20)


def prepare(size: str, seed: int) -> Path:
    """Synthetic night → warehouse → the task's two tables and truth (cached in bench/out/<size>)."""
    out = Path("bench/out") / size
    task = out / "linkage"
    if (task / "truth.parquet").exists():
        return task
    if not (out / "inbox").exists():
        subprocess.run([sys.executable, "-m", "bidui.cli", "synth", "--out", str(out), "--size", size, "--seed", str(seed),
                        "--nights", "1"], check=True)
    home = out / "home"
    if not (home / "warehouse.duckdb").exists():
        subprocess.run([sys.executable, "-m", "bidui.cli", "--home", str(home), "ingest", str(out / "inbox" / NIGHT.isoformat())])
    from bidui.connectors import warehouse as wh
    from bidui.matching.records import records, spine

    con = wh.connect(home / "warehouse.duckdb")
    recs, _ = records(con, NIGHT)
    people = spine(con, NIGHT)
    con.close()
    task.mkdir(parents=True, exist_ok=True)
    left = recs.filter(pl.col("dataset") == "register_members")
    left.write_parquet(task / "left.parquet")
    people.write_parquet(task / "right.parquet")
    truth = pl.read_parquet(out / "truth" / NIGHT.isoformat() / "records.parquet").filter(
        pl.col("dataset") == "register_members").select("source_file", "source_row", "hukou_id_number")
    left.select("rec", "source_file", "source_row").join(truth, on=["source_file", "source_row"]).select(
        "rec", "hukou_id_number").write_parquet(task / "truth.parquet")
    return task


# ---------------------------------------------------------------- the tools (run in a child)


def features(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The columns the generic tools compare: ID, pinyin, birth date, sex, village."""
    if key == "rec":
        birth = pl.coalesce(pl.col("birth"), pl.when(pl.col("id").str.len_chars() == 18).then(
            pl.col("id").str.slice(6, 8).str.to_date("%Y%m%d", strict=False)))
        sex = pl.coalesce(pl.col("sex"), pl.when(pl.col("id").str.len_chars() == 18).then(
            pl.when(pl.col("id").str.slice(16, 1).cast(pl.Int8, strict=False) % 2 == 1).then(pl.lit("男")).otherwise(pl.lit("女"))))
        return frame.select(pl.col("rec").cast(pl.String).alias("unique_id"), "id", "pinyin", "form", birth.alias("birth"),
                            sex.alias("sex"), "village")
    return frame.select(pl.col("person_key").alias("unique_id"), pl.col("person_key").alias("id"), "pinyin", "form",
                        pl.col("birth_date").alias("birth"), "sex", "village")


def run_bidui(task: Path) -> pl.DataFrame:
    from bidui.matching.link import link_frame

    result = link_frame(pl.read_parquet(task / "left.parquet"), pl.read_parquet(task / "right.parquet"))
    return result.links.filter(pl.col("method") != "none").select(pl.col("rec").cast(pl.String), "person_key")


def run_splink(task: Path) -> pl.DataFrame:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    left = features(pl.read_parquet(task / "left.parquet"), "rec").to_pandas()
    right = features(pl.read_parquet(task / "right.parquet"), "person_key").to_pandas()
    db = DuckDBAPI()
    l_df = db.register(left, dataset_display_name="register")
    r_df = db.register(right, dataset_display_name="hukou")
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.LevenshteinAtThresholds("id", [1, 2, 3]),
            cl.NameComparison("pinyin").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth", input_is_string=False),
            cl.ExactMatch("sex"),
            cl.ExactMatch("village"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("id"), block_on("birth", "sex"), block_on("pinyin"), block_on("substr(id, 1, 15)"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker([l_df, r_df], settings, log_level=30)
    linker.training.estimate_probability_two_random_records_match([block_on("id")], recall=0.95)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("pinyin"))
    pred = pl.from_pandas(linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe())
    left_is_l = pred["source_dataset_l"].cast(pl.String) == "register"
    pred = pred.with_columns(pl.when(left_is_l).then(pl.col("unique_id_l")).otherwise(pl.col("unique_id_r")).alias("rec"),
                             pl.when(left_is_l).then(pl.col("unique_id_r")).otherwise(pl.col("unique_id_l")).alias("person_key"))
    return best_per_record(pred.select("rec", "person_key", pl.col("match_probability").alias("p")))


def run_recordlinkage(task: Path) -> pl.DataFrame:
    import pandas as pd
    import recordlinkage

    left = features(pl.read_parquet(task / "left.parquet"), "rec").with_columns(
        pl.col("id").str.slice(0, 6).alias("region")).to_pandas().set_index("unique_id")
    right = features(pl.read_parquet(task / "right.parquet"), "person_key").with_columns(
        pl.col("id").str.slice(0, 6).alias("region")).to_pandas().set_index("unique_id")
    for df in (left, right):
        df["birth"] = df["birth"].astype("string")
    indexer = recordlinkage.Index()
    indexer.block("birth")
    indexer.block(["pinyin", "region"])
    pairs = indexer.index(left, right)
    comp = recordlinkage.Compare()
    comp.exact("id", "id", label="id")
    comp.string("id", "id", method="levenshtein", threshold=0.85, label="id_close")
    comp.string("pinyin", "pinyin", method="jarowinkler", threshold=0.9, label="name")
    comp.exact("birth", "birth", label="birth")
    comp.exact("sex", "sex", label="sex")
    comp.exact("village", "village", label="village")
    vectors = comp.compute(pairs, left, right).fillna(0).astype(int)
    ecm = recordlinkage.ECMClassifier(binarize=None)
    ecm.fit(vectors)
    prob = pd.Series(ecm.prob(vectors), index=vectors.index)
    out = pl.DataFrame({"rec": [str(a) for a, _ in prob.index], "person_key": [str(b) for _, b in prob.index],
                        "p": prob.to_numpy()})
    return best_per_record(out)


def best_per_record(pred: pl.DataFrame, threshold: float = 0.9) -> pl.DataFrame:
    """One-to-one on the record side: the most probable candidate, if probable enough."""
    return (pred.filter(pl.col("p") >= threshold).sort(["rec", "p"], descending=[False, True])
            .unique("rec", keep="first").select("rec", "person_key"))


def child(tool: str, task: Path, out: Path) -> None:
    import resource

    start = time.perf_counter()
    pred = {"bidui": run_bidui, "splink": run_splink, "recordlinkage": run_recordlinkage}[tool](task)
    seconds = time.perf_counter() - start
    pred.write_parquet(out)
    print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def night_child(size: str) -> None:
    """bidui linking every person-bearing record of the night (the nightly job)."""
    import resource

    from bidui.connectors import warehouse as wh
    from bidui.matching.accuracy import evaluate, namesake_ties
    from bidui.matching.link import link_night, links_of

    con = wh.connect(Path("bench/out") / size / "home" / "warehouse.duckdb")
    start = time.perf_counter()
    result = link_night(con, NIGHT)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_record, table = evaluate(links_of(con, NIGHT), Path("bench/out") / size / "truth" / NIGHT.isoformat())
    # IDs missing: the records whose name and village fit several persons cannot be linked (a tie);
    # recall over the others says whether the linker finds what can be found.
    missing = per_record.filter(pl.col("corruption") == "id_missing")
    ties = namesake_ties(con, NIGHT, missing)
    rest = missing.join(ties, on=["dataset", "source_file", "source_row", "role"], how="anti")
    tie_figures = {"id_missing": missing.height, "ties": ties.height, "ties_linked": int(ties["tp"].sum() + ties["fp"].sum()),
                   "rest_recall": float(rest["tp"].sum() / max(1, (rest["tp"] | rest["fn"]).sum()))}
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "records": result.records, "timings": result.timings, "pairs": result.pairs,
                      "counts": result.counts, "table": table.rows(), "ties": tie_figures}))


# ---------------------------------------------------------------- the parent


def score(pred: pl.DataFrame, truth: pl.DataFrame) -> tuple[float, float, float]:
    t = truth.with_columns(pl.col("rec").cast(pl.String))
    j = t.join(pred, on="rec", how="left")
    tp = j.filter(pl.col("person_key") == pl.col("hukou_id_number")).height
    fp = j.filter(pl.col("person_key").is_not_null() & (pl.col("person_key") != pl.col("hukou_id_number")).fill_null(True)).height
    fn = j.filter(pl.col("hukou_id_number").is_not_null()).height - tp
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tools", default="bidui,splink,recordlinkage")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds a tool may take before it is stopped")
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "TASK", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--night", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-night", action="store_true", help="only the side-by-side task")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    if args.night:
        night_child(args.night)
        return
    task = prepare(args.size, args.seed)
    truth = pl.read_parquet(task / "truth.parquet")
    n_left, n_right = pl.scan_parquet(task / "left.parquet").select(pl.len()).collect().item(), \
        pl.scan_parquet(task / "right.parquet").select(pl.len()).collect().item()
    print(f"register ↔ hukou, {args.size}: {n_left:,} register members × {n_right:,} hukou persons\n")
    print("| tool | seconds | peak RSS MB | precision | recall | F1 |")
    print("|---|---|---|---|---|---|")
    results = {}
    for tool in args.tools.split(","):
        out = task / f"pred_{tool}.parquet"
        try:
            res = subprocess.run([sys.executable, __file__, "--child", tool, str(task), str(out)], capture_output=True,
                                 text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"| {tool} | > {args.timeout} (stopped) | | | | |")
            continue
        if res.returncode:
            print(f"| {tool} | failed: {res.stderr.strip().splitlines()[-1][:120]} | | | | |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        p, rc, f1 = score(pl.read_parquet(out), truth)
        results[tool] = r | {"precision": p, "recall": rc, "f1": f1}
        print(f"| {tool} | {r['seconds']:.1f} | {r['rss_mb']:,.0f} | {p:.4f} | {rc:.4f} | {f1:.4f} |")
    if "bidui" in results and "splink" in results:
        print(f"\nbidui is {results['splink']['seconds'] / results['bidui']['seconds']:.1f}× faster than Splink on this task")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "left": n_left, "right": n_right, "tools": results}, indent=1))
    if args.no_night:
        return
    res = subprocess.run([sys.executable, __file__, "--night", args.size], capture_output=True, text=True)
    if res.returncode == 0:
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"\nbidui, every dataset of the night: {r['records']:,} records ({r['counts']}), {r['pairs']:,} candidate "
              f"pairs, {r['seconds']:.1f} s, peak RSS {r['rss_mb']:,.0f} MB\n")
        print("steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings"].items()) + "\n")
        print("| group (dataset or corruption) | records | true links | false links | missed | precision | recall |")
        print("|---|---|---|---|---|---|---|")
        for group, n, tp, fp, fn, p, rc, _kind in r["table"]:
            print(f"| {group} | {n:,} | {tp:,} | {fp:,} | {fn:,} | {p:.4f} | {rc:.4f} |")
        t = r["ties"]
        print(f"\nID missing: {t['id_missing']:,} records, of which {t['ties']:,} name and village fit two or more "
              f"persons (linked: {t['ties_linked']}); recall over the other {t['id_missing'] - t['ties']:,}: "
              f"{t['rest_recall']:.4f}")


if __name__ == "__main__":
    main()
