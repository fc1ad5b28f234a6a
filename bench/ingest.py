"""Ingest speed: rows/s per file (and so per format) and a whole night's time and peak RSS.

    python bench/ingest.py --size medium          # builds bench/out/<size> once, then ingests night 1
    python bench/ingest.py --inbox DIR/inbox/2026-11-20

Runs the ingest in a child process so peak RSS is the ingest's alone; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from datetime import date
from pathlib import Path
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
folder, db = Path(sys.argv[1]), Path(sys.argv[2])
con = wh.connect(db)
t = time.perf_counter()
outcomes = ingest_night(con, folder, date.fromisoformat(folder.name))
total = time.perf_counter() - t
con.close()
fmt = {r[0]: (r[1], r[2]) for r in wh.connect(db).execute("SELECT file, fmt, encoding FROM load_log").fetchall()}
print(json.dumps({"total": total, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "files": [dict(file=o.file, dataset=o.dataset, status=o.status, rows=o.rows_read, seconds=o.seconds,
                                 fmt=(fmt.get(o.file) or (None, None))[0], encoding=(fmt.get(o.file) or (None, None))[1])
                            for o in outcomes if o.file]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--inbox", type=Path, help="ingest this night folder instead of a synthetic one")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    folder = args.inbox
    if folder is None:
        out = Path("bench/out") / args.size
        if not (out / "inbox").exists():
            subprocess.run([sys.executable, "-m", "bidui.cli", "synth", "--out", str(out), "--size", args.size,
                            "--seed", str(args.seed), "--nights", "1"], check=True)
        folder = sorted((out / "inbox").iterdir())[0]
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(Path(tmp) / "w.duckdb")],
                             capture_output=True, text=True, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"ingest of {folder}\n")
    print("| file | dataset | format | rows | seconds | rows/s | status |")
    print("|---|---|---|---|---|---|---|")
    for f in sorted(r["files"], key=lambda f: -f["rows"]):
        form = f["fmt"] + (f" {f['encoding']}" if f["encoding"] else "") if f["fmt"] else ""
        rate = f"{f['rows'] / f['seconds']:,.0f}" if f["seconds"] else ""
        print(f"| {f['file']} | {f['dataset']} | {form} | {f['rows']:,} | {f['seconds']:.1f} | {rate} | {f['status']} |")
    rows = sum(f["rows"] for f in r["files"])
    print(f"\n**night: {rows:,} rows in {r['total']:.1f} s ({rows / r['total']:,.0f} rows/s), peak RSS {r['rss']:,.0f} MB "
          f"(largest worker {r['rss_workers']:,.0f} MB)**")
    by_format: dict[str, list[float]] = {}
    for f in r["files"]:
        if f["fmt"] and f["seconds"]:
            by_format.setdefault(f["fmt"], [0, 0.0])
            by_format[f["fmt"]][0] += f["rows"]
            by_format[f["fmt"]][1] += f["seconds"]
    print("\n| format | rows | seconds (summed over files) | rows/s |\n|---|---|---|---|")
    for fmt, (n, secs) in sorted(by_format.items()):
        print(f"| {fmt} | {n:,} | {secs:.1f} | {n / secs:,.0f} |")
    if args.json:
        args.json.write_text(json.dumps(r | {"rows": rows, "by_format": by_format}, indent=1))


if __name__ == "__main__":
    main()
