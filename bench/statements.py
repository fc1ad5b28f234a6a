"""Where a night's steps spend their DuckDB time: every statement timed, summed by the line of bidui
that ran it.

    python bench/statements.py --home HOME --inbox bench/out/large/inbox/2026-11-21 [--steps link,rules]

HOME is copied first (a night-1 home, to time a later night against it) and left as it was. The
steps run one after another in this process, as `bidui run --plain` runs them; a step not named
in --steps still runs (the later ones read what it stored) but is not printed. For each step
printed: its wall and CPU seconds (this process and its workers), then the lines of bidui whose
statements took longest (--top), then the longest statements themselves (--statements).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import traceback
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

STEPS = ("ingest", "link", "rules", "publish")


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timed:
    """A DuckDB connection whose statements are timed into `log` as (seconds, bidui line, SQL)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, log: list[tuple[float, str, str]]) -> None:
        object.__setattr__(self, "_con", con)
        object.__setattr__(self, "_log", log)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._con, name, value)

    def __enter__(self) -> Timed:
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._con.__exit__(*exc)

    def _timed(self, method: str, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return getattr(self._con, method)(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - start
            where = next((f"{f.filename.split('/bidui/')[-1]}:{f.lineno} {f.name}"
                          for f in reversed(traceback.extract_stack(limit=14)[:-2]) if "/bidui/" in f.filename), "?")
            self._log.append((seconds, where, " ".join(str(args[0] if args else "").split())))

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("execute", *args, **kwargs)

    def sql(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("sql", *args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("executemany", *args, **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--inbox", type=Path, required=True, help="the night's folder, inbox/YYYY-MM-DD")
    ap.add_argument("--steps", default=",".join(STEPS), help="the steps to print (comma-separated)")
    ap.add_argument("--top", type=int, default=25, help="lines of bidui printed per step")
    ap.add_argument("--statements", type=int, default=10, help="longest statements printed per step")
    args = ap.parse_args()
    shown = set(args.steps.split(","))

    log: list[tuple[float, str, str]] = []
    connect = duckdb.connect
    duckdb.connect = lambda *a, **k: Timed(connect(*a, **k), log)  # type: ignore[assignment]

    from bidui.flows import nightly
    from bidui.home import Home

    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        shutil.copytree(args.home, home.root)
        steps = nightly.plain_steps(home, args.inbox, date.fromisoformat(args.inbox.name))
        for step in STEPS:
            log.clear()
            cpu, start = _cpu(), time.perf_counter()
            steps[step]()
            wall, cpu = time.perf_counter() - start, _cpu() - cpu
            if step not in shown:
                continue
            by_line: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
            for seconds, where, _ in log:
                by_line[where][0] += 1
                by_line[where][1] += seconds
            print(f"\n## {step}: wall {wall:.2f} s, CPU {cpu:.2f} s; {len(log)} statements, "
                  f"{sum(s for s, _, _ in log):.2f} s\n\n| seconds | statements | line of bidui |\n|---|---|---|")
            for where, (n, seconds) in sorted(by_line.items(), key=lambda kv: -kv[1][1])[:args.top]:
                print(f"| {seconds:.2f} | {int(n)} | {where} |")
            for seconds, where, sql in sorted(log, key=lambda t: -t[0])[:args.statements]:
                print(f"\n{seconds:.2f} s, {where}: {sql[:300]}")


if __name__ == "__main__":
    main()
