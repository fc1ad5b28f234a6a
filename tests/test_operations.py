"""What a scheduler and an operator see when a night goes wrong (issue 14, "exit codes and
failures a scheduler can act on"): the exit code and Prefect state of a night with a file refused
or held, one run at a time per home, one line instead of a traceback for a locked warehouse, a
read-only home, a full disk or a missing home, and ingest workers that die with their parent.

Real processes wherever the behaviour is between processes (the run lock, DuckDB's lock, a killed
parent); a real read-only bind mount and a real full tmpfs where this machine allows mounting
(`unshare -m`, as root), and the same failures simulated by monkeypatching everywhere."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

from bidui import errors
from bidui.runlock import RunInProgress, held_here, holder, lock_path, run_lock

ROOT = Path(__file__).resolve().parents[1]
NIGHT1, NIGHT2, NIGHT3 = "2026-11-20", "2026-11-21", "2026-11-22"  # tiny: night 3's property file is truncated
BUSY = re.compile(r"another bidui run is in progress on this home \(pid (\d+), since (\S+ \S+)\); try again later")


def env() -> dict[str, str]:
    # The package under test is this checkout's, whatever is installed in the venv.
    return os.environ | {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}


def bidui_argv(home: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "bidui.cli", "--home", str(home), *map(str, args)]


def bidui(home: Path, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bidui_argv(home, *args), capture_output=True, text=True, env=env(), cwd=ROOT,
                          timeout=timeout)


def printed(out: subprocess.CompletedProcess[str]) -> list[str]:
    return (out.stdout + out.stderr).strip().splitlines()


def main_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str | Path
                    ) -> tuple[int, list[str]]:
    """`bidui ARGV` through bidui.cli.main() in this process (for failures simulated by patching)."""
    from bidui.cli import main

    monkeypatch.setattr(sys, "argv", ["bidui", *map(str, argv)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    captured = capsys.readouterr()
    return int(ended.value.code or 0), (captured.out + captured.err).strip().splitlines()


def lock_holder(home: Path) -> subprocess.Popen[str]:
    """Another process holding the home's run lock until its stdin is closed."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from bidui.runlock import run_lock
        with run_lock(Path(sys.argv[1]), wait=0, command="test holder"):
            print("locked", flush=True)
            sys.stdin.read()
    """)
    home.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([sys.executable, "-c", script, str(home)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=env())
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def release(p: subprocess.Popen[str]) -> None:
    if p.stdin:
        p.stdin.close()
    p.wait(30)


def can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                          capture_output=True).returncode == 0


needs_mount = pytest.mark.skipif(not can_mount(), reason="no private mount namespace here (unshare -m, as root)")


# ---------------------------------------------------------------- exit code 2 and the Held state


def test_run_exits_0_for_a_clean_night_and_2_when_a_file_is_refused(tiny: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = bidui(home, "run", "--plain", tiny / "inbox" / NIGHT1)
    assert first.returncode == 0, first.stderr
    # Night 2 as delivered, but the hukou file is not a hukou extract: refused, the night goes on.
    night = tmp_path / "inbox" / NIGHT2
    shutil.copytree(tiny / "inbox" / NIGHT2, night)
    (night / f"hukou_{NIGHT2.replace('-', '')}.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    second = bidui(home, "run", "--plain", night)
    assert second.returncode == errors.EXIT_FILES, second.stdout + second.stderr
    assert "拒收" in second.stdout and f"比对 {NIGHT2}：完成" in second.stdout
    # Said under the headline, not only in the table's wide 说明 column.
    head = " ".join(re.split(r"\n\s*数据集\s*\n", second.stdout)[0].split())  # above the table
    assert "但有文件未入库：1 个拒收" in head and "不会据此下发线索" in head
    assert "但有文件未入库" not in first.stdout
    # Asked again, the night is not run again, and still says its data is not all in.
    again = bidui(home, "run", "--plain", night)
    assert again.returncode == errors.EXIT_FILES and "已运行过" in again.stdout


def test_the_prefect_flow_ends_held_and_its_caller_still_gets_the_report(prefect_harness, tiny: Path,
                                                                         tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bidui.cli import app
    from bidui.flows.prefect_flows import HELD_STATE, nightly_comparison, nightly_inbox

    home = tmp_path / "home"
    inbox = tmp_path / "inbox"
    for night in (NIGHT1, NIGHT3):  # night 3 after night 1: its property file has 45% of the rows
        shutil.copytree(tiny / "inbox" / night, inbox / night)
    state = nightly_comparison(str(inbox / NIGHT1), None, str(home), return_state=True)
    assert state.is_completed() and state.name == "Completed"
    state = nightly_inbox(str(inbox), str(home), return_state=True)  # what the schedule runs
    assert state.is_completed() and state.name == HELD_STATE, state
    assert state.result() == [NIGHT3] and "不动产登记信息" in (state.message or "")
    state = nightly_comparison(str(inbox / NIGHT3), None, str(home), return_state=True)
    assert state.is_completed() and state.name == HELD_STATE and "(held)" in (state.message or "")
    report = nightly_comparison(str(inbox / NIGHT3), None, str(home))  # called as a function: the report
    assert isinstance(report, dict) and report["status"] == "already"
    assert any(f["status"] == "held" for f in report["files"])
    result = CliRunner().invoke(app, ["--home", str(home), "run", str(inbox / NIGHT3)])
    assert result.exit_code == errors.EXIT_FILES, result.output


def test_night_exit_code_counts_refused_and_held_only() -> None:
    ok = [{"status": s} for s in ("accepted", "forced", "duplicate", "missing")]
    assert errors.night_exit_code(ok) == 0
    assert errors.night_exit_code([*ok, {"status": "held"}]) == 2
    assert errors.night_exit_code([*ok, {"status": "refused"}]) == 2
    from bidui.connectors.ingest import OK_STATUSES

    assert set(OK_STATUSES) <= set(errors.OK_FILE_STATUSES)  # the two lists must not drift apart


# ---------------------------------------------------------------- one run at a time


@pytest.mark.parametrize("command", [["ingest", "FOLDER"], ["link", "--date", NIGHT1],
                                     ["rules", "run", "--date", NIGHT1], ["publish", "--date", NIGHT1],
                                     ["run", "--plain", "FOLDER"]])
def test_a_command_that_cannot_get_the_run_lock_says_who_holds_it(tiny: Path, tmp_path: Path,
                                                                   command: list[str]) -> None:
    home = tmp_path / "home"
    holding = lock_holder(home)
    try:
        folder = tiny / "inbox" / NIGHT1
        started = time.monotonic()
        out = bidui(home, *[str(folder) if a == "FOLDER" else a for a in command], "--wait", "1")
        assert time.monotonic() - started >= 1  # it waited before giving up
        assert out.returncode == errors.EXIT_BUSY
        lines = printed(out)
        assert len(lines) == 1 and (m := BUSY.fullmatch(lines[0])), lines
        assert int(m.group(1)) == holding.pid
        assert not (home / "warehouse.duckdb").exists()  # nothing was done
    finally:
        release(holding)


def test_a_second_run_waits_for_the_first_and_then_goes_on(tiny: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    holding = lock_holder(home)
    try:
        waiting = subprocess.Popen(bidui_argv(home, "ingest", tiny / "inbox" / NIGHT1, "--wait", "120"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
        time.sleep(4)
        assert waiting.poll() is None and not (home / "warehouse.duckdb").exists()
    finally:
        release(holding)
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, out + err
    assert "accepted" in out and "Traceback" not in err


def test_two_runs_started_together_one_runs_the_night_the_other_finds_it_done(tiny: Path, tmp_path: Path) -> None:
    """Issue 14: of two runs started together, one crashed on DuckDB's lock."""
    home = tmp_path / "home"
    folder = tiny / "inbox" / NIGHT1
    runs = [subprocess.Popen(bidui_argv(home, "run", "--plain", folder), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outs
    statuses = sorted(next(line for line in out.splitlines() if line.startswith(f"比对 {NIGHT1}："))
                      for out, _ in outs)
    assert statuses == sorted([f"比对 {NIGHT1}：已运行过（本夜已运行过，未重复运行）", f"比对 {NIGHT1}：完成"])
    assert not any("Traceback" in err for _, err in outs)


def test_the_prefect_flow_holds_the_run_lock(prefect_harness, tiny: Path, tmp_path: Path) -> None:
    from bidui.flows.prefect_flows import nightly_comparison

    home = tmp_path / "home"
    holding = lock_holder(home)
    try:
        state = nightly_comparison(str(tiny / "inbox" / NIGHT1), None, str(home), lock_wait=0.5, return_state=True)
        assert state.is_failed()
        with pytest.raises(RunInProgress, match=f"pid {holding.pid},"):
            state.result()
        assert not (home / "warehouse.duckdb").exists()
    finally:
        release(holding)


def test_the_lock_is_reentrant_in_a_process_and_freed_when_its_holder_is_killed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    holding = lock_holder(home)
    assert holder(lock_path(home))[0] == holding.pid
    with pytest.raises(RunInProgress), run_lock(home, wait=0.3):
        pass
    holding.kill()  # kill -9: no chance to unlock; the kernel drops the flock
    holding.wait(30)
    with run_lock(home, wait=5):
        assert holder(lock_path(home))[0] == os.getpid() and held_here(home)
        with run_lock(home, wait=0):  # `bidui run` holds it and calls the flow, which takes it again
            assert held_here(home)
        assert held_here(home)
    assert not held_here(home) and holder(lock_path(home)) == (None, None)


# ---------------------------------------------------------------- one line instead of a traceback


def assert_one_line(lines: list[str], pattern: str) -> None:
    assert len(lines) == 1, "\n".join(lines)
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert "Traceback" not in lines[0]


def test_a_warehouse_locked_by_another_process(tiny: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    warehouse = home / "warehouse.duckdb"
    other = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                              "print('open', flush=True); sys.stdin.read()", str(warehouse)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "open"
        log = home / "logs" / "bidui.log"
        for command in (["ingest", tiny / "inbox" / NIGHT1, "--wait", "0"], ["run", "--plain", tiny / "inbox" / NIGHT1],
                        ["loads"]):
            out = bidui(home, *command)
            assert out.returncode == errors.EXIT_LOCKED, out.stdout + out.stderr
            assert_one_line(printed(out), re.escape(f"the warehouse {warehouse} is locked by another process (pid "
                                                    f"{other.pid}): wait until it is done, or stop it, and try again; "
                                                    f"details in {log}"))
        text = log.read_text(encoding="utf-8")
        assert text.count("Traceback (most recent call last)") == 3 and "Could not set lock on file" in text
    finally:
        release(other)


def ro_shell(home: Path, command: str) -> list[str]:
    return ["unshare", "-m", "sh", "-c", f"mount --bind '{home}' '{home}' && mount -o remount,bind,ro '{home}' '{home}' "
                                         f"&& exec {command}"]


@needs_mount
def test_a_read_only_home_real_bind_mount(tiny: Path, tmp_path: Path) -> None:
    """A read-only bind mount of the home, in a private mount namespace (chmod stops no one: the
    tests run as root)."""
    home = tmp_path / "home"
    assert bidui(home, "ingest", tiny / "inbox" / NIGHT1).returncode == 0
    before = sorted(p.name for p in home.iterdir())
    for command, path in ((f"ingest {tiny / 'inbox' / NIGHT1}", home / "run.lock"), ("report", home),
                          ("loads", home / "warehouse.duckdb")):
        argv = " ".join(f"'{a}'" for a in bidui_argv(home, *command.split()))
        out = subprocess.run(ro_shell(home, argv), capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120)
        assert out.returncode == errors.EXIT_READ_ONLY, out.stdout + out.stderr
        assert_one_line(printed(out), re.escape(f"cannot write {path}: the file system is read-only; bidui needs a "
                                                "writable home; no log written (the home is read-only)"))
    assert sorted(p.name for p in home.iterdir()) == before


def test_a_read_only_home_simulated(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The same, simulated where mounting is not allowed: every write under the home through
    pathlib raises EROFS (the lock file, the log folder)."""
    home = tmp_path / "home"
    home.mkdir()
    real_open, real_mkdir = Path.open, Path.mkdir

    def refuse(path: Path) -> None:
        if path.resolve().is_relative_to(home.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def ro_open(self: Path, mode: str = "r", *args: object, **kwargs: object):
        if set(mode) & set("wax+"):
            refuse(self)
        return real_open(self, mode, *args, **kwargs)

    def ro_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if not self.exists():
            refuse(self)
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", ro_open)
    monkeypatch.setattr(Path, "mkdir", ro_mkdir)
    code, lines = main_in_process(monkeypatch, capsys, "--home", home, "ingest", tiny / "inbox" / NIGHT1)
    assert code == errors.EXIT_READ_ONLY
    assert_one_line(lines, re.escape(f"cannot write {home / 'run.lock'}: the file system is read-only; bidui needs a "
                                     "writable home; no log written (the home is read-only)"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o555")
def test_a_home_without_write_permission(tiny: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    try:
        out = bidui(home, "ingest", tiny / "inbox" / NIGHT1)
        assert out.returncode == errors.EXIT_READ_ONLY
        assert_one_line(printed(out), re.escape(f"cannot write {home / 'run.lock'}: permission denied; bidui needs a "
                                                "writable home; no log written (permission denied)"))
    finally:
        home.chmod(0o755)


@needs_mount
def test_a_full_disk_real_tmpfs(tiny: Path, tmp_path: Path) -> None:
    """A 1 MB tmpfs holding the home, filled up to its last 8 KB before the run."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    home = mnt / "home"
    argv = " ".join(f"'{a}'" for a in bidui_argv(home, "ingest", tiny / "inbox" / NIGHT1))
    script = (f"mount -t tmpfs -o size=1m tmpfs '{mnt}' && mkdir '{home}' && head -c 1040000 /dev/zero > '{mnt}/filler' "
              f"&& {argv}; echo \"rc=$?\"")
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env(), cwd=ROOT,
                         timeout=120)
    lines = printed(out)
    assert f"rc={errors.EXIT_DISK_FULL}" in lines, out.stdout + out.stderr
    lines.remove(f"rc={errors.EXIT_DISK_FULL}")
    assert_one_line(lines, re.escape(f"the disk holding {home}") + r"\S* is full \(no space left on device\): "
                    r"free some space and run again; (details in \S+|no log written \(the disk is full\))")


def _enospc(path: Path) -> BaseException:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _duckdb_full(path: Path) -> BaseException:
    return duckdb.IOException(f'IO Error: Could not write file "{path}": No space left on device')


def _hidden_by_rollback(path: Path) -> BaseException:
    """A COMMIT failing on a full disk, then the ROLLBACK raising over it (issue 14, item 12)."""
    try:
        try:
            raise _duckdb_full(path)
        except duckdb.Error:
            raise duckdb.TransactionException("TransactionContext Error: cannot rollback - no transaction is "
                                              "active") from None
    except duckdb.Error as e:
        return e


@pytest.mark.parametrize("failure", [_enospc, _duckdb_full, _hidden_by_rollback])
def test_a_full_disk_simulated(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], failure: Callable[[Path], BaseException]) -> None:
    from bidui.connectors import warehouse

    home = tmp_path / "home"
    wal = home / "warehouse.duckdb.wal"

    def full(path: Path) -> None:
        raise failure(wal)

    monkeypatch.setattr(warehouse, "connect", full)
    code, lines = main_in_process(monkeypatch, capsys, "--home", home, "ingest", tiny / "inbox" / NIGHT1)
    assert code == errors.EXIT_DISK_FULL
    log = home / "logs" / "bidui.log"
    assert_one_line(lines, re.escape(f"the disk holding {wal} is full (no space left on device): free some space and "
                                     f"run again; details in {log}"))
    assert "No space left on device" in log.read_text(encoding="utf-8")


FULL_AT_LINK = textwrap.dedent("""
    import errno, os, sys
    from bidui.flows import nightly

    wal = sys.argv[1] + "/warehouse.duckdb.wal"

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), wal)

    nightly.link_step = full
    from bidui.cli import main

    sys.argv = ["bidui", "--home", sys.argv[1], "run", sys.argv[2]]
    main()
""")


def test_a_full_disk_under_prefect_prints_no_traceback(prefect_harness, tiny: Path, tmp_path: Path) -> None:
    """`bidui run` through the flow, in a process of its own (Prefect's console is its real
    stderr), on the test harness's server: Prefect logs the failed task and flow without their
    tracebacks, and the last line is the cause."""
    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-c", FULL_AT_LINK, str(home), str(tiny / "inbox" / NIGHT1)],
                         capture_output=True, text=True, env=env() | {"PREFECT_API_URL": str(PREFECT_API_URL.value())},
                         cwd=ROOT, timeout=300)
    assert out.returncode == errors.EXIT_DISK_FULL, out.stdout + out.stderr
    assert "Finished in state Failed" in out.stderr  # Prefect's log is on screen, and what it says of the failure
    assert "Traceback" not in out.stdout + out.stderr and 'File "' not in out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"the disk holding {home / 'warehouse.duckdb.wal'} is full")
    assert "Traceback" in (home / "logs" / "bidui.log").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", [["link", "--date", NIGHT1], ["rules", "run", "--date", NIGHT1],
                                     ["publish", "--date", NIGHT1], ["report"], ["loads"],
                                     ["links", "export", "--date", NIGHT1, "--out", "x.csv"]])
