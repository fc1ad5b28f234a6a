"""Prefect flows: the nightly comparison (tasks around bidui.flows.nightly's steps), the daily
follow-up, and the schedules that serve them. The flows stay thin: the logic is in the packages.

A one-off run needs no Prefect server (Prefect starts an ephemeral one); a schedule needs a
running server (`prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api).

A night with a file refused or held ends in the Completed-type state named "Held" (HELD_STATE):
the night ran and its clues are published, but a dataset kept an older snapshot — which a
schedule must be able to alert on (an automation on the event `prefect.flow-run.Held`). Called
as a function, the flow still returns its report. Each night holds the home's run lock."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, State

from bidui.errors import not_ok_files
from bidui.flows import nightly
from bidui.home import Home
from bidui.runlock import configured_wait, run_lock

TIMEZONE = "Asia/Shanghai"
HELD_STATE = "Held"


# Retries where a failure can be transient: a file still being copied into the inbox, the ledger
# busy or its PostgreSQL restarting. Linking and the rules are deterministic: a retry would fail again.
INGEST_RETRIES = 2


class StillArrivingError(RuntimeError):
    """A file of the night was still being written: the ingest task is tried again."""


@task(name="ingest", retries=INGEST_RETRIES, retry_delay_seconds=30)
def ingest_task(home: str, folder: str, night: date, force: bool = False, carry: bool = True) -> list[dict]:
    from prefect.runtime import task_run

    files = nightly.ingest_step(Home(Path(home)), Path(folder), night, force, carry)
    still = [f["file"] for f in files if f.get("incomplete")]
    # Files already stored are not read again by the retry; on the last attempt the file stays
    # held and the night ends partial (its next run takes it).
    if still and (task_run.run_count or 1) <= INGEST_RETRIES:
        raise StillArrivingError(f"still being written: {', '.join(still)}; trying again")
    return files


@task(name="link")
def link_task(home: str, night: date, relink_all: bool = False) -> dict[str, dict]:
    return nightly.link_step(Home(Path(home)), night, relink_all)


@task(name="rules")
def rules_task(home: str, night: date, whole: bool = False) -> dict[str, dict]:
    return nightly.rules_step(Home(Path(home)), night, whole)


@task(name="publish", retries=3, retry_delay_seconds=20)
def publish_task(home: str, night: date, again: bool = False) -> dict:
    return nightly.publish_step(Home(Path(home)), night, again)


def _artifacts(report: nightly.NightReport) -> None:
    key = f"night-{report.night}"
    create_markdown_artifact(report.markdown(), key=f"{key}-report", description=f"比对运行报告 {report.night}")
    if report.files:
        create_table_artifact(report.dataset_rows(), key=f"{key}-datasets", description="数据集入库情况")
    if report.clues:
        create_table_artifact(report.clue_rows(), key=f"{key}-clues", description="线索（按规则）")


def held_message(files: list[dict], night: str) -> str | None:
    """What the Held state says: which files, and that their datasets kept the last snapshot.
    File names and statuses only (a message must not carry a value from a file)."""
    bad = not_ok_files(files)
    if not bad:
        return None
    shown = ", ".join(f"{f['file'] or f['dataset']} ({f['status']})" for f in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    return (f"night {night}: {len(bad)} file(s) refused or held: {shown}{more}; their datasets keep the snapshot "
            "in force (see the run report)")


def _night_state(report: dict) -> State | dict:
    message = held_message(report["files"], report["night"])
    if message is None:
        return report
    # A Completed-type state: the night did run (nightly-inbox goes on to the next one, and the
    # caller gets the report back), under a name an automation or the UI can single out.
    return Completed(name=HELD_STATE, message=message, data=report)


@flow(name="nightly-comparison", log_prints=True)
def nightly_comparison(night_dir: str, run_date: str | None = None, home: str | None = None,
                       lock_wait: float | None = None, force: bool = False, from_scratch: bool = False) -> dict:
    """Ingest → link → rules → publish for one night folder, with a run report as artifacts.
    Ends Completed, or Completed named "Held" when a file was refused or held; either way the
    call returns the report (a dict). Waits up to `lock_wait` seconds (default [run] lock_wait)
    for another run on the home, then fails with RunInProgress. `from_scratch`: normalise every row and
    link every record again (nothing carried from the night before)."""
    h = Home.resolve(Path(home) if home else None).ensure()
    with run_lock(h.root, configured_wait(h.root, lock_wait), command="nightly-comparison"):
        report = _nightly_comparison(h, Path(night_dir), run_date, force, from_scratch)
    return _night_state(report)  # type: ignore[return-value]  # Prefect hands the caller the state's data


def _nightly_comparison(h: Home, folder: Path, run_date: str | None, force: bool = False,
                        from_scratch: bool = False) -> dict:
    logger = get_run_logger()
    from bidui.connectors.ingest import night_of

    night = date.fromisoformat(run_date) if run_date else night_of(folder)
    root = str(h.root)

    def tasks(again: bool) -> dict:  # again: the night publishes again (see run_night)
        return {"ingest": lambda: ingest_task(root, str(folder), night, force, not from_scratch),
                "link": lambda: link_task(root, night, from_scratch),
                "rules": lambda: rules_task(root, night, from_scratch),
                "publish": lambda: publish_task(root, night, again)}

    def on_step(step: str, phase: str) -> None:
        logger.info("%s %s", step, "started" if phase == "start" else "done")

    report = nightly.run_night(h, folder, night, on_step, tasks, force, from_scratch=from_scratch)
    if report.status == "already":
        logger.info("night %s already completed: nothing to do", night)
    else:
        _artifacts(report)
    return report.__dict__


@flow(name="nightly-inbox")
def nightly_inbox(inbox: str, home: str | None = None, lock_wait: float | None = None) -> list[str]:
    """Every night folder of the inbox without a completed run, oldest first (so a night missed
    while the server was down is not skipped; publishing an older night after a newer one
    would change nothing). Ends "Held" when any of its nights did; returns the nights run."""
    h = Home.resolve(Path(home) if home else None).ensure()
    done, held = [], []
    # Around the whole loop: which nights are unprocessed must not change under us.
    with run_lock(h.root, configured_wait(h.root, lock_wait), command="nightly-inbox"):
        for folder in nightly.unprocessed_nights(h, Path(inbox)):
            report = nightly_comparison(str(folder), None, str(h.root))
            done.append(folder.name)
            message = held_message(report["files"], report["night"])
            if message:
                held.append(message)
    if held:
        return Completed(name=HELD_STATE, message="; ".join(held), data=done)  # type: ignore[return-value]
    return done


@flow(name="follow-up")
def follow_up(home: str | None = None, today: str | None = None) -> dict:
    """The daily follow-up: the overdue list, and every third day the 三天一报 report file
    (`<home>/reports/三天一报_<date>.xlsx`)."""
    from bidui.clues import report
    from bidui.clues.db import ledger_url, open_ledger

    h = Home.resolve(Path(home) if home else None)
    day = date.fromisoformat(today) if today else date.today()
    ledger = open_ledger(ledger_url(h.ledger))
    try:
        with ledger.read() as s:
            rep = report.build(s, None, day)
            three = report.three_days(s, None, day) if day.toordinal() % 3 == 0 else None
    finally:
        ledger.close()
    rows = rep.overdue.head(500).with_columns(rep.overdue["due_date"].head(500).cast(str)).to_dicts()
    create_table_artifact(rows or [{"说明": "没有逾期线索"}], key=f"overdue-{day.isoformat()}",
                          description=f"逾期未核实线索 {day.isoformat()}（{rep.overdue.height} 条）")
    out = None
    if three is not None:
        (h.root / "reports").mkdir(parents=True, exist_ok=True)
        out = h.root / "reports" / f"三天一报_{day.isoformat()}.xlsx"
        report.write_xlsx(three, out)
    return {"overdue": rep.overdue.height, "three_day_report": str(out) if out else None}


def deployments(inbox: Path, home: Path, cron: str, follow_up_cron: str) -> list:
    from prefect.schedules import Cron

    return [
        nightly_inbox.to_deployment(name="nightly", schedules=[Cron(cron, timezone=TIMEZONE)],
                                    parameters={"inbox": str(inbox), "home": str(home)}),
        follow_up.to_deployment(name="daily", schedules=[Cron(follow_up_cron, timezone=TIMEZONE)],
                                parameters={"home": str(home)}),
    ]


def serve_schedules(inbox: Path, home: Path, cron: str = "0 2 * * *", follow_up_cron: str = "0 8 * * *") -> None:
    from prefect import serve

    serve(*deployments(inbox, home, cron, follow_up_cron))

