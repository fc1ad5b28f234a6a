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
