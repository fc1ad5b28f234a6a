"""The Parquet handover: worker processes write a file's normalised rows to a Parquet file beside
the warehouse, which DuckDB stores from where it lies. What is stored
must be what a single process stores, every file all or nothing, and no handover file left behind."""

from __future__ import annotations

import errno
import json
import re
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from bidui.connectors import inbox, ingest
from bidui.connectors import warehouse as wh
from bidui.connectors.plausibility import Limits
from bidui.connectors.stored import KnownFile
from bidui.datasets import DATASETS

NIGHT = date(2026, 11, 20)


class _HandingPool(ProcessPoolExecutor):
    """A pool that ingest takes for worker processes (so rows are handed over as files) but runs
    each task at once in this process, where a test's monkeypatches hold."""

    def __init__(self) -> None:  # no processes
        pass

    def submit(self, fn, /, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:
            f.set_exception(e)
        return f

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def _handovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(ingest.HANDOVER_PREFIX)]


def _masked(text: str | None) -> str:
    return re.sub(r"load \d+", "load N", text or "")


def _state(con) -> dict[str, list]:
    """Everything ingest stores, but load numbers and the record ids made of them (files are stored in another
    order by workers)."""
    out: dict[str, list] = {}
    for ds in DATASETS:
        table = wh.table_name(ds)
        cols = [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                          "AND column_name NOT IN ('load_id', 'row_id') ORDER BY ordinal_position", [table]).fetchall()]
        quoted = ", ".join(f'"{c}"' for c in cols)
        # in the order stored: a reader without ORDER BY sees that order
        out[ds.code] = con.execute(f"SELECT {quoted} FROM {table} ORDER BY snapshot_date, rowid").fetchall()
    out["snapshots"] = con.execute("SELECT dataset, snapshot_date, file, sha256, rows FROM snapshots "
                                   "ORDER BY ALL").fetchall()
    out["profiles"] = sorted((s, d, json.dumps(json.loads(c), sort_keys=True)) for s, d, c in con.execute(
        "SELECT s.dataset || s.snapshot_date, q.digest, q.counts FROM quality_counts q JOIN snapshots s USING (load_id)"
    ).fetchall())
    out["name_keys"] = con.execute("SELECT * FROM name_keys ORDER BY ALL").fetchall()
    out["rejects"] = con.execute("SELECT * EXCLUDE (load_id) FROM rejects ORDER BY ALL").fetchall()
    out["log"] = sorted((n, f, s, r, ld, rj, _masked(m)) for n, f, s, r, ld, rj, m in con.execute(
        "SELECT night, file, status, rows_read, rows_loaded, rows_rejected, message FROM load_log").fetchall())
    return out


