"""Linkage on the synthetic prefecture with the phenomena of issue 15 (a child's record under a
parent's ID, valid IDs nobody holds, wrong IDs cut by Excel, ID typos with damaged names, names as
other systems write them, shared IDs and second numbers, hukou name corrections, namesakes).

    python bench/linkage.py [--size medium] [--seed 3] [--nights 3] [--tools bidui,splink,recordlinkage]
                            [--timeout 3600] [--json OUT] [--no-night] [--repeat N]

1. **Every dataset, every night.** The prefecture is generated once into
   bench/out/<size>-s<seed>-n<nights>/; its nights are ingested and linked in order into one fresh
   warehouse (`link_night`), and each night's links are scored against truth/<date>/: by dataset
   and by phenomenon, how many records, linked right, linked wrong, not linked, precision and
   recall; with the linker's timings, candidate pairs, peak RSS and link counts by method.
   *Wrong*: linked to another person (or linked where no link is right); *not linked*: a person
   was expected and none was given; records whose right outcome is no link (outsiders, ties)
   count as right when unlinked.
2. **Side by side, on the same damaged data**: bidui (`link_frame`) vs Splink 5 (DuckDB backend)
   vs recordlinkage, each in its own process (wall and CPU time of the linking only, peak RSS of that
   process). The task is night 1's records that carry the phenomena: every register member and
   every record of students, dangerous_housing and vehicles, and of medical_insurance and
   medical_claims every record with a phenomenon other than `namesake` plus a fixed-seed sample of
   the rest (namesakes occur in it at their rate), against the hukou spine (one row per person and
   ID number; a prediction is right when it names the record's person). Splink is given bidui's
   blocking rules (exact ID, county + birth digits with at most two of the last four characters
   apart, first 15 digits, pinyin + county + year / month-day / last four, characters + village,
   pinyin + birth date, and for a number with a typo the first 15 digits with one of positions 7–15
   masked or with positions 14–15 in order, and county + last four with at most two birth digits
   apart) and the
   comparisons of its documentation: ID by Levenshtein, the name as characters (exact, with
   term-frequency adjustment) then pinyin (exact, Jaro-Winkler: its string distances count UTF-8
   bytes, wrong on Chinese characters), birth date, sex and village; u by random sampling, m by
   EM over two blocking rules, λ from the exact-ID rule; a record's best candidate at p ≥ 0.9.
   recordlinkage is configured as before (blocks on birth date and on pinyin + county, ECM).
   A tool past --timeout is stopped and says so.

Peak RSS of bidui's nightly linking is that of a process that opens the warehouse and links one
night (ingest runs in a process of its own).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import prefecture as pf

TASK_FULL = ("register_members", "students", "dangerous_housing", "vehicles")
TASK_SAMPLED = ("medical_insurance", "medical_claims")
KEY = ["dataset", "source_file", "source_row", "role"]
BAR = 0.998
# bidui's masked-digit blocks for a mistyped number: one of positions 7–15 masked (0-based start,
# width); a swap across the birth date's end and the sequence code is the `swap` key (those two
# digits in order).
MASKS = [(p, 1) for p in range(6, 15)]


def near(a: str, b: str, width: int) -> str:
    """Splink SQL: at most two of the first `width` characters of l.a and r.b differ."""
    return " + ".join(f"(substr(l.{a}, {i}, 1) <> substr(r.{b}, {i}, 1))::INT" for i in range(1, width + 1)) + " <= 2"


# ---------------------------------------------------------------- steps (each in a child process)


def step_link(warehouse: Path, night: date, truth_dir: Path) -> dict:
    """Link one night (already ingested) and score it against its answer key."""
    from bidui.connectors import warehouse as wh
    from bidui.matching.accuracy import evaluate, persons, tie_records
    from bidui.matching.link import METHODS, link_night, links_of

    con = wh.connect(warehouse)
    start = time.perf_counter()
    result = link_night(con, night)
    seconds = time.perf_counter() - start
    rss = pf.rss_mb()
    per_record, _ = evaluate(links_of(con, night), truth_dir, persons(con, night), tie_records(con, night))
    con.close()
    per_record = per_record.with_columns(pl.col("phenomenon").fill_null("").replace("", "(none)"))
    return {"night": night.isoformat(), "seconds": seconds, "rss_mb": rss, "records": result.records, "pairs": result.pairs,
            "timings": result.timings, "counts": {m: result.counts.get(m, 0) for m in METHODS},
            "skipped": result.skipped, "all": pf.outcome_table(per_record.with_columns(pl.lit("all").alias("_all")), "_all")[0],
            "datasets": pf.outcome_table(per_record, "dataset"), "phenomena": pf.outcome_table(per_record, "phenomenon")}


def step_task(warehouse: Path, night: date, truth_dir: Path, task: Path, sample: int) -> dict:
    """The side-by-side task from a warehouse holding the night: left.parquet (the records, as
    `records()` gives them), right.parquet (the spine, `sid` a unique row id), truth.parquet (rec →
    the right person key, null where no link is right, with dataset and phenomenon)."""
    from bidui.connectors import warehouse as wh
    from bidui.matching.accuracy import persons, tie_records
    from bidui.matching.records import records, spine

    con = wh.connect(warehouse)
    recs, _ = records(con, night, [*TASK_FULL, *TASK_SAMPLED])
    people = spine(con, night)
    keys = persons(con, night)
    ties = tie_records(con, night)
    con.close()
    truth = pl.read_parquet(truth_dir / "records.parquet").filter(pl.col("dataset").is_in([*TASK_FULL, *TASK_SAMPLED]))
    recs = recs.join(truth.select(*KEY, "hukou_id_number", "true_hukou_number", "phenomenon"), on=KEY, how="left")
    carries = ~pl.col("phenomenon").fill_null("").is_in(["", "namesake"])
    parts = [recs.filter(pl.col("dataset").is_in(TASK_FULL))]
    for ds in TASK_SAMPLED:
        rows = recs.filter(pl.col("dataset") == ds)
        rest = rows.filter(~carries).sort("rec")
        parts += [rows.filter(carries), rest.sample(min(sample, rest.height), seed=15)]
    left = pl.concat(parts).sort("rec")
    expected = left.join(keys.rename({"p_id": "hukou_id_number", "p_hukou": "true_hukou_number"}),
                         on=["hukou_id_number", "true_hukou_number"], how="left")
    tie = expected.join(ties, on=KEY, how="semi")["rec"]
    expected = expected.select("rec", "dataset", pl.col("phenomenon").fill_null("").replace("", "(none)"),
                               pl.when(pl.col("rec").is_in(tie.implode())).then(None).otherwise(pl.col("person_key"))
                               .alias("person_key"))
    expected = expected.with_columns(pl.when(pl.col("rec").is_in(tie.implode())).then(pl.lit("namesake_tie"))
                                     .otherwise(pl.col("phenomenon")).alias("phenomenon"))
    shutil.rmtree(task, ignore_errors=True)
    task.mkdir(parents=True)
    left.drop("hukou_id_number", "true_hukou_number", "phenomenon").write_parquet(task / "left.parquet")
    people.with_row_index("sid").write_parquet(task / "right.parquet")
    expected.write_parquet(task / "truth.parquet")
    return {"left": left.height, "right": people.height, "expected": expected["person_key"].is_not_null().sum(),
            "by_dataset": dict(left.group_by("dataset").len().iter_rows())}


# ---------------------------------------------------------------- the tools (each in a child)


def features(frame: pl.DataFrame, right: bool, known15: pl.Series | None = None) -> pl.DataFrame:
    """What the generic tools compare and block on. Left: the records (unique id `rec`); right: the
    spine (unique id `sid`). Birth date and sex of a record without them come from its 18-digit ID.
    The masked-digit keys (`m<start>_<width>`) and county + last four (`rt`) are set, on the left,
    only for numbers with a typo, as bidui sets them: damaged, and if Excel cut them, their 15
    digits nobody's."""
    if right:
        f = frame.select(("s" + pl.col("sid").cast(pl.String)).alias("unique_id"), pl.col("id_number").alias("id"),
                         "form", "pinyin", pl.col("birth_date").alias("birth"), "sex", "village")
    else:
        full = pl.col("id").str.len_chars() == 18
        f = frame.select(
            pl.col("rec").cast(pl.String).alias("unique_id"), "id", "form", "pinyin",
            pl.coalesce(pl.col("birth"), pl.when(full).then(pl.col("id").str.slice(6, 8).str.to_date("%Y%m%d", strict=False)))
            .alias("birth"),
            pl.coalesce(pl.col("sex"), pl.when(full).then(
                pl.when(pl.col("id").str.slice(16, 1).cast(pl.Int8, strict=False) % 2 == 1).then(pl.lit("男"))
                .otherwise(pl.lit("女")))).alias("sex"),
            "village", (pl.col("id_status") != "valid").alias("_damaged"), (pl.col("id_status") == "excel_mangled").alias("_cut"))
    full = pl.col("id").str.len_chars() == 18
    f15 = pl.when(pl.col("id").str.len_chars() >= 15).then(pl.col("id").str.slice(0, 15))
    f = f.with_columns(
        pl.col("id").str.slice(0, 6).alias("region"), pl.when(full).then(pl.col("id").str.slice(6, 8)).alias("birth8"),
        f15.alias("first15"), *[pl.when(full).then(pl.col("id").str.slice(a, 4)).alias(n)
                                for a, n in ((6, "year"), (10, "mmdd"), (14, "tail"))])
    masked = [(pl.col("first15").str.slice(0, p) + "_" * w + pl.col("first15").str.slice(p + w)).alias(f"m{p}_{w}")
              for p, w in MASKS]
    a, b = pl.col("first15").str.slice(13, 1), pl.col("first15").str.slice(14, 1)
    masked.append((pl.col("first15").str.slice(0, 13) + pl.when(a <= b).then(a + b).otherwise(b + a)).alias("swap"))
    rt = (pl.col("region") + pl.col("tail")).alias("rt")
    if right:
        return f.with_columns(*masked, rt)
    # A number with a typo: every damaged one but those Excel cut whose 15 digits are someone's.
    typed = (pl.col("_damaged") & pl.col("first15").str.contains(r"^\d{15}$")
             & (~pl.col("_cut") | ~pl.col("first15").is_in(known15.implode())))
    return f.with_columns(*[pl.when(typed).then(m) for m in masked],
                          pl.when(typed & pl.col("tail").is_not_null() & ~pl.col("_cut")).then(rt).alias("rt")
                          ).drop("_damaged", "_cut")


