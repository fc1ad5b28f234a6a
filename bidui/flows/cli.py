"""`bidui run` (one night, end to end) and `bidui schedule` (serve the nightly and follow-up flows)."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bidui.clitools import cli_date, locked_command
from bidui.errors import night_exit_code
from bidui.flows.nightly import NightReport
from bidui.home import Home


def _console():
    from bidui.cli import console

    return console


def print_report(report: NightReport) -> None:
    """The night's report on the console, in Chinese: names, not codes (bidui.clues.present words it)."""
    from bidui.clues.present import (
        PUBLISH_LABELS,
        RUN_STATUS_LABELS,
        STEP_LABELS,
        changes_text,
        defects_text,
        files_outcome_text,
        links_text,
        model_lines,
        relinks_text,
        rules_scope_text,
    )

    console = _console()
    console.print(f"比对 {report.night}：{RUN_STATUS_LABELS.get(report.status, report.status)}"
                  + ("（本夜已运行过，未重复运行）" if report.status == "already" else ""))
    if outcome := files_outcome_text(report.files):
        console.print(outcome)
    files = Table(title="数据集")
    for col in ("文件", "数据集", "结果", "读取", "入库", "拒收", "说明"):
        files.add_column(col, overflow="fold")
    for f in report.dataset_rows():
        # File names and messages come from the delivery: text, never rich markup (`[/i]` crashed the run).
        files.add_row(escape(f["文件"]), f["数据集"], f["结果"], f"{f['读取']:,}", f"{f['入库']:,}", f"{f['拒收']:,}",
                      escape(f["说明"]))
    console.print(files)
    if report.changes:
        console.print("数据变化（与上一版相比）：\n" + "\n".join(f"  {line}" for line in changes_text(report.changes, report.files)))
    console.print("身份关联：" + links_text(report.links))
    if report.relinks:
        console.print("与上一夜相比：\n" + "\n".join(f"  {line}" for line in relinks_text(report.relinks)))
    for line in model_lines(report.model):
        console.print(line)
    if report.quality:
        console.print("数据质量：" + "；".join(escape(line) for line in defects_text(report.quality)))
    clues = Table(title="线索（按规则）")
    counts = ("new", "seen", "gone", "reraised", "suppressed", "withheld")
    for col in ("规则", "状态", *(PUBLISH_LABELS[k] for k in counts)):
        clues.add_column(col)
    for r in report.clue_rows():
        clues.add_row(r["规则"], r["状态"], *(f"{r[k]:,}" for k in counts))
    console.print(clues)
    if scope := rules_scope_text(report.rules_scope):
        console.print(scope)
    for title, status, why in report.skipped_rules():
        console.print(f"{title}：{status}（{why}）" if why else f"{title}：{status}")
    if report.withheld:
        console.print(f"{report.withheld:,} 条新线索暂不下发：本人的记录今晚有不合规的值")
    if report.superseded:
        console.print("已发布更晚一夜的比对结果：本夜的结果不再改变线索")
    if report.status == "partial":
        console.print("有文件仍在写入，已暂缓：再次运行本夜时入库")
    if report.new_by_township:
        console.print("新增线索（按乡镇）：" + "，".join(f"{t} {n}" for t, n in report.township_rows()))
    if report.published_already:
        console.print("线索库中已有本夜的结果：没有改变")
    console.print("步骤耗时：" + "，".join(f"{STEP_LABELS.get(k, k)} {v:.1f} 秒" for k, v in report.timings.items()))


@contextlib.contextmanager
def _no_tracebacks_on_screen() -> Iterator[None]:
    """Prefect logs a failed task's or flow's traceback to the console; bidui.cli.main() prints
    the one line for a failure an operator can act on and keeps the traceback in the home's log
    (or shows it, for a bug), so the console gets the log lines without their tracebacks."""
    patched: list[tuple[logging.Handler, object]] = []
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ != "PrefectConsoleHandler":
            continue
        original = handler.format

        def format_without(record: logging.LogRecord, _original=original) -> str:
            if record.exc_info or record.exc_text:
                record = copy.copy(record)  # the API handler still gets the traceback
                record.exc_info, record.exc_text = None, None
            return _original(record)

        handler.format = format_without  # type: ignore[method-assign]
        patched.append((handler, original))
    try:
        yield
    finally:
        for handler, original in patched:
            handler.format = original  # type: ignore[method-assign]


