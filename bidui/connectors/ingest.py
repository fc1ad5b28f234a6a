"""`bidui ingest`: load one night's folder into the warehouse, file by file, all or nothing.

Outcomes per file: accepted (applied), forced (held but applied with --force), held (readable,
but not whole or not plausible: cut mid-record, still being written, a checksum that does not
match, too many rejected rows, far fewer or more rows than the last snapshot, IDs collapsing,
duplicated rows — the previous snapshot stays in force), refused (cannot be read or mapped, or not
a regular file: nothing of it is stored), duplicate (the same bytes as an accepted snapshot: nothing
to do). A dataset with no file tonight keeps its last snapshot, and the log says so. The checks
and their settings are in `bidui.connectors.plausibility` and the README's ingest section.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from bidui.connectors import csv_lines, inbox
from bidui.connectors import warehouse as wh
from bidui.connectors.mapping import RefusedError, map_headers
from bidui.connectors.normalise import ValueLimits, normalise
from bidui.connectors.plausibility import (
    Limits,
    Profile,
    checks,
    first_reject,
    profile_rows,
    profile_snapshot,
    profile_tonight,
    remember_profile,
    tail_cut,
)
from bidui.connectors.readers import NO_FINAL_BREAK, ReadError, read_table
from bidui.connectors.stored import Known, KnownFile, run_rows
from bidui.datasets import BY_CODE, DATASETS, DatasetNameError, dataset_for_filename, dataset_named
from bidui.errors import EXIT_FILES, EXIT_OK, OK_FILE_STATUSES

__all__ = ["FileOutcome", "Limits", "exit_code", "ingest_file", "ingest_night", "night_of"]

OK_STATUSES = OK_FILE_STATUSES  # the one list: bidui.errors decides a night's exit code by it too
POLL_SECONDS = 0.5


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
    evidence: str = ""  # why the file was taken as whole: checksum file, night marker, settle time
    incomplete: bool = False  # held because it was still being written: a later run of the night takes it


def night_of(folder: Path) -> date:
    try:
        return date.fromisoformat(folder.name)
    except ValueError as e:
        raise ValueError(f"{folder}: the folder is not named by date (YYYY-MM-DD); pass --date") from e


def delivered_files(folder: Path) -> list[Path]:
    """The night's regular files to read (for tools and benches; ingest uses `inbox.entries`)."""
    return [e.path for e in inbox.entries(folder) if e.refused is None]


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


def _dataset_code(name: str) -> str | None:
    ds = dataset_named(name)
    return ds.code if ds is not None else None


def _pool(entries: list[inbox.Entry], workers: int) -> Executor:
    """Large nights: files are read and normalised in worker processes (the work holds the GIL too
    often for threads to overlap); this process alone writes the warehouse. Small nights stay
    in-process: spawning costs more than it saves."""
    size = sum(e.path.stat().st_size for e in entries)
    if workers > 1 and size > PARALLEL_BYTES:
        from bidui.workers import die_with_parent

        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=die_with_parent)
    return _InProcess()