def test_a_missing_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        command: list[str]) -> None:
    home = tmp_path / "no-such-home"
    code, lines = main_in_process(monkeypatch, capsys, "--home", home, *command)
    assert code == errors.EXIT_NO_HOME
    assert_one_line(lines, re.escape(f"no bidui home at {home}: check --home (or BIDUI_HOME), or create it with "
                                     "bidui ingest or bidui run"))
    assert not home.exists()


def test_a_failure_line_and_log_carry_no_id_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The line is made of the cause and the path, never the exception's text; the log masks
    what looks like an ID number and drops SQLAlchemy's bound parameters."""
    from bidui.connectors import warehouse

    home = tmp_path / "home"
    home.mkdir()
    (home / "warehouse.duckdb").touch()  # link reads a warehouse: this one will not open
    an_id = "52900119550211685X"

    def full(path: Path) -> None:
        raise duckdb.IOException(f"IO Error: row with id {an_id} and 529001195502116 No space left on device\n"
                                 f"[parameters: ('张三', '{an_id}')]")

    monkeypatch.setattr(warehouse, "connect", full)
    code, lines = main_in_process(monkeypatch, capsys, "--home", home, "link", "--date", NIGHT1)
    assert code == errors.EXIT_DISK_FULL and an_id not in "\n".join(lines) and an_id[:15] not in "\n".join(lines)
    log = (home / "logs" / "bidui.log").read_text(encoding="utf-8")
    assert "No space left on device" in log and "5290**********685X" in log and "5290*******2116" in log
    assert an_id not in log and "529001195502116" not in log and "张三" not in log


