"""The nightly comparison end to end (tiny prefecture, two nights), re-runs, a run killed midway,
the Prefect flows under the test harness, and (slow) a schedule firing on a local Prefect server."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.export import export_frame
from bidui.clues.models import Clue, ClueEvent, PublishRun
from bidui.connectors import warehouse as wh
from bidui.flows import nightly
from bidui.home import Home
from bidui.rules.accuracy import evaluate

NIGHTS = [date(2026, 11, 20), date(2026, 11, 21)]


def ledger_state(home: Home) -> tuple[list, list]:
    """The ledger as a person sees it (ids and clock times left out)."""
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.read() as s:
            clues = sorted((c.rule_code, c.subject_key, c.evidence_key, c.status, c.version, c.first_seen, c.last_seen,
                            c.due_date, c.evidence_gone, c.evidence_hash, c.township_code)
                           for c in s.scalars(select(Clue)))
            events = sorted((e.kind, e.actor, e.from_status, e.to_status) for e in s.scalars(select(ClueEvent)))
    finally:
        ledger.close()
    return clues, events


@pytest.fixture(scope="module")
def two_nights(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = Home(tmp_path_factory.mktemp("flowhome"))
    for night in NIGHTS:
        report = nightly.run_night(home, tiny / "inbox" / night.isoformat())
        assert report.status == "completed" and list(report.timings) == list(nightly.STEPS)
    return home


def test_the_published_clues_match_the_answer_key(tiny: Path, two_nights: Home) -> None:
    ledger = open_ledger(ledger_url(two_nights.ledger))
    try:
        for night in NIGHTS:
            with ledger.read() as s:
                clues = export_frame(s, night)
            table, _, _ = evaluate(clues, tiny / "truth" / night.isoformat())
            assert table.height >= 15
            assert (table["precision"] >= 0.98).all() and (table["recall"] >= 0.98).all(), table
    finally:
        ledger.close()


def test_the_run_report_is_kept_and_says_what_happened(two_nights: Home) -> None:
    report = nightly.stored_report(two_nights, NIGHTS[1])
    assert report is not None and report.status == "completed"
    assert {f["status"] for f in report.files} >= {"accepted"} and report.links["exact"] > 0
    assert set(report.rules) and all(v["status"] in ("ran", "skipped", "disabled") for v in report.rules.values())
    assert sum(c.get("seen", 0) for c in report.clues.values()) > 0
    text = report.markdown()
    assert "比对运行报告 2026-11-21" in text and "| 发布线索 |" in text


def test_rerunning_night_one_after_night_two_changes_nothing(tiny: Path, two_nights: Home) -> None:
    before = ledger_state(two_nights)
    again = nightly.run_night(two_nights, tiny / "inbox" / NIGHTS[0].isoformat())
    assert again.status == "already" and ledger_state(two_nights) == before
    # Even with its run record lost, the steps run again and the ledger does not move.
    con = wh.connect(two_nights.warehouse)
    con.execute("DELETE FROM nightly_runs WHERE night = ?", [NIGHTS[0]])
    con.close()
    rerun = nightly.run_night(two_nights, tiny / "inbox" / NIGHTS[0].isoformat())
    assert rerun.status == "completed" and rerun.published_already and ledger_state(two_nights) == before


def _killed_after(step_killed: str, home_root: str, folder: str) -> None:
    def on_step(step: str, phase: str) -> None:
        if step == step_killed and phase == "done":
            os.kill(os.getpid(), signal.SIGKILL)

    nightly.run_night(Home(Path(home_root)), Path(folder), on_step=on_step)


@pytest.mark.parametrize("step", [pytest.param(s, marks=[] if s == "link" else [pytest.mark.slow])
                                  for s in nightly.STEPS])
def test_a_run_killed_after_a_step_is_completed_by_the_next(tiny: Path, two_nights: Home, tmp_path: Path,
                                                            step: str) -> None:
    home = Home(tmp_path / "killed")
    first = tiny / "inbox" / NIGHTS[0].isoformat()
    nightly.run_night(home, first)
    second = str(tiny / "inbox" / NIGHTS[1].isoformat())
    child = multiprocessing.get_context("spawn").Process(target=_killed_after, args=(step, str(home.root), second))
    child.start()
    child.join(300)
    assert child.exitcode == -signal.SIGKILL
    published = [NIGHTS[0], NIGHTS[1]] if step == "publish" else [NIGHTS[0]]
    with open_ledger(ledger_url(home.ledger)).read() as s:  # the ledger moved only if publish had finished
        assert sorted(r.night for r in s.scalars(select(PublishRun))) == published
    assert nightly.stored_report(home, NIGHTS[1]) is None
    report = nightly.run_night(home, Path(second))
    assert report.status == "completed"
    assert ledger_state(home) == ledger_state(two_nights)


def test_unprocessed_nights_are_the_folders_without_a_completed_run(tiny: Path, two_nights: Home) -> None:
    left = nightly.unprocessed_nights(two_nights, tiny / "inbox")
    assert [p.name for p in left] == ["2026-11-22"]


# ---------------------------------------------------------------- Prefect


def test_the_prefect_flow_runs_the_night_and_then_does_nothing(prefect_harness, tiny: Path, tmp_path: Path) -> None:
    from bidui.flows.prefect_flows import follow_up, nightly_comparison

    home = tmp_path / "prefecthome"
    folder = str(tiny / "inbox" / NIGHTS[0].isoformat())
    result = nightly_comparison(folder, None, str(home))
    assert result["status"] == "completed" and result["links"]["exact"] > 0
    before = ledger_state(Home(home))
    assert before[0]
    assert nightly_comparison(folder, None, str(home))["status"] == "already"
    assert ledger_state(Home(home)) == before
    third_day = date(2026, 11, 27)  # toordinal() % 3 == 0: the 三天一报 day
    assert third_day.toordinal() % 3 == 0
    out = follow_up(str(home), third_day.isoformat())
    assert out["three_day_report"] and Path(out["three_day_report"]).exists()
    assert follow_up(str(home), "2026-11-28")["three_day_report"] is None


def test_a_file_still_being_written_is_retried_by_prefect_then_held_and_the_night_taken_later(
        prefect_harness, tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """The ingest task raises while a file is still being written, so Prefect's retries fire; on
    the last attempt the file is held and the night ends partial (status and the Held state), and
    the night's next run takes the file and publishes the night again."""
    import shutil

    from bidui.flows import prefect_flows

    monkeypatch.setattr(prefect_flows, "ingest_task", prefect_flows.ingest_task.with_options(retry_delay_seconds=0))
    home = Home(tmp_path / "retryhome")
    nightly.run_night(home, tiny / "inbox" / NIGHTS[0].isoformat())
    folder = tmp_path / NIGHTS[1].isoformat()
    shutil.copytree(tiny / "inbox" / NIGHTS[1].isoformat(), folder)
    (folder / "_SUCCESS").unlink()
    for p in folder.iterdir():
        os.utime(p, (1e9, 1e9))  # settled long ago …
    fresh = next(folder.glob("hukou_changes_*"))
    os.utime(fresh)  # … but this one, written just now
    home.config.write_text("[ingest]\nsettle_seconds = 3600\nmax_wait_seconds = 0\n", encoding="utf-8")
    report = prefect_flows.nightly_comparison(str(folder), None, str(home.root))
    assert report["status"] == "partial"
    con = wh.connect(home.warehouse)
    attempts = con.execute("SELECT count(*) FROM load_log WHERE file = ? AND status = 'held'", [fresh.name]).fetchone()[0]
    con.close()
    assert attempts == prefect_flows.INGEST_RETRIES + 1  # the first attempt and each retry
    assert nightly.unprocessed_nights(home, tmp_path) == [folder]
    # The writer finished; the next run of the night takes the file and publishes the night again.
    os.utime(fresh, (1e9, 1e9))
    again = prefect_flows.nightly_comparison(str(folder), None, str(home.root))
    assert again["status"] == "completed"
    taken = {f["file"]: f["status"] for f in again["files"]}
    assert taken[fresh.name] == "accepted"
    clean = Home(tmp_path / "clean")
    for night in NIGHTS:
        nightly.run_night(clean, tiny / "inbox" / night.isoformat())
    assert ledger_state(home)[0] == ledger_state(clean)[0]


