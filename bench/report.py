"""Run every benchmark and write docs/benchmarks.md: the goals beside the figures, then each
benchmark's own tables. `make bench SIZE=large` calls this.

    python bench/report.py --size large [--only endtoend,ingest,linkage,rules,febrl,web] [--out FILE]

The linkage side by side runs on `--linkage-size` (default: medium for large, else the size):
Splink and recordlinkage on the large register ↔ 4 M hukou persons take longer than a night.
Benchmarks run one after another, never together (this machine has 2 cores). Hand-written notes
(why a goal is missed and what would close it) come from bench/notes.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).parent
ORDER = ("endtoend", "ingest", "linkage", "rules", "febrl", "web")
TITLES = {"endtoend": "Nightly run end to end", "ingest": "Ingest", "linkage": "Linkage side by side",
          "rules": "Rules", "febrl": "FEBRL4 sanity check", "web": "Web latency under load"}


def run(name: str, args: list[str], tmp: Path) -> tuple[str, dict | list | None, float]:
    out = tmp / f"{name}.json"
    start = time.perf_counter()
    res = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *args, "--json", str(out)], capture_output=True,
                         text=True)
    seconds = time.perf_counter() - start
    text = res.stdout.strip()
    if res.returncode:
        text += f"\n\n**failed** (exit {res.returncode}):\n\n```\n{res.stderr.strip()[-2000:]}\n```"
    figures = json.loads(out.read_text()) if out.exists() else None
    print(f"{name}: {seconds:.0f} s", file=sys.stderr)
    return text, figures, seconds


def machine() -> str:
    mem = next((int(line.split()[1]) / 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0.0)
    return (f"{os.cpu_count()} cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}; {datetime.now():%Y-%m-%d %H:%M}")


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"


def goals(size: str, linkage_size: str, fig: dict) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    e2e = fig.get("endtoend")
    if e2e:
        first = e2e[0]
        peak = max(first["peaks"].values()) / 1024
        where = "" if size == "large" else f" (measured on {size}; the goal is for large)"
        judge = (lambda ok: "met" if ok else "missed") if size == "large" else (lambda ok: "n/a")
        runs = len(first.get("walls", [first["wall"]]))
        how = f"median of {runs} runs" if runs > 1 else "one run"
        rows.append((f"large night end to end ≤ 120 s{where}", f"{first['wall']:.1f} s ({first['night']}, fresh home, {how})",
                     judge(first["wall"] <= 120)))
        rows.append((f"large night peak memory ≤ 8 GB{where}", f"{peak:.1f} GB (process tree)",
                     judge(peak <= 8)))
    link = (fig.get("linkage") or {}).get("tools", {})
    if "bidui" in link and "splink" in link:
        ratio = link["splink"]["seconds"] / link["bidui"]["seconds"]
        ok = ratio >= 20 and link["bidui"]["f1"] > link["splink"]["f1"]
        rows.append((f"linkage on damaged data (issue 15) ≥ 20× faster than Splink at a higher F1 ({linkage_size})",
                     f"{ratio:.1f}× ({link['bidui']['seconds']:.1f} s vs {link['splink']['seconds']:.1f} s), "
                     f"F1 {link['bidui']['f1']:.4f} vs {link['splink']['f1']:.4f}", "met" if ok else "missed"))
    febrl = fig.get("febrl") or {}
    if febrl:
        f1s = ", ".join(f"{t} {v['f1']:.4f}" for t, v in febrl.items())
        ok = "bidui" in febrl and febrl["bidui"]["f1"] >= 0.999 - 1e-9
        rows.append(("FEBRL4: bidui's generic engine reaches F1 ≈ 0.999 like Splink and recordlinkage", f1s,
                     "met" if ok else "missed"))
    web = fig.get("web")
    if web:
        worst = max(p["p95"] for p in web["pages"].values())
        rows.append((f"web p95 ≤ 200 ms with {web['users']} users", f"{worst:.0f} ms (worst page), {web['errors']} errors",
                     "met" if worst <= 200 and not web["errors"] else "missed"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small")
    ap.add_argument("--linkage-size")
    ap.add_argument("--repeat", type=int, default=3, help="end-to-end runs (the median is reported)")
    ap.add_argument("--only", default=",".join(ORDER))
    ap.add_argument("--out", type=Path, help="default: docs/benchmarks.md for large (the goals' size), "
                    "else docs/benchmarks-<size>.md")
    ap.add_argument("--render-only", action="store_true", help="rewrite the page from the last run's figures "
                    "(after editing bench/notes.md)")
    args = ap.parse_args()
    args.out = args.out or Path("docs") / ("benchmarks.md" if args.size == "large" else f"benchmarks-{args.size}.md")
    linkage_size = args.linkage_size or ("medium" if args.size == "large" else args.size)
    argv = {"endtoend": ["--size", args.size, "--repeat", str(args.repeat)], "ingest": ["--size", args.size],
            "linkage": ["--size", linkage_size, "--no-night"] if linkage_size != args.size else ["--size", args.size],
            "rules": ["--size", args.size], "febrl": [], "web": []}
    last = Path("bench/out") / f"report-{args.size}.json"
    if args.render_only:
        texts, figures, took, made_on = json.loads(last.read_text())
    else:
        # --only re-runs some benchmarks and keeps the last run's figures for the others.
        texts, figures, took, _ = json.loads(last.read_text()) if last.exists() else ({}, {}, {}, "")
        made_on = machine()
        with tempfile.TemporaryDirectory() as tmp:
            for name in [n for n in ORDER if n in args.only.split(",")]:
                texts[name], figures[name], seconds = run(name, argv[name], Path(tmp))
                took[name] = [seconds, commit()]
        last.parent.mkdir(parents=True, exist_ok=True)
        last.write_text(json.dumps([texts, figures, took, made_on]))
    lines = ["# Benchmarks", "",
             f"Written by `python bench/report.py --size {args.size}` (`make bench SIZE={args.size}`) on {made_on}.",
             "Nothing else ran on the machine, and the benchmarks ran one after another. The end-to-end figures are medians "
             "over runs from a fresh home; every other figure is from one run.", "",
             "## Goals", "", "| goal | figure | |", "|---|---|---|"]
    lines += [f"| {g} | {f} | {m} |" for g, f, m in goals(args.size, linkage_size, figures)]
    notes = BENCH / "notes.md"  # on the large run's figures
    if notes.exists() and args.size == "large":
        lines += ["", notes.read_text(encoding="utf-8").strip()]
    for name in [n for n in ORDER if n in texts]:
        seconds, at = took[name] if isinstance(took[name], list) else (took[name], "?")
        lines += ["", f"## {TITLES[name]}", "", f"`python bench/{name}.py {' '.join(argv[name])}` at commit {at} "
                  f"({seconds:.0f} s including set-up)", "", texts[name]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
