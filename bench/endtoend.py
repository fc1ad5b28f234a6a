"""A whole nightly run, end to end, per step: seconds and peak RSS (the run's process and its
ingest workers together), for each night of a synthetic prefecture in one fresh home.

    python bench/endtoend.py --size large [--nights N] [--out FOLDER] [--json OUT]

--out: a prefecture made by `bidui synth` elsewhere (default bench/out/<size>, made if missing).
After the timings, what the warehouse holds after each night: its size and the rows of its ranged
tables, every night's together (what the scans of a later night skip or read).

The run is `bidui run --plain` (no Prefect: its ephemeral server's start-up is not the system's
work) in a child process; RSS is sampled from /proc every 0.2 s over the child's process tree.

Then (unless --no-compare) the same nights run from scratch (`bidui run --plain --from-scratch`:
every row normalised, every record linked, nothing carried) in a second home, and the two homes
are compared night by night (bidui.flows.same_results: links, rule hits, rule runs, doubtful
persons, register duplicates, every dataset's stored snapshot and rejects, each counted and
checksummed) and, after the last night, ledger against ledger (clues, their events and evidence,
publish runs, link decisions). The table says which parts differ, if any.

Last (unless --no-same), the last night's files are delivered again byte for byte as the next
night in the incremental home: a night where nothing changed, the least any later night costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

CHILD_FLAG = "--child"


def tree_rss_mb(root: int) -> float:
    """RSS of a process and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += parents.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total / 2**20


def child(home: Path, folder: Path, from_scratch: bool = False) -> None:
    from bidui.flows.nightly import run_night
    from bidui.home import Home

    peaks: dict[str, float] = {}
    current = {"step": "start"}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = tree_rss_mb(os.getpid())
            peaks[current["step"]] = max(peaks.get(current["step"], 0.0), rss)
            stop.wait(0.2)

    def on_step(step: str, what: str) -> None:
        if what == "start":
            current["step"] = step

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    report = run_night(Home(home), folder, on_step=on_step, from_scratch=from_scratch)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    rows = sum(f.get("rows_read") or 0 for f in report.files)
    new = sum(c.get("new", 0) for c in report.clues.values())
    print(json.dumps({"night": folder.name, "status": report.status, "wall": wall, "timings": report.timings,
                      "peaks": peaks, "rows": rows, "links": sum(report.links.values()), "new_clues": new,
                      "stored": stored(Home(home).warehouse)}))