def tool_features(task: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    right_raw = pl.read_parquet(task / "right.parquet")
    right = features(right_raw, True)
    left = features(pl.read_parquet(task / "left.parquet"), False, right["first15"].drop_nulls().unique())
    sids = right_raw.select(("s" + pl.col("sid").cast(pl.String)).alias("unique_id"), "person_key")
    return left, right, sids


def run_bidui(task: Path) -> pl.DataFrame:
    from bidui.matching.link import link_frame

    result = link_frame(task / "left.parquet", task / "right.parquet")  # DuckDB reads the files itself
    return result.links.filter(pl.col("method") != "none").select(pl.col("rec").cast(pl.String), "person_key")


def run_splink(task: Path) -> pl.DataFrame:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    left, right, sids = tool_features(task)
    db = DuckDBAPI()
    l_df = db.register(left.to_arrow(), dataset_display_name="records")
    r_df = db.register(right.to_arrow(), dataset_display_name="hukou")
    name = cl.CustomComparison([
        cll.NullLevel("pinyin"),
        cll.ExactMatchLevel("form").configure(tf_adjustment_column="form"),
        cll.ExactMatchLevel("pinyin").configure(tf_adjustment_column="pinyin"),
        cll.JaroWinklerLevel("pinyin", 0.92), cll.JaroWinklerLevel("pinyin", 0.88), cll.JaroWinklerLevel("pinyin", 0.7),
        cll.ElseLevel()], output_column_name="name")
    blocking = [
        block_on("id"), f"l.region = r.region AND l.birth8 = r.birth8 AND {near('tail', 'tail', 4)}", block_on("first15"),
        *[block_on("pinyin", "region", g) for g in ("year", "mmdd", "tail")],
        block_on("form", "village"), block_on("pinyin", "birth"),
        *[block_on(f"m{p}_{w}") for p, w in MASKS], block_on("swap"), f"l.rt = r.rt AND {near('birth8', 'birth8', 8)}",
    ]
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.LevenshteinAtThresholds("id", [1, 2, 3]),
            name,
            cl.DateOfBirthComparison("birth", input_is_string=False),
            cl.ExactMatch("sex"),
            cl.ExactMatch("village"),
        ],
        blocking_rules_to_generate_predictions=blocking,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker([l_df, r_df], settings, log_level=30)
    linker.training.estimate_probability_two_random_records_match([block_on("id")], recall=0.95)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=15)
    # m: EM on pairs of one name and birth date (trains ID, sex, village), then on pairs of one ID
    # (the name, birth date, sex, village). EM on one name in one county instead (5 M pairs) took
    # twice as long for the same F1.
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("pinyin", "birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("id"))
    pred = pl.from_arrow(linker.inference.predict(threshold_match_probability=0.5).as_pyarrow_table())
    left_is_l = pred["source_dataset_l"].cast(pl.String) == "records"
    pred = pred.select(pl.when(left_is_l).then(pl.col("unique_id_l")).otherwise(pl.col("unique_id_r")).alias("rec"),
                       pl.when(left_is_l).then(pl.col("unique_id_r")).otherwise(pl.col("unique_id_l")).alias("unique_id"),
                       pl.col("match_probability").alias("p"))
    return best_per_record(pred.join(sids, on="unique_id").select("rec", "person_key", "p"))


def run_recordlinkage(task: Path) -> pl.DataFrame:
    import pandas as pd
    import recordlinkage

    left, right, sids = tool_features(task)
    cols = ["unique_id", "id", "pinyin", "birth", "sex", "village", "region"]
    left = left.select(cols).to_pandas().set_index("unique_id")
    right = right.select(cols).to_pandas().set_index("unique_id")
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
    out = pl.DataFrame({"rec": [str(a) for a, _ in prob.index], "unique_id": [str(b) for _, b in prob.index],
                        "p": prob.to_numpy()})
    return best_per_record(out.join(sids, on="unique_id").select("rec", "person_key", "p"))


def best_per_record(pred: pl.DataFrame, threshold: float = 0.9) -> pl.DataFrame:
    """One-to-one on the record side: the most probable candidate, if probable enough."""
    return (pred.filter(pl.col("p") >= threshold).sort(["rec", "p"], descending=[False, True])
            .unique("rec", keep="first").select("rec", "person_key"))


def step_tool(tool: str, task: Path, out: Path) -> dict:
    cpu = pf.cpu_seconds()
    start = time.perf_counter()
    pred = {"bidui": run_bidui, "splink": run_splink, "recordlinkage": run_recordlinkage}[tool](task)
    seconds = time.perf_counter() - start
    cpu = pf.cpu_seconds() - cpu
    pred.write_parquet(out)
    return {"seconds": seconds, "cpu_seconds": cpu, "rss_mb": pf.rss_mb()}


# ---------------------------------------------------------------- the parent


def scored(pred: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """truth (rec, dataset, phenomenon, person_key) with tp / fp / fn of the predictions."""
    j = truth.with_columns(pl.col("rec").cast(pl.String)).join(
        pred.rename({"person_key": "predicted"}), on="rec", how="left")
    same = (pl.col("predicted") == pl.col("person_key")).fill_null(False)
    return j.with_columns((pl.col("predicted").is_not_null() & same).alias("tp"),
                          (pl.col("predicted").is_not_null() & ~same).alias("fp"),
                          (pl.col("person_key").is_not_null() & ~same).alias("fn"))


def prf(j: pl.DataFrame) -> tuple[float, float, float]:
    tp, fp, fn = int(j["tp"].sum()), int(j["fp"].sum()), int(j["fn"].sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def print_night(r: dict, ingest: dict) -> None:
    t = r["timings"]
    print(f"### Night {r['night']}\n")
    print(f"ingest {ingest['seconds']:.1f} s ({ingest['rows']:,} rows; "
          + ", ".join(f"{n} {s}" for s, n in ingest["statuses"].items())
          + (f": {', '.join(ingest['held'])}" if ingest["held"] else "") + "). "
          f"Linking: {r['records']:,} records, {r['pairs']:,} candidate pairs, {r['seconds']:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in t.items())}), peak RSS {r['rss_mb']:,.0f} MB"
          + (f"; no snapshot in force: {', '.join(r['skipped'])}" if r["skipped"] else "") + ".\n")
    print(pf.table(["method", *r["counts"]], [["records", *r["counts"].values()]]) + "\n")
    header = ["records", "linked right", "linked wrong", "not linked", "precision", "recall"]
    print(pf.table(["dataset", *header], [*r["datasets"], ["**all**", *r["all"][1:]]]) + "\n")
    print(pf.table(["phenomenon", *header], r["phenomena"]) + "\n")
    low = [f"{g} ({p:.4f} / {rc:.4f})" for g, _, _, _, _, p, rc in r["datasets"] if p < BAR or rc < BAR]
    print(f"Datasets below {BAR} (precision / recall): {', '.join(low) if low else 'none'}.\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--tools", default="bidui,splink,recordlinkage")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds a side-by-side tool may take before it is stopped")
    ap.add_argument("--sample", type=int, default=30_000,
                    help="records of medical_insurance and of medical_claims without a phenomenon in the task (each)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side-by-side tool (the median is reported)")
    ap.add_argument("--no-night", action="store_true", help="only the side-by-side task")
    ap.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        kind, *a = args.step
        if kind == "ingest":
            r = pf.ingest(Path(a[0]), Path(a[1]))
        elif kind == "link":
            r = step_link(Path(a[0]), date.fromisoformat(a[1]), Path(a[2]))
        elif kind == "task":
            r = step_task(Path(a[0]), date.fromisoformat(a[1]), Path(a[2]), Path(a[3]), int(a[4]))
        else:
            r = step_tool(a[0], Path(a[1]), Path(a[2]))
        print(json.dumps(r))
        return

    out = pf.prefecture(args.size, args.seed, args.nights)
    folders = pf.night_folders(out)[: args.nights]
    task = out / f"linkage-task-{args.sample}"
    figures: dict = {"size": args.size, "seed": args.seed, "nights": [], "tools": {}}

    def make_task(warehouse: Path) -> None:
        """Made again every run: its records are as this version of ingest normalises them."""
        figures["task"] = pf.run_step(__file__, "task", str(warehouse), folders[0].name,
                                      str(out / "truth" / folders[0].name), str(task), str(args.sample))

    print(f"{args.size} prefecture, seed {args.seed}, {len(folders)} nights ({out}); 2-core machine, one run\n")
    if not args.no_night:
        print("## bidui, every dataset, every night\n")
        warehouse = pf.fresh_warehouse(out, "linkage-home")
        for i, folder in enumerate(folders):
            ingest = pf.run_step(__file__, "ingest", str(warehouse), str(folder))
            if i == 0:
                make_task(warehouse)
            r = pf.run_step(__file__, "link", str(warehouse), folder.name, str(out / "truth" / folder.name))
            r["ingest"] = ingest
            figures["nights"].append(r)
            print_night(r, ingest)
            sys.stdout.flush()
    else:
        warehouse = pf.fresh_warehouse(out, "linkage-task-home")
        pf.run_step(__file__, "ingest", str(warehouse), str(folders[0]))
        make_task(warehouse)

    truth = pl.read_parquet(task / "truth.parquet")
    n_left = truth.height
    n_right = pl.scan_parquet(task / "right.parquet").select(pl.len()).collect().item()
    per_ds = truth.group_by("dataset").len().sort("dataset")
    figures |= {"left": n_left, "right": n_right}
    print(f"## Side by side on the same damaged data ({folders[0].name})\n")
    print(f"{n_left:,} records ({', '.join(f'{d} {n:,}' for d, n in per_ds.iter_rows())}; of medical_insurance and "
          f"medical_claims every record with a phenomenon but namesake and {args.sample:,} others each, fixed seed) × "
          f"{n_right:,} hukou spine rows; {truth['person_key'].is_not_null().sum():,} records have a person to find, "
          f"{truth['person_key'].is_null().sum():,} none (outsiders, ties).\n")
    rows, per_tool = [], {}
    # Each tool --repeat times, the tools taking turns (a load on the machine falls on all of them
    # alike); the median run of each is reported, the others' wall times beside it.
    runs: dict[str, list[dict]] = {tool: [] for tool in args.tools.split(",")}
    failed: dict[str, str] = {}
    for _ in range(args.repeat):
        for tool in runs:
            if tool in failed:
                continue
            try:
                res = subprocess.run([sys.executable, __file__, "--step", "tool", tool, str(task),
                                      str(task / f"pred_{tool}.parquet")], capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                failed[tool] = f"> {args.timeout} (stopped)"
                continue
            if res.returncode:
                failed[tool] = f"failed: {res.stderr.strip().splitlines()[-1][:160]}"
                continue
            runs[tool].append(json.loads(res.stdout.strip().splitlines()[-1]))
    for tool, done in runs.items():
        pred_file = task / f"pred_{tool}.parquet"
        if tool in failed:
            rows.append([tool, failed[tool], "", "", "", "", ""])
            continue
        r = sorted(done, key=lambda x: x["seconds"])[len(done) // 2] | {"runs": [x["seconds"] for x in done]}
        j = scored(pl.read_parquet(pred_file), truth)
        p, rc, f1 = prf(j)
        per_tool[tool] = j
        figures["tools"][tool] = r | {"precision": p, "recall": rc, "f1": f1}
        rows.append([tool, f"{r['seconds']:.1f}" + (f" (runs: {', '.join(f'{x:.1f}' for x in r['runs'])})"
                                                    if len(r["runs"]) > 1 else ""),
                     f"{r['cpu_seconds']:.1f}", f"{r['rss_mb']:,.0f}", p, rc, f1])
    print(pf.table(["tool", "seconds" + (f" (median of {args.repeat})" if args.repeat > 1 else ""), "CPU seconds",
                    "peak RSS MB", "precision", "recall", "F1"], rows) + "\n")
    tools = figures["tools"]
    if "bidui" in tools and "splink" in tools:
        ratio = tools["splink"]["seconds"] / tools["bidui"]["seconds"]
        higher = tools["bidui"]["f1"] > tools["splink"]["f1"]
        met = ratio >= 20 and higher
        cpu_ratio = tools["splink"]["cpu_seconds"] / tools["bidui"]["cpu_seconds"]
        print(f"**bidui is {ratio:.1f}× faster than Splink ({tools['bidui']['seconds']:.1f} s vs "
              f"{tools['splink']['seconds']:.1f} s wall; {cpu_ratio:.1f}× in CPU seconds) and its F1 is {'higher' if higher else 'not higher'} "
              f"({tools['bidui']['f1']:.4f} vs {tools['splink']['f1']:.4f}): the issue's bar (≥ 20× faster at a higher "
              f"F1) is {'met' if met else 'missed'}.**\n")
        figures["speedup"] = ratio
    if per_tool:
        print("Per phenomenon (right outcomes / records; precision, recall):\n")
        names = list(per_tool)
        groups = sorted(truth["phenomenon"].unique())
        body = []
        for g in groups:
            row: list = [g, int((truth["phenomenon"] == g).sum())]
            for t in names:
                sub = per_tool[t].filter(pl.col("phenomenon") == g)
                right = int((~sub["fp"] & ~sub["fn"]).sum())
                p, rc, _ = prf(sub)
                row.append(f"{right:,} ({p:.4f}, {rc:.4f})")
            body.append(row)
        print(pf.table(["phenomenon", "records", *names], body) + "\n")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
