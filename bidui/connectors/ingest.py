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
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
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


PARALLEL_BYTES = 64 * 2**20  # nights smaller than this are read in-process


class _InProcess(Executor):
    """An executor that runs each job when its result is asked for (no workers)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        return _Lazy(lambda: fn(*args, **kwargs))


class _Lazy(Future):
    def __init__(self, job: Callable[[], Prepared]) -> None:
        super().__init__()
        self._job = job

    def result(self, timeout: float | None = None) -> Prepared:  # type: ignore[override]
        return self._job()


def _twice(path: Path, twice: dict[str, list[Path]]) -> bool:
    return any(path in paths for paths in twice.values())


def ingest_night(con: duckdb.DuckDBPyConnection, folder: Path, night: date, *, force: bool = False,
                 limits: Limits = Limits(), progress: Callable[[str], None] | None = None,
                 workers: int = min(2, os.cpu_count() or 1)) -> list[FileOutcome]:
    files = delivered_files(folder)
    outcomes: list[FileOutcome] = []
    # Two files for one dataset on one night: which is the snapshot? Refuse both.
    named: dict[str, list[Path]] = {}
    for path in files:
        with contextlib.suppress(DatasetNameError):
            named.setdefault(dataset_for_filename(path.name).code, []).append(path)
    twice = {code: paths for code, paths in named.items() if len(paths) > 1}
    # Large nights: files are read and normalised in worker processes (the work holds the GIL
    # too often for threads to overlap), biggest first; this process alone writes the warehouse.
    # Small nights stay in-process: spawning costs more than it saves.
    size = sum(p.stat().st_size for p in files)
    pool: Executor = (ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
                      if workers > 1 and size > PARALLEL_BYTES else _InProcess())
    order = sorted(files, key=lambda p: -p.stat().st_size)
    pending: dict[Future[Prepared], Path] = {pool.submit(prepare, p, night): p for p in order if not _twice(p, twice)}
    done: dict[Path, FileOutcome] = {}
    for code, paths in twice.items():
        for path in paths:
            others = ", ".join(p.name for p in paths if p != path)
            done[path] = FileOutcome(path.name, code, "refused", message=f"{path.name}: two files for {code} tonight "
                                     f"(also {others}); send one")
            _log(con, night, path, done[path])
    # Stored as the workers finish them, so this process writes while they work (in file order,
    # it waited for the last small file while the big ones' results piled up in memory).
    for future in as_completed(pending) if isinstance(pool, ProcessPoolExecutor) else pending:
        path = pending[future]
        if progress:
            progress(path.name)
        done[path] = store(con, future.result(), force=force, limits=limits)
    pool.shutdown()
    outcomes += [done[path] for path in files]
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


@dataclass
class Prepared:
    """A file read, mapped and normalised (or refused), ready to be decided on and stored."""

    path: Path
    night: date
    start: float
    dataset: object = None  # bidui.datasets.Dataset
    sha: str | None = None
    raw: object = None  # RawTable
    result: object = None  # Normalised
    refused: str | None = None
    seconds: float = 0.0  # spent preparing (in whichever process did it)


def prepare(path: Path, night: date) -> Prepared:
    """The part of ingest that needs no warehouse: safe to run in a worker process."""
    p = Prepared(path, night, time.perf_counter())
    try:
        return _prepare(p)
    finally:
        p.seconds = time.perf_counter() - p.start


def _prepare(p: Prepared) -> Prepared:
    path = p.path
    try:
        p.dataset = dataset_for_filename(path.name)
    except DatasetNameError as e:
        p.refused = str(e)
        return p
    p.sha = sha256_of(path)
    try:
        p.raw = read_table(path)
        mapping = map_headers(p.dataset, p.raw.header, path.name)
        p.result = normalise(p.dataset, mapping, p.raw)
        p.raw.data = p.raw.data.clear()  # the text columns are not needed any more (nor shipped back)
    except (ReadError, RefusedError) as e:
        p.refused = str(e)
    return p


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, night: date, *, force: bool = False,
                limits: Limits = Limits()) -> FileOutcome:
    return store(con, prepare(path, night), force=force, limits=limits)


def store(con: duckdb.DuckDBPyConnection, p: Prepared, *, force: bool = False, limits: Limits = Limits()) -> FileOutcome:
    """Decide accepted / held / refused / duplicate and write it, all or nothing."""
    path, night, name = p.path, p.night, p.path.name
    start = time.perf_counter() - p.seconds  # report preparing + storing, not time spent queued
    ds = p.dataset
    if ds is None:
        o = FileOutcome(name, None, "refused", message=p.refused or "")
        _log(con, night, path, o)
        return o
    seen = wh.current_with_hash(con, ds.code, p.sha, night)
    if seen:
        o = FileOutcome(name, ds.code, "duplicate", seconds=time.perf_counter() - start,
                        message=f"{name}: the same bytes as the {ds.code} snapshot in force ({seen[1]}, load {seen[0]}); "
                                "nothing to do")
        _log(con, night, path, o, sha256=p.sha)
        return o
    if p.refused:
        o = FileOutcome(name, ds.code, "refused", seconds=time.perf_counter() - start, message=p.refused)
        _log(con, night, path, o, sha256=p.sha)
        return o
    raw, result, sha = p.raw, p.result, p.sha
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