def ingest_night(con: duckdb.DuckDBPyConnection, folder: Path, night: date, *, force: bool = False,
                 limits: Limits = Limits(), progress: Callable[[str], None] | None = None,
                 workers: int = min(2, os.cpu_count() or 1), clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, carry: bool = True) -> list[FileOutcome]:
    """Every delivery of the night folder, each all or nothing. Files not yet settled are read
    last, waiting for them up to `limits.max_wait_seconds`; one that changes while it is read is
    tried again within that time, then held as still being written. A row delivered exactly as in
    the snapshot in force is not normalised again (its values are that snapshot's), unless not
    `carry`."""
    found = inbox.entries(folder)
    marker = inbox.night_marker(folder)
    done: dict[str, FileOutcome] = {}
    for e in found:
        if e.refused:
            done[e.name] = FileOutcome(e.name, _dataset_code(e.name), "refused", message=e.refused)
        elif e.arriving:
            done[e.name] = FileOutcome(e.name, _dataset_code(e.name), "held", incomplete=True,
                                       message=f"{e.name}: a transfer's temporary file, still being written; a later "
                                               "run of this night takes the file once it has its own name")
        else:
            continue
        _log(con, night, e.name, done[e.name])
    files = [e for e in found if e.name not in done]
    # Two files for one dataset on one night: which is the snapshot? Refuse both.
    named: dict[str, list[inbox.Entry]] = {}
    for e in files:
        code = _dataset_code(e.name)
        if code:
            named.setdefault(code, []).append(e)
    for code, group in named.items():
        if len(group) < 2:
            continue
        for e in group:
            others = ", ".join(o.name for o in group if o is not e)
            done[e.name] = FileOutcome(e.name, code, "refused", message=f"{e.name}: two files for {code} tonight "
                                       f"(also {others}); send one")
            _log(con, night, e.name, done[e.name])
    todo = [e for e in files if e.name not in done]
    in_force = wh.in_force_hashes(con, night)
    sizes = wh.in_force_sizes(con, night)
    deadline = clock() + limits.max_wait_seconds
    pool = _pool(todo, workers)
    # Worker processes hand a file's normalised rows over as a Parquet file beside the warehouse
    # (removed once stored, and the folder at the end), not pickled through the pool: a result
    # arrives in this process as soon as its worker is done, and at the large size a second
    # file's rows (and their pickled bytes) arrived while the hukou file was being stored.
    handover = None
    try:
        if isinstance(pool, ProcessPoolExecutor):
            handover = tempfile.TemporaryDirectory(prefix=HANDOVER_PREFIX, dir=_handover_parent(con),
                                                   ignore_cleanup_errors=True)
        handed = None if handover is None else Path(handover.name)
        work = prepare if handed is None else functools.partial(prepare_handed, handed)
        while todo:
            ready = {e.name: ev for e in todo if (ev := _evidence(e, marker, limits, clock)) is not None}
            if not ready:
                if clock() >= deadline:
                    for e in todo:
                        done[e.name] = _still_writing(con, night, e, limits)
                    break
                sleep(POLL_SECONDS)
                continue
            batch = sorted((e for e in todo if e.name in ready), key=lambda e: -_reading_cost(e.path))
            todo = [e for e in todo if e.name not in ready]
            futures, same = {}, []
            for e in batch:  # (in this order: the costliest files reach the workers first)
                if (p := _as_in_force(e, night, in_force, sizes)) is not None:
                    same.append(p)
                    continue
                # (not the bytes in force: `_as_in_force` hashed it to tell)
                futures[pool.submit(work, e.path, night, e.name, limits.values, in_force,
                                    _known(con, e, night, handed) if carry else None)] = e
            for p in same:  # stored while the workers read the others
                if progress:
                    progress(p.name)
                p.evidence = ready[p.name]
                done[p.name] = store(con, p, force=force, limits=limits)
            # Stored as the workers finish them, so this process writes while they work. A file's
            # rows are let go once stored (its future is forgotten): a future keeps its result, and
            # the night's every file held at once made the writer's peak (6.1 GB at the large size).
            for future in as_completed(futures) if isinstance(pool, ProcessPoolExecutor) else list(futures):
                e = futures.pop(future)
                if progress:
                    progress(e.name)
                p = future.result()
                del future
                try:
                    p.evidence = ready[e.name]
                    if p.changed and clock() < deadline:
                        todo.append(e)  # it grew while being read: again once it has settled
                        continue
                    done[e.name] = store(con, p, force=force, limits=limits)
                finally:
                    let_go(p)
                del p
    finally:
        pool.shutdown(cancel_futures=True)
        if handover is not None:
            handover.cleanup()
    outcomes = [done[e.name] for e in found if e.name in done]
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


# What reading a byte of a file costs a worker, against a byte of CSV: a workbook is compressed, and
# calamine parses its whole sheet (large night 2, one worker each: the 31 MB vehicles workbook
# 5–8 s, the 355 MB hukou CSV 2.7–3.6 s).
READING_COST = {".xlsx": 20.0}


def _reading_cost(path: Path) -> float:
    """A file's reading cost, in CSV bytes: the costliest files go to the workers first, so that
    the last to finish is a short one (sorted by bytes, the vehicles workbook started after the
    medical claims and property files and alone kept the writer waiting for 3 s)."""
    return path.stat().st_size * READING_COST.get(path.suffix.lower(), 1.0)


HANDOVER_PREFIX = "bidui-handover-"


