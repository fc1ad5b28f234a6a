"""The synthetic prefecture the linkage and rules benches share: generated once per size, seed and
number of nights into bench/out/<size>-s<seed>-n<nights>/ (reused when present), and each bench's
own warehouse, into which the nights are ingested and linked in order.

Every step that touches the warehouse runs in a child process of its own (`python bench/x.py
--step …`), so that each one's peak RSS is its own: ingest's worker pool is not counted against
linking, nor one night against the next.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

OUT = Path("bench/out")


def synth_version() -> str:
    """A digest of the generator's source: a prefecture made by another version is made again."""
    import bidui.synth

    digest = hashlib.sha256()
    for path in sorted(Path(bidui.synth.__file__).parent.rglob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def prefecture(size: str, seed: int, nights: int) -> Path:
    """The folder with inbox/<date>/ and truth/<date>/ (`bidui synth`, once per version of it)."""
    out = OUT / f"{size}-s{seed}-n{nights}"
    stamp, version = out / "synth-version", synth_version()
    if not stamp.exists() or stamp.read_text() != version or len(night_folders(out)) < nights:
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "bidui.cli", "synth", "--out", str(out), "--size", size, "--seed", str(seed),
                        "--nights", str(nights)], check=True, stdout=sys.stderr)  # the bench's output is its tables
        stamp.write_text(version)
    return out


def night_folders(out: Path) -> list[Path]:
    inbox = out / "inbox"
    return sorted(p for p in inbox.iterdir() if p.is_dir()) if inbox.exists() else []


def fresh_warehouse(out: Path, name: str) -> Path:
    """An empty home for one bench run: nights are ingested and linked in order, never twice
    (linking a night again after a later one would rewrite the name history)."""
    home = out / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home / "warehouse.duckdb"


def rss_mb() -> float:
    """Peak RSS of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User and system CPU time of this process (all its threads) so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def ingest(warehouse: Path, folder: Path) -> dict:
    """Ingest one night's folder (run in a child: ingest keeps a process pool)."""
    from bidui.connectors import warehouse as wh
    from bidui.connectors.ingest import ingest_night

    con = wh.connect(warehouse)
    start = time.perf_counter()
    outcomes = ingest_night(con, folder, date.fromisoformat(folder.name))
    seconds = time.perf_counter() - start
    con.close()
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    return {"seconds": seconds, "rows": sum(o.rows_loaded or 0 for o in outcomes), "statuses": statuses,
            "held": [o.file for o in outcomes if o.status == "held"]}


def run_step(script: str, *args: str) -> dict:
    """`python <script> --step <args…>` in a child; its last stdout line, as JSON."""
    res = subprocess.run([sys.executable, script, "--step", *args], capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"step {' '.join(args)} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(x: float) -> str:
    return f"{x:.4f}"


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table; numbers with thousands separators, floats as 0.0000."""
    def cell(v: object) -> str:
        if isinstance(v, bool) or v is None:
            return "" if v is None else str(v)
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            return fmt(v)
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def outcome_table(per_record: pl.DataFrame, by: str) -> list[list]:
    """Per group of `by`: records, linked right, linked wrong, not linked, precision, recall.
    Wrong: linked to another person (or linked where no link is right); not linked: a person
    was expected and none was given; right: the rest (the right person, or rightly no link)."""
    t = per_record.with_columns(
        pl.col("fp").alias("wrong"), (pl.col("fn") & ~pl.col("fp")).alias("missed")).group_by(by).agg(
        pl.len().alias("records"), (~pl.col("wrong") & ~pl.col("missed")).sum().alias("right"),
        pl.col("wrong").sum(), pl.col("missed").sum(), pl.col("tp").sum(), pl.col("fp").sum(), pl.col("fn").sum()
    ).sort(by)
    rows = []
    for g, n, right, wrong, missed, tp, fp, fn in t.iter_rows():
        rows.append([g, n, right, wrong, missed, tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0])
    return rows
