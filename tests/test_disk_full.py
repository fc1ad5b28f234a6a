"""Disk full while a file is stored: the error that says so reaches the caller (not a failed
ROLLBACK's), nothing of the file is half-stored, and once there is room the same file loads.

On a real full filesystem (a 8 MB tmpfs) where this machine lets the test mount one (root, as on
CI); elsewhere ENOSPC is simulated where the warehouse writes."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_file

NIGHT = date(2026, 11, 20)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    ok = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                                              capture_output=True).returncode == 0
    try:
        yield mnt if ok else None
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_while_storing_says_so_and_half_stores_nothing(tiny: Path, small_disk: Path | None,
                                                                 tmp_path: Path, monkeypatch) -> None:
    src = tiny / "inbox" / NIGHT.isoformat() / "hukou_20261120.csv"
    folder = small_disk or tmp_path
    con = wh.connect(folder / "w.duckdb")
    con.execute("CHECKPOINT")
    filler = folder / "filler"
    if small_disk is not None:
        filler.write_bytes(b"\0" * (shutil.disk_usage(folder).free - 200_000))
    else:
        def full(*_a, **_k):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(wh, "apply_snapshot", full)
    with pytest.raises(Exception, match="No space left on device"):
        ingest_file(con, src, NIGHT)
    con.close()
    filler.unlink(missing_ok=True)
    monkeypatch.undo()
    con = wh.connect(folder / "w.duckdb")
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM ds_hukou").fetchone()[0] == 0
    o = ingest_file(con, src, NIGHT)
    assert o.status == "accepted" and con.execute("SELECT count(*) FROM ds_hukou").fetchone()[0] == o.rows_loaded
    con.close()


def test_a_full_disk_while_a_worker_hands_its_rows_over_says_so_and_stores_nothing(tiny: Path, small_disk: Path | None,
                                                                                 tmp_path: Path, monkeypatch) -> None:
    """Worker processes write each file's rows to a handover file beside the warehouse: on a full
    disk that write fails in polars, whose error carries no errno, only its text. It must still
    read as a full disk (exit code, one line), and nothing be stored or left behind."""
    import polars as pl

    from bidui.connectors import ingest
    from bidui.errors import EXIT_DISK_FULL, classify

    if Path("/dev/full").exists():
        with pytest.raises(Exception) as caught:  # (polars raises ComputeError, not OSError)
            pl.DataFrame({"a": range(200_000)}).write_parquet("/dev/full", compression="lz4", statistics=False)
        assert getattr(caught.value, "errno", None) is None  # why the text must be read
        failure = classify(caught.value, tmp_path)
        assert failure is not None and failure.code == EXIT_DISK_FULL, failure
        # polars' error about a file's content is not read for a full disk, whatever it quotes
        from polars.exceptions import ComputeError
        assert classify(ComputeError("could not parse 'No space left on device' as dtype i64"), tmp_path) is None
    if small_disk is None:
        pytest.skip("mounting a small disk needs root")
    monkeypatch.setattr(ingest, "PARALLEL_BYTES", 0)
    con = wh.connect(small_disk / "w.duckdb")
    con.execute("CHECKPOINT")
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 8_000))
    folder = tiny / "inbox" / NIGHT.isoformat()
    with pytest.raises(Exception) as caught:
        ingest.ingest_night(con, folder, NIGHT, workers=2)
    failure = classify(caught.value, small_disk)
    assert failure is not None and failure.code == EXIT_DISK_FULL, repr(caught.value)
    con.close()
    filler.unlink()
    assert not [p for p in small_disk.iterdir() if p.name.startswith(ingest.HANDOVER_PREFIX)]
    con = wh.connect(small_disk / "w.duckdb")
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    con.close()
