"""`bidui ingest`: load one night's folder into the warehouse, file by file, all or nothing.

Outcomes per file: accepted (applied), forced (held but applied with --force), held (readable,
but suspicious: too many rejected rows, far fewer rows than the last snapshot, or no rows — the
previous snapshot stays in force), refused (cannot be read or mapped: nothing of it is stored),
duplicate (the same bytes as an accepted snapshot: nothing to do). A dataset with no file tonight
keeps its last snapshot, and the log says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from bidui.connectors import warehouse as wh
from bidui.connectors.mapping import RefusedError, map_headers
from bidui.connectors.normalise import normalise
from bidui.connectors.readers import ReadError, read_table
from bidui.datasets import DATASETS, DatasetNameError, dataset_for_filename

OK_STATUSES = ("accepted", "forced", "duplicate", "missing")


@dataclass
class FileOutcome:
    file: str
    dataset: str | None
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class Limits:
    max_reject_share: float = 0.05
    min_row_ratio: float = 0.70

    @classmethod
    def from_config(cls, cfg: dict) -> Limits:
        ing = cfg.get("ingest", {})
        return cls(float(ing.get("max_reject_share", 0.05)), float(ing.get("min_row_ratio", 0.70)))


def night_of(folder: Path) -> date:
    try:
        return date.fromisoformat(folder.name)
    except ValueError as e:
        raise ValueError(f"{folder}: the folder is not named by date (YYYY-MM-DD); pass --date") from e


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def delivered_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "~$")))


def ingest_night(con: duckdb.DuckDBPyConnection, folder: Path, night: date, *, force: bool = False,
                 limits: Limits = Limits(), progress: Callable[[str], None] | None = None) -> list[FileOutcome]:
    files = delivered_files(folder)
    outcomes: list[FileOutcome] = []
    # Two files for one dataset on one night: which is the snapshot? Refuse both.
    named: dict[str, list[Path]] = {}
    for path in files:
        with contextlib.suppress(DatasetNameError):
            named.setdefault(dataset_for_filename(path.name).code, []).append(path)
    twice = {code: paths for code, paths in named.items() if len(paths) > 1}
    for path in files:
        if progress:
            progress(path.name)
        code = next((c for c, ps in twice.items() if path in ps), None)
        if code:
            others = ", ".join(p.name for p in twice[code] if p != path)
            outcome = FileOutcome(path.name, code, "refused", message=f"{path.name}: two files for {code} tonight "
                                  f"(also {others}); send one")
            _log(con, night, path, outcome)
        else:
            outcome = ingest_file(con, path, night, force=force, limits=limits)
        outcomes.append(outcome)
    delivered = {o.dataset for o in outcomes if o.dataset}
    for ds in DATASETS:
        if ds.code in delivered:
            continue
        last = wh.last_snapshot(con, ds.code, night)
        on_night = con.execute("SELECT 1 FROM snapshots WHERE dataset = ? AND snapshot_date = ?", [ds.code, night]).fetchone()
        if on_night:
            continue  # loaded earlier for this night; nothing missing
        msg = (f"no {ds.code} file tonight; the snapshot of {last[0]} stays in force" if last
               else f"no {ds.code} file tonight and none ever accepted" + (" (optional dataset)" if ds.optional else ""))
        outcome = FileOutcome("", ds.code, "missing", message=msg)
        wh.log(con, wh.new_load_id(con), night, "", dataset=ds.code, status="missing", message=msg)
        outcomes.append(outcome)
    return outcomes


def _log(con: duckdb.DuckDBPyConnection, night: date, path: Path, o: FileOutcome, load_id: int | None = None,
         **extra: object) -> int:
    load_id = load_id or wh.new_load_id(con)
    wh.log(con, load_id, night, path.name, dataset=o.dataset, status=o.status, rows_read=o.rows_read,
           rows_loaded=o.rows_loaded, rows_rejected=o.rows_rejected, seconds=o.seconds, message=o.message, **extra)
    return load_id


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, night: date, *, force: bool = False,
                limits: Limits = Limits()) -> FileOutcome:
    start = time.perf_counter()
    name = path.name
    try:
        ds = dataset_for_filename(name)
    except DatasetNameError as e:
        o = FileOutcome(name, None, "refused", message=str(e))
        _log(con, night, path, o)
        return o
    sha = sha256_of(path)
    seen = wh.current_with_hash(con, ds.code, sha, night)
    if seen:
        o = FileOutcome(name, ds.code, "duplicate", seconds=time.perf_counter() - start,
                        message=f"{name}: the same bytes as the {ds.code} snapshot in force ({seen[1]}, load {seen[0]}); "
                                "nothing to do")
        _log(con, night, path, o, sha256=sha)
        return o
    try:
        raw = read_table(path)
        mapping = map_headers(ds, raw.header, name)
        result = normalise(ds, mapping, raw)
    except (ReadError, RefusedError) as e:
        o = FileOutcome(name, ds.code, "refused", seconds=time.perf_counter() - start, message=str(e))
        _log(con, night, path, o, sha256=sha)
        return o
    read, rejected = result.rows_read, result.rejects["source_row"].n_unique() if result.rejects.height else 0
    o = FileOutcome(name, ds.code, "accepted", read, result.rows.height, rejected)
    held = []
    if read == 0:
        held.append(f"{name}: a header but no data rows")
    elif rejected / read > limits.max_reject_share:
        first = result.rejects.row(0, named=True)
        held.append(f"{name}: {rejected} of {read} rows rejected ({rejected / read:.1%}, limit {limits.max_reject_share:.0%}); "
                    f"first: row {first['source_row']}, column {first['column_name']}, {first['reason']}")
    last = wh.last_snapshot(con, ds.code, night)
    if last and read and result.rows.height < limits.min_row_ratio * last[1]:
        held.append(f"{name}: {result.rows.height} rows, fewer than {limits.min_row_ratio:.0%} of the {last[1]} rows of "
                    f"the snapshot of {last[0]} (truncated?)")
    if held and not force:
        o.status = "held"
        o.rows_loaded = 0
        o.message = "; ".join(held) + (f"; the snapshot of {last[0]} stays in force" if last else "") + "; --force to apply"
    elif held:
        o.status = "forced"
        o.message = "applied with --force: " + "; ".join(held)
    elif rejected:
        first = result.rejects.row(0, named=True)
        o.message = (f"{rejected} row(s) rejected, first: row {first['source_row']}, column {first['column_name']} "
                     f"({first['value']!r}): {first['reason']}")
    o.seconds = time.perf_counter() - start
    load_id = wh.new_load_id(con)
    con.execute("BEGIN TRANSACTION")
    try:
        if o.status in ("accepted", "forced"):
            wh.apply_snapshot(con, ds, night, load_id, name, sha, result.rows)
            for ref in ds.persons:
                wh.add_name_keys(con, result.rows[ref.name_column])
        wh.add_rejects(con, load_id, name, result.rejects)
        o.seconds = time.perf_counter() - start
        _log(con, night, path, o, load_id, sha256=sha, fmt=raw.fmt, encoding=raw.encoding,
             delimiter={",": "comma", "\t": "tab"}.get(raw.delimiter or ""))
        con.execute("COMMIT")
    except Exception as e:
        con.execute("ROLLBACK")
        o = FileOutcome(name, ds.code, "refused", read, 0, 0, time.perf_counter() - start,
                        f"{name}: could not be stored ({type(e).__name__}: {e}); nothing of it was kept")
        _log(con, night, path, o, sha256=sha)
    return o


def exit_code(outcomes: list[FileOutcome]) -> int:
    return 0 if all(o.status in OK_STATUSES for o in outcomes) else 2


def summary(outcomes: list[FileOutcome]) -> Counter:
    return Counter(o.status for o in outcomes)