def _handover_parent(con: duckdb.DuckDBPyConnection) -> str | None:
    """Where the handover folder goes: the warehouse's folder (it holds the same data, so it lives
    where that does), cleared of handover folders a killed run left (only one process can write the
    warehouse: none is in use); the system's temporary folder for a warehouse in memory."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    if not rows or not rows[0][0]:
        return None
    folder = Path(rows[0][0]).parent
    for left in folder.glob(f"{HANDOVER_PREFIX}*"):
        shutil.rmtree(left, ignore_errors=True)
    return str(folder)


def prepare_handed(folder: Path, *args, **kwargs) -> Prepared:
    """`prepare` in a worker process, its normalised rows written to a Parquet file in `folder`,
    which the writer's DuckDB reads where it lies when it stores them (`store`). Not read back
    into the writer's memory: at the large size reading the hukou file's rows back, handing them
    to DuckDB and storing them cost the writer 6.8–8.5 s of its critical path (12–15 CPU
    seconds), DuckDB storing them from this file 3.6 s (6.8); a Parquet file costs the worker what
    an LZ4 Arrow file did (1.6–1.7 s). LZ4 inside: uncompressed, the kernel's copying of the pages
    cost more than LZ4 costs the worker."""
    p = prepare(*args, **kwargs)
    if p.result is not None and p.result.rows.height:
        path = folder / f"{uuid.uuid4().hex}.parquet"
        p.result.rows.write_parquet(path, compression="lz4", statistics=False)
        p.rows_count = p.result.rows.height
        p.result.rows, p.rows_file = p.result.rows.clear(), path
    return p


def let_go(p: Prepared) -> None:
    """The worker's handover file of a prepared file removed, once stored (or not to be)."""
    if p.rows_file is not None:
        p.rows_file.unlink(missing_ok=True)
        p.rows_file = None


@contextlib.contextmanager
def new_rows(con: duckdb.DuckDBPyConnection, p: Prepared) -> Iterator[None]:
    """Tonight's normalised rows of the file as the relation `wh.NEW_ROWS` while the block runs:
    a view over the worker's handover file, or the frame of a file prepared in this process."""
    if p.rows_file is None:
        with wh.registered(con, wh.NEW_ROWS, p.result.rows):
            yield
        return
    con.execute(f"CREATE OR REPLACE TEMP VIEW {wh.NEW_ROWS} AS SELECT * FROM read_parquet({wh.sql_text(str(p.rows_file))})")
    try:
        yield
    finally:
        con.execute(f"DROP VIEW IF EXISTS {wh.NEW_ROWS}")


def _known(con: duckdb.DuckDBPyConnection, e: inbox.Entry, night: date,
           handover: Path | None = None) -> Known | KnownFile | None:
    """The fingerprints of the snapshot in force of the file's dataset (None for a file named for
    none); for a worker process (`handover`: its folder), as a file there. Not asked for a file
    holding the bytes of that snapshot (`_as_in_force`): writing the fingerprints for such a file
    cost the writer 1-2 s of a large night's start."""
    code = _dataset_code(e.name)
    if code is None:
        return None
    if handover is not None:
        return wh.known_rows_file(con, BY_CODE[code], night, handover)
    return wh.known_rows(con, BY_CODE[code], night)


def _in_force_sha(path: Path, code: str, in_force: dict[str, str], sizes: dict[str, int]) -> str | None:
    """The file's SHA-256 when it holds the bytes of its dataset's snapshot in force (`in_force`: its
    SHA-256, `sizes`: its file's size), as far as this process can tell before a worker reads it: of
    another size, it does not; of the same size, by its hash. A file that changes between this hash
    and its worker's is read whole (no fingerprints: the same rows, all normalised), never taken for
    what it was."""
    try:
        if code not in sizes or path.stat().st_size != sizes[code]:
            return None
        sha = inbox.digests(path)[0]
    except OSError:
        return None  # (its worker says why it cannot be read)
    return sha if sha == in_force.get(code) else None


def _as_in_force(e: inbox.Entry, night: date, in_force: dict[str, str], sizes: dict[str, int]) -> Prepared | None:
    """A file holding the bytes of its dataset's snapshot in force (most of a later night's files),
    prepared here as its worker would prepare it: nothing to read, and `store` finds it a duplicate
    by its hash. A worker hashed it a second time (a night where nothing changed: the large
    prefecture's 736 MB, and the workers started for nothing). None for any other file, and for one
    that changed while it was hashed (its worker reads it)."""
    code = _dataset_code(e.name)
    if code is None:
        return None
    start = time.perf_counter()
    try:
        before = inbox.Seen.of(e.path)
        sha = _in_force_sha(e.path, code, in_force, sizes)
        if sha is None or inbox.Seen.of(e.path) != before:
            return None
    except OSError:
        return None
    p = Prepared(e.path, night, start, e.name, BY_CODE[code], sha=sha, size=sizes[code])
    p.checksum = inbox.checksum_file(e.path)
    p.seconds = time.perf_counter() - start  # (what a worker's preparing it took: its hashing)
    return p