# ---------------------------------------------------------------- a schedule on a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_schedule_fires_a_run_on_a_local_prefect_server(tiny: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = os.environ | {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                        "PREFECT_SERVER_API_PORT": str(port), "PREFECT_SERVER_API_HOST": "127.0.0.1",
                        "PREFECT_UI_ENABLED": "false"}
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.symlink(tiny / "inbox" / NIGHTS[0].isoformat(), inbox / NIGHTS[0].isoformat())
    home = tmp_path / "home"
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen([str(bin_dir / "prefect"), "server", "start"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    worker = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("the Prefect server did not start")
        time.sleep(3)
        worker = subprocess.Popen([str(bin_dir / "bidui"), "--home", str(home), "schedule", "--inbox", str(inbox),
                                   "--cron", "* * * * *"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        # Every minute: a next-minute cron is missed when registering the deployment takes longer
        # than the rest of the current minute (it did on a loaded CI machine).
        deadline = time.time() + 300
        published = False
        while time.time() < deadline and not published:
            time.sleep(5)
            if (home / "ledger.sqlite").exists():
                lg = open_ledger(ledger_url(home / "ledger.sqlite"), migrate=False)
                try:
                    with lg.read() as s:
                        published = bool(s.scalars(select(PublishRun)).all())
                except Exception:  # the first run may be creating the schema right now
                    published = False
                finally:
                    lg.close()
        assert published, "no scheduled run published the night"
    finally:
        for p in (worker, server):
            if p is not None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def test_no_id_number_in_any_line_a_nightly_run_prints(tiny: Path, tmp_path: Path) -> None:
    """Everything the CLI prints for a whole night (ingest with its rejects, linking, rules,
    publish, the report) is free of ID numbers."""
    import polars as pl

    bidui = Path(sys.executable).parent / "bidui"
    home = tmp_path / "home"
    out = subprocess.run([str(bidui), "--home", str(home), "run", "--plain", str(tiny / "inbox" / "2026-11-20")],
                         capture_output=True, text=True, check=True)
    report = subprocess.run([str(bidui), "--home", str(home), "report"], capture_output=True, text=True, check=True)
    printed = out.stdout + out.stderr + report.stdout + report.stderr
    ids = pl.read_parquet(tiny / "truth" / "residents.parquet")["id_number"].drop_nulls().to_list()
    assert len(ids) > 1000 and "证件号码一致" in printed
    assert not [i for i in ids if i in printed or i[:15] in printed]


def test_an_older_night_published_after_a_newer_one_changes_nothing(tiny: Path, tmp_path: Path) -> None:
    """Night 2 arrives late, after night 3 ran: its evidence is history. No clue, no event moves
    (seen: evidence_back events and evidence_gone reset when it was published anyway)."""
    home = Home(tmp_path / "late")
    nightly.run_night(home, tiny / "inbox" / "2026-11-20")
    nightly.run_night(home, tiny / "inbox" / "2026-11-22")
    before = ledger_state(home)
    late = nightly.run_night(home, tiny / "inbox" / "2026-11-21")
    assert late.status == "completed" and late.superseded and not late.clues
    assert ledger_state(home) == before
    assert "本夜的结果不再改变线索" in late.markdown()


def test_run_force_applies_a_held_file_and_publishes_the_night_again(tiny: Path, tmp_path: Path) -> None:
    """"to apply it anyway: bidui run --force": after the night ran (held), not a dead end."""
    from typer.testing import CliRunner

    from bidui.cli import app

    home = Home(tmp_path / "force")
    for night in ("2026-11-20", "2026-11-21"):
        nightly.run_night(home, tiny / "inbox" / night)
    third = tiny / "inbox" / "2026-11-22"
    held = nightly.run_night(home, third)
    (cut,) = [f for f in held.files if f["status"] == "held"]
    assert "bidui run --force" in cut["message"]
    runner = CliRunner()
    assert runner.invoke(app, ["--home", str(home.root), "run", "--plain", str(third)]).exit_code == 2  # "already"
    forced = runner.invoke(app, ["--home", str(home.root), "run", "--plain", "--force", str(third)])
    assert forced.exit_code == 0, forced.output
    report = nightly.stored_report(home, date(2026, 11, 22))
    assert report is not None and {f["file"]: f["status"] for f in report.files}[cut["file"]] == "forced"
    con = wh.connect(home.warehouse)
    assert wh.in_force(con, date(2026, 11, 22))[cut["dataset"]] == date(2026, 11, 22)
    con.close()
    assert not report.published_already  # published again, with the forced file
