"""Every rule on every night of the synthetic prefecture with the phenomena of issue 15: time per
rule and in all, and each rule's clues against the answer key (truth/<date>/clues.csv).

    python bench/rules.py [--size medium] [--seed 3] [--nights 3] [--json OUT]

The prefecture is generated once into bench/out/<size>-s<seed>-n<nights>/ (shared with
bench/linkage.py); its nights are ingested, linked and run through the rules in order in one
fresh warehouse. Ingest runs in a process of its own; linking, the rules and the scoring of a
night in another (its peak RSS is reported).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import prefecture as pf

BAR = 0.99


def step_rules(warehouse: Path, night: date, truth_dir: Path) -> dict:
    """Link the night (already ingested), run every rule, score the hits."""
    from bidui import config
    from bidui.connectors import warehouse as wh
    from bidui.matching.link import link_night
    from bidui.rules.accuracy import evaluate
    from bidui.rules.engine import run_rules

    con = wh.connect(warehouse)
    start = time.perf_counter()
    link_night(con, night)
    link_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = run_rules(con, night, config.load(None))
    seconds = time.perf_counter() - start
    rss = pf.rss_mb()
    con.close()
    table, _, _ = evaluate(result.hits, truth_dir)
    scored = {row[0]: row[1:] for row in table.rows()}
    per = {o.code: o for o in result.outcomes}
    rows = []
    for code in sorted(set(scored) | set(per)):
        o = per.get(code)
        tp, fp, fn, p, r = scored.get(code, (0, 0, 0, 1.0, 1.0))
        rows.append([code, o.seconds if o else 0.0, o.hits if o else 0, tp, fp, fn, p, r])
    return {"night": night.isoformat(), "link_seconds": link_seconds, "seconds": seconds, "hits": result.hits.height,
            "rss_mb": rss, "rules": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        kind, *a = args.step
        r = pf.ingest(Path(a[0]), Path(a[1])) if kind == "ingest" else step_rules(Path(a[0]), date.fromisoformat(a[1]), Path(a[2]))
        print(json.dumps(r))
        return

    out = pf.prefecture(args.size, args.seed, args.nights)
    folders = pf.night_folders(out)[: args.nights]
    warehouse = pf.fresh_warehouse(out, "rules-home")
    print(f"{args.size} prefecture, seed {args.seed}, {len(folders)} nights ({out}); 2-core machine, one run\n")
    nights, below = [], []
    for folder in folders:
        ingest = pf.run_step(__file__, "ingest", str(warehouse), str(folder))
        r = pf.run_step(__file__, "rules", str(warehouse), folder.name, str(out / "truth" / folder.name))
        r["ingest_seconds"] = ingest["seconds"]
        nights.append(r)
        print(f"### Night {r['night']}\n")
        print(f"ingest {ingest['seconds']:.1f} s, linking {r['link_seconds']:.1f} s, **all rules {r['seconds']:.1f} s**, "
              f"{r['hits']:,} hits; peak RSS of the linking and rules process {r['rss_mb']:,.0f} MB\n")
        rows = [[code, f"{s:.2f}", hits, tp, fp, fn, p if tp + fp else "–", rc if tp + fn else "–"]
                for code, s, hits, tp, fp, fn, p, rc in r["rules"]]
        print(pf.table(["rule", "seconds", "hits", "true", "false", "missed", "precision", "recall"], rows) + "\n")
        low = [f"{code} ({p:.4f} / {rc:.4f})" for code, _, _, _, _, _, p, rc in r["rules"] if p < BAR or rc < BAR]
        below += [f"{r['night']} {x}" for x in low]
        print(f"Rules below {BAR} (precision / recall): {', '.join(low) if low else 'none'}.\n", flush=True)
    print(f"**Every rule ≥ {BAR} in precision and recall on every night: {'yes' if not below else 'no'}**"
          + ("" if not below else f" (below: {'; '.join(below)})") + "\n")
    if args.json:
        rules = [row for n in nights for row in n["rules"]]
        args.json.write_text(json.dumps({
            "nights": nights, "seconds": sum(n["seconds"] for n in nights) / len(nights),
            "link_seconds": sum(n["link_seconds"] for n in nights) / len(nights),
            "hits": nights[0]["hits"], "rss_mb": max(n["rss_mb"] for n in nights),
            "min_precision": min(row[6] for row in rules), "min_recall": min(row[7] for row in rules)}, indent=1))


if __name__ == "__main__":
    main()
