"""Who waits for whom in one night's ingest: each file's worker time and when the writer stored it.

    python bench/ingest_timeline.py --home HOME --inbox bench/out/large/inbox/2026-11-21

HOME is copied first (a night-1 home, to time a later night against it; an empty folder for a first
night) and left as it was. Prints a markdown table in the order the writer stored the files, the
ingest's wall and CPU seconds (this process and its workers). A file stored long after its worker
finished waited for the writer; a writer idle between stores waited for the workers.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--inbox", type=Path, required=True, help="the night's folder, inbox/YYYY-MM-DD")
    args = ap.parse_args()

    from bidui.connectors import ingest
    from bidui.flows import nightly
    from bidui.home import Home

    rows: list[tuple[str, str, float, float, float]] = []
    start = time.perf_counter()
    store = ingest.store

    def timed_store(con, p, **kwargs):  # type: ignore[no-untyped-def]
        began = time.perf_counter() - start
        outcome = store(con, p, **kwargs)
        rows.append((p.name, outcome.status, p.seconds, began, time.perf_counter() - start))
        return outcome

    ingest.store = timed_store
    with tempfile.TemporaryDirectory(prefix="timeline-", dir=args.home.parent) as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(args.home, home)
        cpu = _cpu()
        start = time.perf_counter()
        nightly.plain_steps(Home(home), args.inbox, date.fromisoformat(args.inbox.name))["ingest"]()
        wall, cpu = time.perf_counter() - start, _cpu() - cpu
    print(f"ingest of {args.inbox.name} on a copy of {args.home}: {wall:.2f} s wall, {cpu:.1f} CPU seconds "
          f"({cpu / wall:.2f} cores)\n")
    print("| file | outcome | worker, s | stored from, s | to, s |")
    print("|---|---|---|---|---|")
    for name, status, worker, began, ended in rows:
        print(f"| {name} | {status} | {worker:.2f} | {began:.2f} | {ended:.2f} |")


if __name__ == "__main__":
    main()
