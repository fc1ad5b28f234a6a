"""All rules on a night: time per rule and in all, and accuracy per rule against the answer key.

    python bench/rules.py --size medium      # uses bench/out/<size> (built and ingested if missing)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

NIGHT = date(2026, 11, 20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    out = Path("bench/out") / args.size
    if not (out / "inbox").exists():
        subprocess.run([sys.executable, "-m", "bidui.cli", "synth", "--out", str(out), "--size", args.size, "--seed",
                        str(args.seed), "--nights", "1"], check=True)
    home = out / "home"
    if not (home / "warehouse.duckdb").exists():
        subprocess.run([sys.executable, "-m", "bidui.cli", "--home", str(home), "ingest", str(out / "inbox" / NIGHT.isoformat())])
    from bidui import config
    from bidui.connectors import warehouse as wh
    from bidui.matching.link import link_night
    from bidui.rules.accuracy import evaluate
    from bidui.rules.engine import run_rules

    con = wh.connect(home / "warehouse.duckdb")
    start = time.perf_counter()
    link_night(con, NIGHT)
    link_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = run_rules(con, NIGHT, config.load(None))
    seconds = time.perf_counter() - start
    table, _, _ = evaluate(result.hits, out / "truth" / NIGHT.isoformat())
    per = {o.code: o for o in result.outcomes}
    print(f"rules on the {args.size} night (linking first: {link_seconds:.1f} s)\n")
    print("| rule | seconds | hits | true | false | missed | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for code, tp, fp, fn, p, r in table.rows():
        o = per.get(code)
        print(f"| {code} | {o.seconds if o else 0:.2f} | {o.hits if o else 0:,} | {tp:,} | {fp:,} | {fn:,} | {p:.4f} | {r:.4f} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n**all rules: {seconds:.1f} s, {result.hits.height:,} hits; peak RSS of this process {rss:,.0f} MB**")
    if args.json:
        args.json.write_text(json.dumps({"seconds": seconds, "link_seconds": link_seconds, "hits": result.hits.height,
                                         "rss_mb": rss, "min_precision": min(r[4] for r in table.rows()),
                                         "min_recall": min(r[5] for r in table.rows())}, indent=1))


if __name__ == "__main__":
    main()