def test_a_bug_still_shows_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from bidui.cli import main
    from bidui.connectors import warehouse

    def bug(path: Path) -> None:
        raise ZeroDivisionError("a bug")

    home = tmp_path / "home"
    home.mkdir()
    (home / "warehouse.duckdb").touch()
    monkeypatch.setattr(warehouse, "connect", bug)
    monkeypatch.setattr(sys, "argv", ["bidui", "--home", str(home), "link", "--date", NIGHT1])
    with pytest.raises(ZeroDivisionError):
        main()


def test_is_operational_tells_the_file_from_the_machine(tmp_path: Path) -> None:
    assert errors.is_operational(_hidden_by_rollback(tmp_path / "w.wal"))
    assert errors.is_operational(OSError(errno.EROFS, "Read-only file system", "/x"))
    assert not errors.is_operational(ValueError("column death_date: not a date"))
    assert not errors.is_operational(OSError(errno.ENOENT, "No such file or directory", "/x"))


def _wrapped(orig: Exception) -> Exception:
    """A driver's error as SQLAlchemy raises it: wrapped, caused by it."""
    from sqlalchemy.exc import OperationalError

    e = OperationalError("INSERT INTO clues …", {}, orig)
    e.__cause__ = orig
    return e


@pytest.mark.parametrize("orig", ["sqlite", "postgresql"])
def test_a_ledger_on_a_full_disk_is_said_at_once_and_a_lost_connection_is_tried_again(tmp_path: Path, orig) -> None:
    """The ledger's retry (a publish is one transaction, tried again after a lost connection) does
    not try a full disk again: the one line that says so would come 15 s later."""
    import sqlite3

    import psycopg.errors

    from bidui.clues.db import ledger_url, open_ledger

    full = _wrapped(sqlite3.OperationalError("database or disk is full") if orig == "sqlite" else
                    psycopg.errors.DiskFull('could not extend file "base/5/16384": No space left on device'))
    failure = errors.classify(full, tmp_path)
    assert failure is not None and failure.code == errors.EXIT_DISK_FULL, failure
    assert ("PostgreSQL" in failure.line) == (orig == "postgresql"), failure.line
    lost = _wrapped(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert errors.classify(lost, tmp_path) is None
    ledger = open_ledger(ledger_url(tmp_path / "ledger.sqlite"))
    try:
        for error, tries in ((full, 1), (lost, 3)):
            calls = []

            def work(error=error, calls=calls):
                calls.append(1)
                raise error

            with pytest.raises(type(error)):
                ledger.retrying(work, waits=(0.0, 0.0))
            assert len(calls) == tries, (orig, error, len(calls))
    finally:
        ledger.close()


# ---------------------------------------------------------------- workers die with their parent


PARENT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor

    from bidui.workers import die_with_parent

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=die_with_parent if sys.argv[1] == "on" else None)
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 300)  # the long task the worker is busy with when the parent dies
        time.sleep(300)
