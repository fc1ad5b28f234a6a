"""What the command line tells a scheduler: bad input exits 1, never 2 ("a file was refused or
held"); a bad --date reads the same in every command; the help says what the codes mean and shows
a flag without a value; `rules export` of a night never run writes nothing; and a command that
fails on its input leaves no home behind that a later command would read as one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidui.cli import app
from bidui.connectors import warehouse as wh
from bidui.home import Home
from bidui.rules.engine import ensure_hits_tables
from bidui.runlock import run_lock

ROOT = Path(__file__).resolve().parents[1]
NIGHT = "2026-11-20"


def flat(text: str) -> str:
    """Help and error panels as one line: no box drawing, no wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def invoke(home: Path, *args: str | Path):
    return CliRunner().invoke(app, ["--home", str(home), *map(str, args)])


def bidui(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python -m bidui.cli` (the `bidui` script's main()) as a scheduler runs it."""
    return subprocess.run([sys.executable, "-m", "bidui.cli", "--home", str(home), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=os.environ | {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"})


@pytest.fixture
def night(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox" / NIGHT
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home").ensure()
    h.config.write_text("")  # a home bidui has worked in
    return h


@pytest.mark.parametrize(("args", "said"), [
    (["run", "/no/such/folder", "--plain"], "does not exist"),
    (["run", "{night}", "--date", "2026/11/22", "--plain"], "not a date (YYYY-MM-DD): 2026/11/22"),
    (["run", "{badname}", "--plain"], "not named by a date (YYYY-MM-DD)"),
    (["ingest", "/no/such/folder"], "does not exist"),
    (["ingest", "{night}", "--date", "2026/11/22"], "not a date (YYYY-MM-DD): 2026/11/22"),
    (["ingest", "{badname}"], "not named by a date (YYYY-MM-DD)"),
    (["loads", "--bogus"], "No such option"),
    (["link"], "Missing option"),
    (["rules", "export", "--date", NIGHT], "Missing option"),
    (["nosuchcommand"], "No such command"),
])
def test_bad_input_exits_1_with_clicks_message(tmp_path: Path, night: Path, home: Home, args: list[str],
                                                said: str) -> None:
    badname = tmp_path / "inbox" / "nightX"
    badname.mkdir()
    args = [a.format(night=night, badname=badname) for a in args]
    res = invoke(home.root, *args)
    assert res.exit_code == 1, res.output
    assert said in flat(res.output) and "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert not home.warehouse.exists()  # nothing was started


def test_the_entry_point_exits_1_for_a_night_folder_that_never_arrived(tmp_path: Path) -> None:
    out = bidui(tmp_path / "home", "run", "--plain", tmp_path / "inbox" / NIGHT)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "does not exist" in flat(out.stderr) and "Traceback" not in out.stderr


def test_a_bad_date_reads_the_same_in_every_command(night: Path, home: Home) -> None:
    for args in (["ingest", str(night), "--date", "2026/11/22"], ["loads", "--date", "2026/11/22"],
                 ["link", "--date", "2026/11/22"], ["run", str(night), "--plain", "--date", "2026/11/22"]):
        res = invoke(home.root, *args)
        assert "Invalid value for --date: not a date (YYYY-MM-DD): 2026/11/22" in flat(res.output), (args, res.output)
        assert "isoformat" not in res.output


def test_run_help_says_what_its_exit_codes_mean(home: Home) -> None:
    res = invoke(home.root, "run", "--help")
    text = flat(res.output)
    assert res.exit_code == 0 and "bidui.errors" not in text, text
    for said in ("1: bad input", "2: a file was refused or held", "3: another run", "4: the warehouse or the ledger "
                 "is locked", "5: the home cannot be written", "6: the disk is full", "What a scheduler can act on"):
        assert said in text, said


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["ingest", "--help"], ["loads", "--help"],
                                  ["rules", "--help"], ["rules", "whatif", "--help"], ["clues", "export", "--help"],
                                  ["link", "--help"]])
def test_a_flag_shows_no_value_placeholder(home: Home, args: list[str]) -> None:
    res = invoke(home.root, *args)
    assert res.exit_code == 0 and "--help" in res.output, res.output
    assert "<bool>" not in res.output, res.output
    assert "<str>" in flat(invoke(home.root, "loads", "--help").output)  # an option that takes one still shows it


def test_rules_export_of_a_night_never_run_writes_nothing(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "hits.csv"
    res = invoke(home.root, "rules", "export", "--date", NIGHT, "--out", out)  # no warehouse yet
    assert res.exit_code == 1 and f"run bidui rules run --date {NIGHT} first" in flat(res.output), res.output
    assert not out.exists() and not home.warehouse.exists()
    con = wh.connect(home.warehouse)
    ensure_hits_tables(con)
    con.close()
    res = invoke(home.root, "rules", "export", "--date", NIGHT, "--out", out)
    assert res.exit_code == 1 and f"no rules run for {NIGHT}" in flat(res.output), res.output
    assert not out.exists()
    # A night whose rules ran and found nothing is an empty file, not an error.
    con = wh.connect(home.warehouse)
    con.execute("INSERT INTO rule_runs VALUES (?, 'VEHICLE', 'ran', 0, 0.1, '')", [NIGHT])
    con.close()
    res = invoke(home.root, "rules", "export", "--date", NIGHT, "--out", out)
    assert res.exit_code == 0 and "0 hits" in res.output, res.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbfrule_code,")


def test_a_command_failing_on_its_input_leaves_no_home_behind(tmp_path: Path) -> None:
    badname = tmp_path / "inbox" / "nightX"
    badname.mkdir(parents=True)
    root = tmp_path / "X"
    for args in (["ingest", badname], ["run", "--plain", badname], ["ingest", badname, "--date", "2026/11/22"]):
        assert invoke(root, *args).exit_code == 1
        assert not root.exists(), list(root.iterdir())
    out = bidui(root, "report")
    assert out.returncode == 7 and not root.exists(), out.stdout + out.stderr


def test_a_folder_with_only_a_let_go_run_lock_is_not_a_home(tmp_path: Path) -> None:
    """A run lock some command held and let go of (emptied) does not make a home: `report` refuses
    it (exit 7) rather than create an empty ledger there and print zeros."""
    root = tmp_path / "X"
    root.mkdir()
    with run_lock(root, 0):
        assert Home(root).exists()  # a first run working in it: a reader waits for it, not refuses
    assert (root / "run.lock").exists() and not Home(root).exists()
    out = bidui(root, "report")
    assert out.returncode == 7 and "no bidui home" in out.stderr, out.stdout + out.stderr
    assert sorted(p.name for p in root.iterdir()) == ["run.lock"]
