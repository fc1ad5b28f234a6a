"""A later night whose step fails on a full disk keeps nothing of that step, leaves the nights
before it as they were, and, run again once there is room, holds what a clean run of it holds.

A later night is where the incremental writes are: rows kept in place (a range of nights moved on,
`last_date`), rows that ended, links whose `last_night` moved on, rule hits carried and the ledger's
clues seen again. Each step's transaction must take all of it back when the disk fills at its end.
Each step is cut inside its transaction, after its incremental writes, with the error the database
gives on a full disk (simulated; a real full tmpfs is in tests/test_operations.py and
tests/test_disk_full.py, for a first night)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from sqlalchemy.exc import OperationalError

from bidui.clues import publish
from bidui.connectors import ingest
from bidui.connectors import warehouse as wh
from bidui.errors import EXIT_DISK_FULL
from bidui.home import Home
from bidui.matching import carry
from bidui.matching.link_nights import on_night
from bidui.rules import changed
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate
from tests.test_incremental import ledger_state, run, warehouse_state
from tests.test_operations import main_in_process

pytestmark = pytest.mark.slow  # (five nights run twice: about 80 s)

NIGHTS = [date(2026, 11, 20) + timedelta(days=i) for i in range(2)]


def folder(root: Path, i: int) -> Path:
    return root / "inbox" / NIGHTS[i].isoformat()


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(prefecture, a home after night 1, a home after a clean night 2)."""
    base = tmp_path_factory.mktemp("later-night-full-disk")
    root = base / "prefecture"
    generate(root, SynthConfig(size="tiny", seed=11, nights=len(NIGHTS)))
    first, clean = base / "first", base / "clean"
    assert run(first, folder(root, 0)) in (0, 2)
    shutil.copytree(first, clean)
    assert run(clean, folder(root, 1)) in (0, 2)
    return root, first, clean


def _duckdb_full(home: Path) -> BaseException:
    return duckdb.IOException(f'IO Error: Could not write file "{home}/warehouse.duckdb.wal": No space left on device')


def _sqlite_full(home: Path) -> BaseException:
    # as SQLAlchemy raises SQLite's own error on a full disk: wrapped, caused by it
    orig = sqlite3.OperationalError("database or disk is full")
    e = OperationalError("INSERT INTO register_members …", {}, orig)
    e.__cause__ = orig
    return e


def _cut(monkeypatch, module, name: str, failure, when=lambda *a, **k: True) -> list[int]:
    """`module.name` does its work, then the disk is full (when `when` says so for its arguments);
    how many times it was cut."""
    real, cuts = getattr(module, name), []

    def full(*args, **kwargs):
        out = real(*args, **kwargs)
        if when(*args, **kwargs):
            cuts.append(1)
            raise failure
        return out

    monkeypatch.setattr(module, name, full)
    return cuts


def _dataset_is(code: str):
    return lambda con, ds, *a, **k: ds.code == code


# step, where inside its transaction it is cut (after that call), for which call
CASES = {
    # rows kept in place (the CSV read by its lines): ranges moved on, rows ended
    "ingest, the hukou file": ("ingest", ingest, "remember_profile", _dataset_is("hukou"), _duckdb_full),
    # a workbook in another order: every row stored again, the rows before ended
    "ingest, the vehicles workbook": ("ingest", ingest, "remember_profile", _dataset_is("vehicles"),
                                      _duckdb_full),
    # links carried (last_night moved on), links of tonight's rows stored
    "link": ("link", carry, "remember_loads", lambda *a, **k: True, _duckdb_full),
    # hits carried from the night before, the rules' state
    "rules": ("rules", changed, "remember", lambda *a, **k: True, _duckdb_full),
    # clues seen again, new ones, gone ones, the register's copy
    "publish": ("publish", publish, "_replace_register", lambda *a, **k: True, _sqlite_full),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_full_disk_in_a_later_nights_step_keeps_nothing_of_it_and_the_night_run_again_is_whole(
        nights, tmp_path, monkeypatch, capsys, case) -> None:
    root, first, clean = nights
    step, module, name, when, failure = CASES[case]
    home = tmp_path / "home"
    shutil.copytree(first, home)
    night_1, ledger_1 = warehouse_state(first, NIGHTS[0]), ledger_state(first)

    cuts = _cut(monkeypatch, module, name, failure(home), when)
    code, lines = main_in_process(monkeypatch, capsys, "--home", home, "run", "--plain", folder(root, 1))
    assert code == EXIT_DISK_FULL, (case, lines)
    assert any("is full (no space left on device)" in line for line in lines), (case, lines)
    assert len(cuts) == 1, f"{case}: cut {len(cuts)} times (a full disk is not tried again)"
    monkeypatch.undo()

    # The night before is as it was, in the warehouse and in the ledger.
    assert warehouse_state(home, NIGHTS[0]) == night_1, case
    assert ledger_state(home) == ledger_1, case
    # Nothing of the step that failed holds on the night.
    con = wh.connect(Home(home).warehouse)
    try:
        if step == "ingest":
            code = "hukou" if "hukou" in case else "vehicles"
            assert not con.execute("SELECT count(*) FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                                   [code, NIGHTS[1]]).fetchone()[0]
            assert wh.in_force(con, NIGHTS[1])[code] == NIGHTS[0]
        elif step == "link":
            con.execute("CREATE TABLE IF NOT EXISTS link_runs (night DATE)")
            assert not con.execute("SELECT count(*) FROM link_runs WHERE night = ?", [NIGHTS[1]]).fetchone()[0]
            # every link of night 1 ends there, as stored by night 1
            assert not con.execute(f"SELECT count(*) FROM links WHERE {on_night('?')}", [NIGHTS[1]]).fetchone()[0]
        elif step == "rules":
            assert not con.execute("SELECT count(*) FROM rule_hits WHERE night = ?", [NIGHTS[1]]).fetchone()[0]
            assert not con.execute("SELECT count(*) FROM rule_states WHERE night = ?", [NIGHTS[1]]).fetchone()[0]
    finally:
        con.close()

    # Run again with room: what a clean run of the night holds.
    assert run(home, folder(root, 1)) in (0, 2)
    for i in range(2):
        ours, theirs = warehouse_state(home, NIGHTS[i]), warehouse_state(clean, NIGHTS[i])
        for part in theirs:
            assert ours[part] == theirs[part], (case, NIGHTS[i], part, len(ours[part]), len(theirs[part]))
    ours, theirs = ledger_state(home), ledger_state(clean)
    for part in theirs:
        assert ours[part] == theirs[part], (case, part, len(ours[part]), len(theirs[part]))