def _evidence(e: inbox.Entry, marker: bool, limits: Limits, clock: Callable[[], float]) -> str | None:
    """Why the file may be read now, or None while it may still be being written."""
    side = inbox.checksum_file(e.path)
    if side:
        return f"checksum file {side[1].name}"
    # The night's marker vouches for the files written before it; one written since (a resend into a
    # night already run: its upload may still be going on) settles like any other.
    if marker and e.path.stat().st_mtime <= (e.path.parent / inbox.NIGHT_MARKER).stat().st_mtime:
        return f"night marker {inbox.NIGHT_MARKER}"
    age = clock() - e.path.stat().st_mtime
    if age >= limits.settle_seconds:
        return f"unchanged for {limits.settle_seconds:g} s (settle_seconds)"
    if age < -60:
        # Stamped ahead of this clock (a zip unpacked with another time zone's times): the age says
        # nothing; the file is read and taken if it does not change meanwhile.
        return "modification time in the future; unchanged while read"
    return None


def _still_writing(con: duckdb.DuckDBPyConnection, night: date, e: inbox.Entry, limits: Limits) -> FileOutcome:
    o = FileOutcome(e.name, _dataset_code(e.name), "held", incomplete=True,
                    message=f"{e.name}: still being written (it changed within the last {limits.settle_seconds:g} s, "
                            f"waited {limits.max_wait_seconds:g} s: max_wait_seconds); the snapshot in force stays; a "
                            "later run of this night takes it once it has stopped changing")
    _log(con, night, e.name, o)
    return o


def _log(con: duckdb.DuckDBPyConnection, night: date, name: str, o: FileOutcome, load_id: int | None = None,
         **extra: object) -> int:
    load_id = load_id or wh.new_load_id(con)
    wh.log(con, load_id, night, name, dataset=o.dataset, status=o.status, rows_read=o.rows_read,
           rows_loaded=o.rows_loaded, rows_rejected=o.rows_rejected, seconds=o.seconds, message=o.message,
           evidence=o.evidence or None, **extra)
    return load_id


@dataclass
class Prepared:
    """A file read, mapped and normalised (or refused), ready to be decided on and stored."""

    path: Path
    night: date
    start: float
    name: str = ""  # as shown (see inbox.shown_name)
    dataset: object = None  # bidui.datasets.Dataset
    sha: str | None = None
    md5: str | None = None
    size: int | None = None  # bytes, as the file was hashed
    raw: object = None  # RawTable
    result: object = None  # Normalised
    refused: str | None = None
    seconds: float = 0.0  # spent preparing (in whichever process did it)
    changed: bool = False  # size or modification time moved while it was read
    evidence: str = ""
    checksum: tuple[str, Path] | None = None  # the checksum file beside it: (algorithm, path)
    rows_file: Path | None = None  # the normalised rows, handed over by a worker (`prepare_handed`)
    # Worked out where the rows were normalised (a worker, when there are several), not by the
    # writer, whose storing of one file after another is the night's ingest's critical path:
    rows_count: int = 0  # how many rows were handed over (see `rows`)
    profile: Profile | None = None  # the plausibility profile of the rows, when none were carried
    names: dict[str, pl.Series] | None = None  # each person's name column's distinct names

    @property
    def rows(self) -> int:
        """How many normalised rows: the frame's, or the handover file's when it was handed over."""
        return self.rows_count if self.rows_file is not None else self.result.rows.height


def prepare(path: Path, night: date, name: str | None = None, values: ValueLimits = ValueLimits(),
            in_force: dict[str, str] | None = None, known: Known | KnownFile | None = None) -> Prepared:
    """The part of ingest that needs no warehouse: safe to run in a worker process. `in_force`:
    the SHA-256 of each dataset's snapshot in force; a file with exactly those bytes is not read
    (storing it is a duplicate, whatever it holds). `known`: the fingerprints of the rows of the
    dataset's snapshot in force (`warehouse.known_rows`; in a worker process `known_rows_file`, read
    only when the file is): those rows are not normalised again."""
    p = Prepared(path, night, time.perf_counter(), name or inbox.shown_name(path.name))
    before = inbox.Seen.of(path)
    try:
        return _summarise(_prepare(p, values, in_force or {}, known))
    finally:
        if isinstance(known, KnownFile):
            known.path.unlink(missing_ok=True)
        p.changed = inbox.Seen.of(path) != before
        p.seconds = time.perf_counter() - p.start


