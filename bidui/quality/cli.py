"""`bidui quality report`: the data-quality bulletin of a night as a workbook (issue 19)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from bidui.clitools import cli_date, locked_command, out_file
from bidui.home import Home

quality_app = typer.Typer(help="数据质量通报：各部门报送数据的质量（按夜、按部门）。", no_args_is_help=True)


def department_code(name: str) -> str:
    """A department by its Chinese name (公安, 卫健 …) or its code."""
    from bidui.clues.present import DEPARTMENT_LABELS
    from bidui.quality.bulletin import departments

    wanted = name.strip()
    for code in departments():
        if wanted in (code, DEPARTMENT_LABELS.get(code)):
            return code
    known = "、".join(DEPARTMENT_LABELS.get(c, c) for c in departments())
    raise typer.BadParameter(f"没有这个部门：{name}（可选：{known}）", param_hint="--department")


def stored_bulletins(con: duckdb.DuckDBPyConnection, up_to: date) -> dict[date, dict]:
    """Each night's bulletin as its run kept it; a night run before the bulletin existed is counted
    now (its links and snapshots are still in the warehouse)."""
    from bidui.flows.nightly import RUNS_SCHEMA, NightReport
    from bidui.matching.quality import night_defects
    from bidui.quality.bulletin import night_bulletin

    con.execute(RUNS_SCHEMA)
    nights = [n for n, in con.execute("SELECT DISTINCT night FROM load_log WHERE night <= ? ORDER BY night",
                                      [up_to]).fetchall()]
    kept = {n: NightReport.from_json(r).bulletin for n, r in con.execute(
        "SELECT night, report FROM nightly_runs WHERE night <= ? AND status IN ('completed', 'partial')",
        [up_to]).fetchall()}
    return {n: kept.get(n) or night_bulletin(con, n, night_defects(con, n)) for n in nights}


@quality_app.command("report")
@locked_command()
def report_cmd(ctx: typer.Context,
               night: Annotated[str, typer.Option("--date", help="比对日期 YYYY-MM-DD")],
               out: Annotated[Path, typer.Option("--out", help="写出的 Excel 文件（.xlsx）")],
               department: Annotated[str | None, typer.Option(
                   "--department", help="只通报这个部门（中文名如 公安、卫健，或其代码），并列出它的问题记录")] = None,
               ) -> None:
    """一夜的数据质量通报（Excel）：各部门汇总及较上一次、较首次的变化；指定部门时附问题记录清单（已遮蔽）。"""
    from bidui.connectors import warehouse
    from bidui.quality.bulletin import problems
    from bidui.quality.report import build, write_xlsx

    day = cli_date(night)
    out_file(out, ".xlsx")
    code = department_code(department) if department else None
    home: Home = ctx.obj
    con = warehouse.connect(home.warehouse)
    try:
        nights = stored_bulletins(con, day)
        if not nights.get(day):
            typer.echo(f"{day.isoformat()} 没有接收过任何数据，无法通报。", err=True)
            raise typer.Exit(1)
        bulletin = build(nights, day, code)
        written = write_xlsx(bulletin, out, problems(con, day, code) if code else None)
    finally:
        con.close()
    for d in bulletin.departments:
        typer.echo(f"{d.title}：问题记录 {d.now['problem_rows']:,}")
    typer.echo(f"数据质量通报 {day.isoformat()}" + (f"，问题记录清单 {written:,} 条" if code else "") + f" → {out}")


def register(app: typer.Typer) -> None:
    """Adds this module's commands to `app`."""
    app.add_typer(quality_app, name="quality")