def stored(warehouse: Path) -> dict:
    """What the warehouse holds after a night: its file's size and the rows of its largest tables
    (every night's, not one night's: what a later night's scans read grows with them)."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        sizes = dict(con.execute("SELECT table_name, estimated_size FROM duckdb_tables()").fetchall())
    finally:
        con.close()
    return {"mb": warehouse.stat().st_size / 2**20, "links": sizes.get("links", 0),
            "snapshot_rows": sum(v for k, v in sizes.items() if k.startswith("ds_")),
            "hits": sizes.get("rule_hits", 0)}


def median_night(runs: list[dict]) -> dict:
    first = runs[0]
    return first | {"wall": statistics.median(r["wall"] for r in runs), "walls": [r["wall"] for r in runs],
                    "timings": {k: statistics.median(r["timings"][k] for r in runs) for k in first["timings"]},
                    "peaks": {k: statistics.median(r["peaks"].get(k, 0.0) for r in runs) for k in first["peaks"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nights", type=int, default=2, help="at most this many nights (those already built are used)")
    ap.add_argument("--repeat", type=int, default=1, help="runs from a fresh home; medians are shown")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--out", type=Path, help="the prefecture's folder (default bench/out/<size>)")
    ap.add_argument("--no-compare", action="store_true", help="do not run the nights from scratch to compare")
    ap.add_argument("--no-same", action="store_true", help="do not run the last night's files again as a night where "
                                                          "nothing changed")
    ap.add_argument(CHILD_FLAG, nargs="+", help=argparse.SUPPRESS)  # home, folder[, "scratch"]
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child[2:] == ["scratch"])
        return
    out = args.out or Path("bench/out") / args.size
    inbox = out / "inbox"
    if not inbox.exists():
        subprocess.run([sys.executable, "-m", "bidui.cli", "synth", "--out", str(out), "--size", args.size,
                        "--seed", str(args.seed), "--nights", str(args.nights)], check=True)
    folders = sorted(inbox.iterdir())[: args.nights]
    runs: list[list[dict]] = []
    for _ in range(args.repeat):
        runs.append(run_nights(out / "e2e-home", folders))
    # Per night and step, the median over the runs (each from a fresh home).
    nights = [median_night([run[i] for run in runs]) for i in range(len(runs[0]))]
    print(f"nightly run end to end, {args.size} prefecture, fresh home, `bidui run --plain`; median of "
          f"{args.repeat} run(s)\n")
    print("| night | step | seconds | peak RSS MB |")
    print("|---|---|---|---|")
    for n in nights:
        for step, seconds in n["timings"].items():
            print(f"| {n['night']} | {step} | {seconds:.1f} | {n['peaks'].get(step, 0):,.0f} |")
        spread = f" (runs: {', '.join(f'{w:.1f}' for w in n['walls'])})" if len(n["walls"]) > 1 else ""
        print(f"| {n['night']} | **whole night**{spread} | **{n['wall']:.1f}** | **{max(n['peaks'].values()):,.0f}** |")
    print("\n" + "; ".join(f"{n['night']}: {n['rows']:,} rows read, {n['links']:,} records linked, {n['new_clues']:,} new clues"
                           for n in nights))
    print("\nwhat the warehouse holds after each night (every night's rows: a later night's scans read them)\n")
    print("| night | warehouse MB | links | snapshot rows | rule hits |")
    print("|---|---|---|---|---|")
    for n in nights:
        s = n["stored"]
        print(f"| {n['night']} | {s['mb']:,.0f} | {s['links']:,} | {s['snapshot_rows']:,} | {s['hits']:,} |")
    # Issue 18's bar: a later night costs what changed, at most a tenth of the first.
    for n in nights[1:]:
        print(f"{n['night']}: {n['wall']:.1f} s, {n['wall'] / nights[0]['wall']:.0%} of the first night's "
              f"{nights[0]['wall']:.1f} s (the bar: at most 10%)")
    if not args.no_compare:
        # (each night's figures get its comparison; the last night's also the ledger's)
        *per_night, ledger = compare(out / "e2e-home", out / "e2e-scratch", folders)
        for n, c in zip(nights, per_night, strict=True):
            n["from_scratch"] = c
        nights[-1]["ledger_from_scratch"] = ledger
    if not args.no_same:
        same = same_night(out / "e2e-home", folders[-1], out / "e2e-same")
        print(f"\na night where nothing changed (the files of {folders[-1].name} again, as {same['night']}; run "
              f"{same['status']}, {same['rows']:,} rows read, {same['new_clues']:,} new clues), after the "
              f"nights above in the same home: {same['wall']:.1f} s ({' / '.join(f'{v:.1f}' for v in same['timings'].values())}"
              f"), {same['wall'] / nights[0]['wall']:.0%} of the first night: what every later night costs at least "
              "(each step's passes over the stored tables)")
        nights.append(same | {"nothing_changed": True})
    if args.json:
        args.json.write_text(json.dumps(nights, indent=1))


def run_nights(home: Path, folders: list[Path], *flags: str, keep: bool = False) -> list[dict]:
    """Each night in order in a fresh home (`keep`: in the home as it is), each in a child process;
    their figures."""
    if not keep:
        shutil.rmtree(home, ignore_errors=True)
    nights = []
    for folder in folders:
        res = subprocess.run([sys.executable, __file__, CHILD_FLAG, str(home), str(folder), *flags], capture_output=True,
                             text=True)
        if res.returncode:
            sys.exit(f"the run of {folder.name} failed:\n{res.stderr[-3000:]}")
        nights.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return nights


def same_night(home: Path, last: Path, parent: Path) -> dict:
    """The last night's files delivered again, byte for byte, as the next night (in a folder under
    `parent`), run in `home` after the nights (once they are compared: it changes the ledger)."""
    from datetime import date, timedelta

    folder = parent / (date.fromisoformat(last.name) + timedelta(days=1)).isoformat()
    shutil.rmtree(parent, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in last.iterdir():
        if f.is_file():
            try:
                os.link(f, folder / f.name)
            except OSError:
                shutil.copy2(f, folder / f.name)
    try:
        return run_nights(home, [folder], keep=True)[0]
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def compare(home: Path, scratch: Path, folders: list[Path]) -> list[dict]:
    """The nights run again from scratch in `scratch`; both homes compared part by part."""
    from datetime import date

    from bidui.connectors import warehouse as wh
    from bidui.flows import same_results
    from bidui.home import Home

    again = run_nights(scratch, folders, "scratch")
    cons = [wh.connect(Home(h).warehouse) for h in (home, scratch)]
    rows = []
    try:
        for folder, night in zip(folders, again, strict=True):
            day = date.fromisoformat(folder.name)
            ours, theirs = (same_results.warehouse_checksums(c, day) for c in cons)
            rows.append({"night": folder.name, "wall": night["wall"], "timings": night["timings"], "parts": len(ours),
                         "rows": sum(n for n, _ in ours.values()),
                         "differ": [p for p in ours if ours[p] != theirs[p]]})
    finally:
        for c in cons:
            c.close()
    ours, theirs = (same_results.ledger_checksums(Home(h).ledger) for h in (home, scratch))
    ledger = {"parts": len(ours), "rows": sum(n for n, _ in ours.values()), "differ": [p for p in ours if ours[p] != theirs[p]]}
    print("\nthe same nights from scratch (`bidui run --plain --from-scratch`) in a second home, compared with the "
          "incremental home (bidui.flows.same_results: each part counted and checksummed)\n")
    print("| night | from scratch, seconds | ingest / link / rules / publish | parts compared | rows compared | equal |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        steps = " / ".join(f"{v:.1f}" for v in r["timings"].values())
        print(f"| {r['night']} | {r['wall']:.1f} | {steps} | {r['parts']} | {r['rows']:,} | "
              f"{'**yes**' if not r['differ'] else 'no: ' + ', '.join(r['differ'])} |")
    print(f"| ledger after {folders[-1].name} | | | {ledger['parts']} | {ledger['rows']:,} | "
          f"{'**yes**' if not ledger['differ'] else 'no: ' + ', '.join(ledger['differ'])} |")
    return [*rows, {"night": "ledger", **ledger}]


if __name__ == "__main__":
    main()