def test_nights_with_carried_and_held_files_store_the_same_with_worker_processes(tiny: Path, tmp_path: Path,
                                                                                monkeypatch) -> None:
    """The existing handover test covers one first night. Later nights hand over files whose rows
    are mostly carried from the snapshot in force (stored as the handover view UNION the carried
    rows, profiled by DuckDB over both) and a held, cut file. Stored rows (in their stored order),
    profiles, name keys, rejects and the load log must be those of a single process; each handover
    file must be gone once its file is stored (or held), and the folder at the end. The warehouse
    lies in a folder whose name has a single quote and spaces (the view's SQL quotes the path)."""
    monkeypatch.setattr(ingest, "PARALLEL_BYTES", 0)
    # The snapshot's fingerprints go to a worker as a file too (KnownFile), which the worker removes
    # once it has read it, or found the file the same bytes as the snapshot in force. None is made
    # for a file that holds those bytes.
    made: dict[str, Path] = {}
    real_known = ingest._known

    def known(con, e, night, handover=None, *args):
        k = real_known(con, e, night, handover, *args)
        if isinstance(k, KnownFile):
            made[e.name] = k.path
        return k

    monkeypatch.setattr(ingest, "_known", known)
    real_store = ingest.store
    seen: list[tuple[Path, bool, str]] = []

    def store(con, p, **kwargs):
        assert not [f for f, _, _ in seen if f.exists()], "a handover file outlived its file's storing"
        assert p.name not in made or not made[p.name].exists(), "a worker left the snapshot's fingerprints behind"
        o = real_store(con, p, **kwargs)
        if p.rows_file is not None:
            seen.append((p.rows_file, p.result.carried is not None and p.result.carried.height > 0, o.status))
        return o

    monkeypatch.setattr(ingest, "store", store)
    one_dir, two_dir = tmp_path / "one", tmp_path / "it's night two"
    one_dir.mkdir()
    two_dir.mkdir()
    one, two = wh.connect(one_dir / "w.duckdb"), wh.connect(two_dir / "w.duckdb")
    for folder in sorted((tiny / "inbox").iterdir()):
        night = date.fromisoformat(folder.name)
        assert not seen
        in_force = wh.in_force_hashes(two, night)
        changed = {f.name for f in folder.iterdir() if (code := ingest._dataset_code(f.name)) in in_force
                   and inbox.digests(f)[0] != in_force[code]}
        a = ingest.ingest_night(one, folder, night, workers=1)
        b = ingest.ingest_night(two, folder, night, workers=2)
        assert sorted((o.file, o.status, o.rows_loaded, _masked(o.message)) for o in b) == \
            sorted((o.file, o.status, o.rows_loaded, _masked(o.message)) for o in a)
        assert not _handovers(two_dir)
        assert not [f for f, _, _ in seen if f.exists()]
        if night > NIGHT:
            assert any(carried for _, carried, _ in seen), "no handed-over file had carried rows"
        if night == date(2026, 11, 22):
            assert any(carried and status == "held" for _, carried, status in seen), seen
        # (none on the first night: no snapshot yet)
        assert set(made) == changed and (len(made) > 3) == (night > NIGHT), (made, changed)
        made.clear()
        seen.clear()
    assert _state(two) == _state(one)


def test_odd_values_come_back_from_the_handover_file_as_they_went_in(tiny: Path, tmp_path: Path) -> None:
    """A file stored from a worker's Parquet file is stored as the frame itself is: negative zero,
    subnormal and huge numbers, NUL and other control characters, 100,000-character text, the
    oldest date accepted, and the unsigned 64-bit fingerprint halves (half of them above 2^63).
    (NaN, infinities and dates before 1900 are rejected before they reach either path.)"""
    src = (tiny / "inbox" / NIGHT.isoformat() / "医疗费用结算明细_20261120.csv").read_text(encoding="utf-8")
    head, *rows = src.splitlines()
    numbers = ["-0", "-0.0", "NaN", "inf", "1e-320", "1.7976931348623157e308", "9999999999", "0.1", "１２３"]
    dates = ["1900-01-01", "0001-01-01", "9999-12-31", "1970-01-01", "2026/11/27", "1582-10-10", "19000101"]
    texts = ["a\x00b", "x" * 100_000, "\U0001f600\u200b\ufeff", "'; DROP TABLE x; --", "\\N", "", "\x7f\x85"]
    out = [head + ",备注"]
    for i, line in enumerate(rows):
        f = line.split(",")
        if i < 60:
            f[2], f[3], f[4] = dates[i % len(dates)], numbers[i % len(numbers)], numbers[(i + 3) % len(numbers)]
            f[5] = texts[i % len(texts)]
        extra = texts[(i + 1) % len(texts)] if i < 60 else "z"
        out.append(",".join([*f, '"' + extra.replace('"', '""') + '"']))
    path = tmp_path / "医疗费用结算明细_20261120.csv"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    one, two = wh.connect(tmp_path / "one" / "w.duckdb"), wh.connect(tmp_path / "two" / "w.duckdb")
    a = ingest.store(one, ingest.prepare(path, NIGHT))
    hand = tmp_path / "two" / f"{ingest.HANDOVER_PREFIX}x"
    hand.mkdir()
    p = ingest.prepare_handed(hand, path, NIGHT)
    assert p.rows_file is not None and p.result.rows.height == 0
    try:
        b = ingest.store(two, p)
    finally:
        ingest.let_go(p)
    assert a.status == b.status == "accepted" and a.rows_loaded == b.rows_loaded > 900, (a.message, b.message)
    assert not list(hand.iterdir())
    stored = two.execute("SELECT count(*) FILTER (WHERE total_cost = 0 AND sign(1 / total_cost) < 0), "
                         "count(*) FILTER (WHERE contains(hospital, chr(0))), "
                         "count(*) FILTER (WHERE raw_hash >= (1::UHUGEINT << 127)) FROM ds_medical_claims").fetchone()
    assert all(stored), stored  # the odd values did reach the store (else this test checks nothing)
    assert _state(two) == _state(one)