def _summarise(p: Prepared) -> Prepared:
    """What the writer needs of the normalised rows besides storing them (see Prepared)."""
    r = p.result
    if r is None or p.refused:
        return p
    if (r.carried is None or not r.carried.height) and r.in_place is None:  # with carried rows, DuckDB profiles them
        p.profile = profile_rows(p.dataset, r.rows)
    p.names = {ref.name_column: r.rows[ref.name_column].drop_nulls().unique() for ref in p.dataset.persons}
    return p


def _prepare(p: Prepared, values: ValueLimits, in_force: dict[str, str],
             known: Known | KnownFile | None = None) -> Prepared:
    path = p.path
    try:
        p.dataset = dataset_for_filename(p.name)
    except DatasetNameError as e:
        p.refused = str(e)
        return p
    p.checksum = inbox.checksum_file(path)
    p.size = path.stat().st_size  # (a file that changes while it is hashed is read again: `changed`)
    md5 = bool(p.checksum and p.checksum[0] == "md5")
    text = path.suffix.lower() in (".csv", ".tsv", ".txt")
    # A text file is read whole anyway: its digests are of the very bytes read, not of a second
    # reading (the large hukou file: 355 MB read once, not twice).
    data = None
    if text:
        with contextlib.suppress(MemoryError):  # (then hashed as it streams; reading it below says why not)
            data = path.read_bytes()
    p.sha, p.md5 = inbox.digests(path, md5=md5) if data is None else inbox.digests_of(data, md5=md5)
    if in_force.get(p.dataset.code) == p.sha:
        # The same bytes as the snapshot in force (most departments resend an unchanged extract):
        # `store` finds it a duplicate by the hash alone; reading and normalising it was most of
        # the cost of a later night.
        return p
    if isinstance(known, KnownFile):
        known = known.read()
    try:
        lines = None
        if text:
            if data is None:
                data = path.read_bytes()
            if known is not None:
                # Delivered again in the same form: only the lines not seen before are read.
                found = csv_lines.read_changed(data, path.name, p.dataset, known, values, p.night)
                if found is not None:
                    p.raw, p.result = found
                    p.raw.data = p.raw.data.clear()
                    return p
            p.raw = read_table(path, p.dataset, data)
            lines = csv_lines.line_frame(data, p.raw)
            del data  # (a file of hundreds of MB, not held while it is normalised)
        else:
            p.raw = read_table(path, p.dataset)
        mapping = map_headers(p.dataset, p.raw.header, p.name, p.raw.first_data_row - 1)
        _refuse_numeric_ids(p, mapping)
        p.result = normalise(p.dataset, mapping, p.raw, p.night, values, known)
        if lines is not None:  # each row keeps its line's fingerprint, for the next night
            csv_lines.attach(p.result, lines, csv_lines.form(p.dataset, p.raw, mapping, values))
        p.raw.data = p.raw.data.clear()  # the text columns are not needed any more (nor shipped back)
    except (ReadError, RefusedError) as e:
        # Readers name the file as on disk; an undecodable name must not travel on in messages.
        p.refused = str(e).replace(path.name, p.name) if path.name != p.name else str(e)
    except Exception as e:  # a hostile file must cost its dataset a night, never the whole run
        # (the error's own text may quote the file's content: only its kind is said)
        p.refused = f"{p.name}: could not be read ({type(e).__name__}); check the file and send it again"
    return p


def _refuse_numeric_ids(p: Prepared, mapping) -> None:
    """A Parquet ID column typed as a number has lost every check character X (and leading zeros):
    no row of it can be trusted, whatever the values look like as text."""
    for c in p.dataset.columns:
        pos = mapping.positions.get(c.name)
        if c.kind == "id" and pos is not None and pos < len(p.raw.column_types):
            t = p.raw.column_types[pos]
            if t.startswith(("int", "uint", "float", "decimal")):
                raise RefusedError(f"{p.name}: the ID column {p.raw.header[pos]!r} is stored as numbers ({t}): IDs "
                                   "ending in X are lost; deliver ID numbers as text (string)")


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, night: date, *, force: bool = False,
                limits: Limits = Limits()) -> FileOutcome:
    return store(con, prepare(path, night, values=limits.values, in_force=wh.in_force_hashes(con, night)), force=force,
                 limits=limits)