""")


def alive(pid: int) -> bool:
    """Running (a zombie is dead: its memory is freed, only the process table entry is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("initializer", ["on", "off"])
def test_ingest_workers_die_with_their_killed_parent(tmp_path: Path, initializer: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT, encoding="utf-8")
    parent = subprocess.Popen([sys.executable, str(script), initializer], stdout=subprocess.PIPE, text=True, env=env())
    worker = 0
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        time.sleep(0.5)  # the worker is in its long task now
        assert alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 5
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Without the initializer the worker lives on: the test tells the two apart.
        assert alive(worker) == (initializer == "off")
    finally:
        if parent.poll() is None:
            parent.kill()
        if worker and alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_worker_whose_parent_is_already_gone_exits(tmp_path: Path) -> None:
    """The parent may die between the worker's start and its prctl: the worker finds itself
    re-parented and leaves at once."""
    script = textwrap.dedent("""
        import multiprocessing, os
        from bidui import workers

        class Gone:
            pid = os.getppid() + 1_000_000  # not our parent any more

        multiprocessing.parent_process = lambda: Gone()
        workers.die_with_parent()
        print("survived")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), timeout=60)
    assert out.returncode == 1 and "survived" not in out.stdout


def test_workers_started_by_a_living_parent_run(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from bidui.workers import die_with_parent

    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=die_with_parent) as pool:
        assert pool.submit(sum, [1, 2, 3]).result(timeout=120) == 6


def test_dates_in_the_lock_file_are_readable(tmp_path: Path) -> None:
    with run_lock(tmp_path, wait=0, command="bidui run"):
        pid, since = holder(lock_path(tmp_path))
    assert pid == os.getpid() and since is not None and date.fromisoformat(since[:10]) == date.today()