def test_a_file_that_changed_while_read_is_handed_over_afresh_and_its_first_file_removed(
        tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """A file that changed while a worker read it is read again once settled: the first handover
    file is removed at once (not at the end of the ingest), the second is a new file, and what is
    stored is the second reading, whole."""
    monkeypatch.setattr(ingest, "_pool", lambda entries, workers: _HandingPool())
    target = "hukou_20261120.csv"
    real_prepare, real_handed, real_store = ingest.prepare, ingest.prepare_handed, ingest.store
    files: list[Path] = []
    stored: list[tuple[bool, bool, int]] = []

    def prepare(path, *args, **kwargs):
        p = real_prepare(path, *args, **kwargs)
        if path.name == target and not files:
            p.changed = True  # it grew while read, the first time
        return p

    def prepare_handed(folder, path, *args, **kwargs):
        p = real_handed(folder, path, *args, **kwargs)
        if path.name == target:
            files.append(p.rows_file)
        return p

    def store(con, p, **kwargs):
        if p.name == target:
            stored.append((files[0].exists(), p.rows_file == files[-1], p.rows_count))
        return real_store(con, p, **kwargs)

    monkeypatch.setattr(ingest, "prepare", prepare)
    monkeypatch.setattr(ingest, "prepare_handed", prepare_handed)
    monkeypatch.setattr(ingest, "store", store)
    con = wh.connect(tmp_path / "w.duckdb")
    outcomes = ingest.ingest_night(con, tiny / "inbox" / NIGHT.isoformat(), NIGHT,
                                   limits=Limits(max_wait_seconds=600), workers=2)
    assert len(files) == 2 and files[0] != files[1] and None not in files
    assert stored == [(False, True, stored[0][2])] and stored[0][2] > 1000, stored
    o = next(o for o in outcomes if o.file == target)
    assert o.status == "accepted" and not o.incomplete and o.rows_loaded == stored[0][2], o
    assert con.execute("SELECT count(*) FROM ds_hukou").fetchone()[0] == o.rows_loaded
    assert not _handovers(tmp_path) and not any(f.exists() for f in files)


def test_a_file_whose_storing_fails_keeps_nothing_and_its_handover_file_goes(tiny: Path, tmp_path: Path,
                                                                             monkeypatch) -> None:
    """An error inside the storing transaction (after DuckDB inserted from the handover view)
    refuses that file alone: nothing of it is kept, the other files are stored, its handover
    file is removed at once, and the message quotes no name."""
    monkeypatch.setattr(ingest, "_pool", lambda entries, workers: _HandingPool())
    real_keys, real_store = wh.add_name_keys, ingest.store
    files: list[Path] = []

    def add_name_keys(con, names):
        if con.execute("SELECT count(*) FROM ds_hukou").fetchone()[0]:  # inside hukou's transaction
            raise ValueError(f"cannot key {names[0]}")
        return real_keys(con, names)

    def store(con, p, **kwargs):
        assert not [f for f in files if f.exists()]
        if p.rows_file is not None:
            files.append(p.rows_file)
        return real_store(con, p, **kwargs)

    monkeypatch.setattr(wh, "add_name_keys", add_name_keys)
    monkeypatch.setattr(ingest, "store", store)
    con = wh.connect(tmp_path / "w.duckdb")
    outcomes = {o.file: o for o in ingest.ingest_night(con, tiny / "inbox" / NIGHT.isoformat(), NIGHT, workers=2)}
    o = outcomes["hukou_20261120.csv"]
    assert o.status == "refused" and o.rows_loaded == 0 and "nothing of it was kept" in o.message
    assert con.execute("SELECT count(*) FROM ds_hukou").fetchone()[0] == 0
    assert not con.execute("SELECT * FROM snapshots WHERE dataset = 'hukou'").fetchall()
    assert sum(x.status == "accepted" for x in outcomes.values()) > 10
    assert len(files) > 10 and not any(f.exists() for f in files) and not _handovers(tmp_path)


def _polars_io_error(text: str) -> Exception:
    """polars' Parquet writer's error on a failed write, as it words it (see test_disk_full)."""
    from polars.exceptions import ComputeError

    return ComputeError(f"parquet: File out of specification: underlying IO error: {text}")


def test_a_polars_error_quoting_a_delivered_value_is_not_read_as_a_full_disk(tmp_path: Path) -> None:
    """Only a polars error that ends in the system's "(os error N)" is an I/O error: one about a
    file's content quotes that content, which a department controls."""
    import polars as pl

    from bidui.errors import classify, is_operational

    with pytest.raises(pl.exceptions.InvalidOperationError) as caught:
        pl.Series(["No space left on device (os error 28)"]).cast(pl.Int64)
    assert classify(caught.value, tmp_path) is None, classify(caught.value, tmp_path)
    assert not is_operational(caught.value)


def test_a_worker_over_its_disk_quota_is_a_full_disk(tmp_path: Path) -> None:
    """The handover write over a disk quota fails in polars with EDQUOT, said only in its text: a
    full disk, as when it is an OSError's errno."""
    from bidui.errors import EXIT_DISK_FULL, classify, is_operational

    e = _polars_io_error(f"{__import__('os').strerror(errno.EDQUOT)} (os error {errno.EDQUOT})")
    failure = classify(e, tmp_path)
    assert failure is not None and failure.code == EXIT_DISK_FULL, (str(e), failure)
    assert is_operational(e)


def test_a_full_disk_while_the_writer_hands_a_worker_its_fingerprints_is_a_full_disk(tmp_path: Path) -> None:
    """The snapshot's fingerprints go to a worker as a file DuckDB writes (`known_rows_file`); its
    error on a full disk is shaped like JSON, the file's name quoted as \\"…\\": still a full disk,
    and the file named without the escape."""
    from bidui.errors import EXIT_DISK_FULL, classify, is_operational

    con = wh.connect(tmp_path / "w.duckdb")
    try:
        with pytest.raises(Exception) as caught:  # (/dev/full: every write fails with ENOSPC)
            con.execute("COPY (SELECT range AS raw_hi FROM range(100000)) TO '/dev/full' (FORMAT parquet)")
    finally:
        con.close()
    failure = classify(caught.value, tmp_path)
    assert failure is not None and failure.code == EXIT_DISK_FULL, (str(caught.value), failure)
    assert "/dev/full" in failure.line and "/dev/full\\" not in failure.line, failure.line
    assert is_operational(caught.value)


def _after_first_night(tiny: Path, tmp_path: Path) -> tuple:
    """A warehouse with the tiny prefecture's first night ingested, its first night's folder, the
    next night and that night's folder (empty)."""
    con = wh.connect(tmp_path / "w.duckdb")
    first = tiny / "inbox" / NIGHT.isoformat()
    ingest.ingest_night(con, first, NIGHT, workers=1)
    night = date(2026, 11, 21)
    folder = tmp_path / "inbox" / night.isoformat()
    folder.mkdir(parents=True)
    return con, first, night, folder


def _one_value_changed(hukou: bytes) -> bytes:
    """The hukou file with one person's sex changed in place (GB18030: two bytes each): the same size."""
    male, female = ",男,".encode("gb18030"), ",女,".encode("gb18030")
    at = hukou.rindex(male)
    return hukou[:at] + female + hukou[at + len(male):]


def test_fingerprints_are_prepared_for_a_file_unless_it_holds_the_bytes_in_force(tiny: Path, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    """The writer prepares the snapshot's fingerprints for a worker (known_rows_file) only for a
    file that does not hold the bytes of its snapshot in force: one of another size is not hashed,
    one of the same size is, and a byte changed in place is seen. Whatever it decides, what is
    stored is what a file read whole stores (a file given no fingerprints is normalised whole)."""
    con, first, night, folder = _after_first_night(tiny, tmp_path)
    (folder / "_SUCCESS").touch()
    original = (first / "hukou_20261120.csv").read_bytes()
    same, edited, longer = folder / "hukou_20261121.csv", tmp_path / "edited.csv", tmp_path / "longer.csv"
    same.write_bytes(original)
    edited.write_bytes(_one_value_changed(original))
    longer.write_bytes(original + original.splitlines(keepends=True)[-1])
    in_force, sizes = wh.in_force_hashes(con, night), wh.in_force_sizes(con, night)
    assert sizes["hukou"] == len(original)
    hand = tmp_path / f"{ingest.HANDOVER_PREFIX}x"
    hand.mkdir()

    def known(path: Path, sizes: dict[str, int] = sizes) -> KnownFile | None:
        e = inbox.Entry(path, same.name)  # (as the ingest loop asks: the bytes in force, else fingerprints)
        return None if ingest._as_in_force(e, night, in_force, sizes) is not None else ingest._known(con, e, night, hand)

    assert known(same) is None
    assert isinstance(known(edited), KnownFile)
    real = inbox.digests
    monkeypatch.setattr(inbox, "digests", lambda *a, **k: pytest.fail("a file of another size was hashed"))
    assert isinstance(known(longer), KnownFile)
    assert known(same, {}) is not None  # no size kept
    monkeypatch.setattr(inbox, "digests", real)
    # Stored, the edited file (given fingerprints) and the same file given none store what they
    # would whole: compare with a warehouse that reads every file whole.
    monkeypatch.setattr(ingest, "PARALLEL_BYTES", 0)
    same.write_bytes(edited.read_bytes())
    whole = wh.connect(tmp_path / "whole.duckdb")
    ingest.ingest_night(whole, first, NIGHT, workers=1, carry=False)
    for w, carry in ((con, True), (whole, False)):
        outcomes = ingest.ingest_night(w, folder, night, workers=2, carry=carry)
        assert [o.status for o in outcomes if o.file == same.name] == ["accepted"]
    rows = "SELECT * EXCLUDE (load_id, row_id) FROM ds_hukou_at(?) ORDER BY source_row"
    assert con.execute(rows, [night]).fetchall() == whole.execute(rows, [night]).fetchall()
    women = "SELECT count(*) FROM ds_hukou_at(?) WHERE sex = '女'"
    assert con.execute(women, [night]).fetchone()[0] == con.execute(women, [NIGHT]).fetchone()[0] + 1


def test_a_file_holding_the_bytes_in_force_is_decided_by_the_writer_not_read_by_a_worker(tiny: Path, tmp_path: Path,
                                                                                         monkeypatch) -> None:
    """A later night's files are mostly the bytes of their snapshot in force: the writer, which
    hashes a file of that size anyway, takes it as a duplicate without a worker reading and hashing
    it again. A file of that size with other bytes still goes to a worker and is stored; the load
    log says of the others what a worker's reading said (duplicate, the snapshot in force named)."""
    monkeypatch.setattr(ingest, "PARALLEL_BYTES", 0)
    con, first, night, folder = _after_first_night(tiny, tmp_path)
    for f in first.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    hukou = folder / "hukou_20261120.csv"
    hukou.write_bytes(_one_value_changed(hukou.read_bytes()))
    read: list[str] = []
    real = ingest.prepare

    def prepare(path, *args, **kwargs):
        read.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ingest, "prepare", prepare)
    monkeypatch.setattr(ingest, "_pool", lambda *a: _HandingPool())
    outcomes = {o.file: o for o in ingest.ingest_night(con, folder, night, workers=2)}
    assert read == [hukou.name]
    assert outcomes[hukou.name].status == "accepted"
    others = [o for name, o in outcomes.items() if name != hukou.name and o.dataset]
    assert others and all(o.status == "duplicate" and f"snapshot in force ({NIGHT}" in o.message for o in others), others
    (logged,), = con.execute("SELECT count(*) FROM load_log WHERE night = ? AND status = 'duplicate'", [night]).fetchall()
    assert logged == len(others)