def store(con: duckdb.DuckDBPyConnection, p: Prepared, *, force: bool = False, limits: Limits = Limits()) -> FileOutcome:
    """Decide accepted / held / refused / duplicate and write it, all or nothing."""
    night, name = p.night, p.name
    start = time.perf_counter() - p.seconds  # report preparing + storing, not time spent queued
    ds = p.dataset
    if ds is None:
        o = FileOutcome(name, None, "refused", message=p.refused or "")
        _log(con, night, name, o)
        return o
    lim = limits.for_dataset(ds.code)
    seen = wh.current_with_hash(con, ds.code, p.sha, night)
    if seen and seen[1] == night:
        return _stored_earlier(con, p, seen[0])
    if seen:
        o = FileOutcome(name, ds.code, "duplicate", seconds=time.perf_counter() - start, evidence=p.evidence,
                        message=f"{name}: the same bytes as the {ds.code} snapshot in force ({seen[1]}, load {seen[0]}); "
                                "nothing to do")
        _log(con, night, name, o, sha256=p.sha)
        return o
    if p.refused:
        o = FileOutcome(name, ds.code, "refused", seconds=time.perf_counter() - start, message=p.refused)
        _log(con, night, name, o, sha256=p.sha)
        return o
    try:
        return _store_read(con, p, start, lim, force)
    finally:
        wh.drop_carried_rows(con)


def _store_read(con: duckdb.DuckDBPyConnection, p: Prepared, start: float, lim: Limits, force: bool) -> FileOutcome:
    """`store` of a file that was read and normalised."""
    night, name, ds, result, sha = p.night, p.name, p.dataset, p.result, p.sha
    carried = 0
    if result.carried is not None and result.carried_from is not None:
        # The rows delivered as before take the values they were given then (see normalise.Known),
        # copied inside DuckDB: they are counted and stored without coming back to Python.
        carried = wh.stage_carried_rows(con, ds, result.carried_from, result.carried, night, result.in_place,
                                        result.carried_load)
        if carried != result.carried.height + run_rows(result.in_place):  # the snapshot in force changed under the run
            o = FileOutcome(name, ds.code, "refused", result.rows_read, 0, 0, time.perf_counter() - start,
                            f"{name}: could not be stored (the {ds.code} snapshot in force changed while it was read); "
                            "nothing of it was kept; run the night again")
            _log(con, night, name, o, sha256=sha)
            return o
    with new_rows(con, p):
        return _store_rows(con, p, start, lim, force, carried)