@locked_command(create_home=True)
def run_cmd(ctx: typer.Context,
            folder: Annotated[Path, typer.Argument(help="The night's inbox folder, inbox/YYYY-MM-DD.", exists=True,
                                                   file_okay=False)],
            night: Annotated[str | None, typer.Option("--date", help="The night (default: the folder's name).")] = None,
            plain: Annotated[bool, typer.Option("--plain", help="Run the steps without Prefect.")] = False,
            force: Annotated[bool, typer.Option("--force", help="Apply files that would be held, and run and publish "
                                                "the night again even if it ran.")] = False,
            from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Normalise every delivered row and link "
                                                       "every record again: carry nothing from the night before.")]
            = False) -> None:
    """Run the nightly comparison for one night: ingest, link, rules, publish, and the report.
    No Prefect server is needed (an ephemeral one is started unless --plain). Exit 0: every file
    accepted; 2: a file was refused or held; 3: another run on this home did not finish within
    --wait (codes 4-7: see `bidui.errors`)."""

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from bidui.flows import nightly

    home: Home = ctx.obj
    day = cli_date(night) if night else None
    if plain:
        console = _console()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      disable=not console.is_terminal, transient=True) as bar:
            tasks = {}

            def on_step(step: str, phase: str) -> None:
                if phase == "start":
                    tasks[step] = bar.add_task(f"{step}…", total=1)
                else:
                    bar.update(tasks[step], completed=1, description=f"{step} ✓")

            report = nightly.run_night(home, folder, day, on_step, force=force, from_scratch=from_scratch)
    else:
        from bidui.flows.prefect_flows import nightly_comparison

        with _no_tracebacks_on_screen():
            result = nightly_comparison(str(folder), day.isoformat() if day else None, str(home.root), force=force,
                                        from_scratch=from_scratch)
        report = nightly.NightReport(**result)
    print_report(report)
    raise typer.Exit(night_exit_code(report.files))


def schedule_cmd(ctx: typer.Context,
                 inbox: Annotated[Path, typer.Option("--inbox", help="The inbox holding YYYY-MM-DD night folders.",
                                                     exists=True, file_okay=False)],
                 cron: Annotated[str, typer.Option("--cron", help="When the nightly comparison runs (Asia/Shanghai).")]
                 = "0 2 * * *",
                 follow_up_cron: Annotated[str, typer.Option("--follow-up-cron", help="When the daily follow-up runs.")]
                 = "0 8 * * *") -> None:
    """Serve the schedules: the nightly comparison (every unprocessed night folder of the inbox) and
    the daily follow-up (overdue list; every third day the 三天一报 file). Needs a Prefect server:
    `prefect server start`, and PREFECT_API_URL pointing at it. Runs until stopped."""
    from bidui.flows.prefect_flows import serve_schedules

    home: Home = ctx.obj.ensure()
    if not os.environ.get("PREFECT_API_URL"):
        _console().print("PREFECT_API_URL is not set: start `prefect server start` and set "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api (see the README)")
        raise typer.Exit(1)
    serve_schedules(inbox.resolve(), home.root.resolve(), cron, follow_up_cron)


def serve_cmd(ctx: typer.Context, host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
              port: Annotated[int, typer.Option("--port")] = 8000,
              workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 1) -> None:
    """Start the web app (township inbox, verify and sign, county review, dashboards)."""
    from bidui.web.app import serve

    home: Home = ctx.obj.ensure()
    _console().print(f"bidui web on http://{host}:{port} (ledger: {home.ledger})")
    serve(home, host, port, workers)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    app.command("run")(run_cmd)
    app.command("schedule")(schedule_cmd)