def _store_rows(con: duckdb.DuckDBPyConnection, p: Prepared, start: float, lim: Limits, force: bool,
                carried: int) -> FileOutcome:
    """`store` of a file read and normalised, its rows being `wh.NEW_ROWS` and CARRIED_ROWS."""
    night, name, ds, raw, result, sha = p.night, p.name, p.dataset, p.raw, p.result, p.sha
    rejected = result.rejects["source_row"].n_unique() if result.rejects.height else 0
    o = FileOutcome(name, ds.code, "accepted", result.rows_read, p.rows + carried, rejected,
                    evidence=p.evidence)
    whole = _whole(p)
    last = wh.last_snapshot(con, ds.code, night)
    now = profile_tonight(con, ds, result.carried_from) if carried or p.profile is None else p.profile
    before = profile_snapshot(con, ds, last[0]) if last else None
    held = whole + checks(ds, result, lim, (last[0], before) if last else None, name, now)
    # An extract cut at a line break reads as whole; its lost rows would read as removed (a pupil
    # missing from the students file is a dropout clue), unless the snapshot before shows them gone
    # from its end.
    gone = wh.tail_gone(con, ds, last[0], int(lim.tail_cut_rows), before.rows) if last and result.rows_read else 0
    if gone:
        held.append(tail_cut(name, gone, last[0], lim))
    if p.changed:
        o.incomplete = True
    if held and not force:
        o.status = "held"
        o.rows_loaded = 0
        o.message = "; ".join(held) + (f"; the snapshot of {last[0]} stays in force" if last else "") + (
            "; to apply it anyway: bidui run --force (the night is run again)")
    elif held:
        o.status = "forced"
        o.message = "applied with --force: " + "; ".join(held)
    else:
        o.message = _notes(ds, result)
    o.seconds = time.perf_counter() - start
    load_id = wh.new_load_id(con)
    con.execute("BEGIN TRANSACTION")
    try:
        if o.status in ("accepted", "forced"):
            wh.apply_snapshot(con, ds, night, load_id, name, sha, wh.NEW_ROWS, p.rows, carried, result.line_form,
                              result.carried_from)
            remember_profile(con, ds, load_id, now)  # tomorrow's checks compare with it
            if p.size is not None:  # tomorrow's ingest tells the same bytes by it (`_known`)
                con.execute("INSERT OR REPLACE INTO load_bytes VALUES (?, ?)", [load_id, p.size])
            # (a carried row's name has its keys since its snapshot was stored)
            names = p.names if p.names is not None else {r.name_column: result.rows[r.name_column] for r in ds.persons}
            for distinct in names.values():
                wh.add_name_keys(con, distinct)
        wh.add_rejects(con, load_id, name, result.rejects)
        o.seconds = time.perf_counter() - start
        _log(con, night, name, o, load_id, sha256=sha, fmt=raw.fmt, encoding=raw.encoding,
             delimiter={",": "comma", "\t": "tab"}.get(raw.delimiter or ""))
        con.execute("COMMIT")
    except Exception as e:
        wh.rollback(con)
        from bidui.errors import is_operational

        if is_operational(e) or isinstance(e, duckdb.FatalException):
            raise  # disk full, read-only, locked: the run stops here and the CLI says why in one line
        o = FileOutcome(name, ds.code, "refused", result.rows_read, 0, 0, time.perf_counter() - start,
                        f"{name}: could not be stored ({type(e).__name__}: {e}); nothing of it was kept")
        _log(con, night, name, o, sha256=sha)
    return o


def _whole(p: Prepared) -> list[str]:
    """Why the file is not whole: its structure says it was cut, it changed while it was read, or
    its checksum file disagrees."""
    out = []
    vouched = False
    if p.checksum:
        algo, path = p.checksum
        want, got = inbox.expected_digest(path), (p.md5 if algo == "md5" else p.sha)
        vouched = want == got
        if not vouched:
            out.append(f"{p.name}: the checksum in {path.name} does not match the file ({algo}); still arriving or "
                       "damaged in transfer")
    cut = p.raw.cut
    # Without a final line break the last value may have been cut anywhere; only the department's
    # checksum of exactly these bytes says the file ends where it was meant to.
    if cut and not (vouched and cut == NO_FINAL_BREAK):
        out.append(f"{p.name}: the last record is cut ({cut}); a transfer that stopped? Resend it, ending with a line "
                   f"break, or with {p.name}.sha256 beside it")
    if p.changed:
        out.append(f"{p.name}: still being written (it changed while it was read); a later run of this night takes it")
    return out


def _notes(ds, result) -> str:
    """What an accepted file's loading did besides storing it (said in the load log)."""
    notes = []
    if result.duplicates:
        notes.append(f"{result.duplicates:,} exact duplicate row(s) collapsed")
    if result.rejects.height:
        where, reason = first_reject(ds, result.rejects)
        rejected = result.rejects["source_row"].n_unique()
        notes.append(f"{rejected:,} row(s) with a rejected value, kept with that value empty; first: {where}: {reason}")
    if result.dropped:
        notes.append(f"{result.dropped:,} row(s) without a usable ID number or name dropped")
    return "; ".join(notes)


def _stored_earlier(con: duckdb.DuckDBPyConnection, p: Prepared, load_id: int) -> FileOutcome:
    """A file this night's earlier (interrupted) run already stored: say what was stored then."""
    row = con.execute("SELECT status, rows_read, rows_loaded, rows_rejected, evidence FROM load_log WHERE load_id = ?",
                      [load_id]).fetchone()
    status, read, loaded, rejected, evidence = row if row else ("accepted", 0, 0, 0, "")
    return FileOutcome(p.name, p.dataset.code, status, read or 0, loaded or 0, rejected or 0,
                       message=f"{p.name}: stored by an earlier run of this night (load {load_id})",
                       evidence=evidence or p.evidence)


def exit_code(outcomes: list[FileOutcome]) -> int:
    return EXIT_OK if all(o.status in OK_STATUSES for o in outcomes) else EXIT_FILES
