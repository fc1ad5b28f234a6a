"""`bidui rules whatif`: 阈值推演 on the command line (bidui/rules/whatif.py does the work)."""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated

import typer


def whatif_cmd(
    ctx: typer.Context,
    night: Annotated[str, typer.Option("--date", help="The night to replay (YYYY-MM-DD).")],
    settings: Annotated[list[str] | None, typer.Option(
        "--set", metavar="PARAM=VALUE",
        help="A rule parameter's value for the replay, e.g. medical_household_threshold=20000 or "
             "dangerous_grades=D (a list: C,D). Repeat for several.")] = None,
    scope_code: Annotated[str | None, typer.Option(
        "--scope", help="Only the townships under this division code (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Write the result as JSON to standard output.")] = False,
) -> None:
    """Replay a night's rules with other parameters, without publishing or changing the warehouse:
    clue counts per rule and township, added and removed against the night as published, and the
    属实率 of the affected rules' past clues. Exit 2: a bad parameter or night; 3: a run in progress."""
    from rich.console import Console
    from rich.table import Table

    from bidui import config, scope
    from bidui.clues.present import parameter_value_text, parameter_words
    from bidui.errors import require_home
    from bidui.home import Home
    from bidui.rules.whatif import WarehouseBusy, WhatIfError, parse_settings, replay

    home: Home = ctx.obj
    require_home(home.root)
    try:
        try:
            day = date.fromisoformat(night)
        except ValueError:
            raise WhatIfError(f"日期 {night!r} 不对，应为 YYYY-MM-DD") from None
        if scope_code and not scope.is_code(scope_code):
            raise WhatIfError(f"范围 {scope_code!r} 不是 12 位区划代码")
        params = config.load(home.config).get("rules", {}).get("parameters", {})
        changes = parse_settings(settings or [], params)
        result = replay(home, day, changes, scope_code)
    except WarehouseBusy as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(3) from None
    except WhatIfError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=1) + "\n")
        return
    console = Console(width=None if Console().is_terminal else 200)
    console.print(f"阈值推演 {day.isoformat()}（未发布，数据仓库未改动）", markup=False)
    if result.changes:
        for name, value in result.changes.items():
            label, unit = parameter_words(name)
            console.print(f"  {label}：{parameter_value_text(params[name])} → {parameter_value_text(value)}{unit}",
                          markup=False)
    else:
        console.print("  未改任何参数：按当前配置重放全部规则，与发布时对照。", markup=False)
    console.print(f"新增线索 {result.added:,} 条，减少 {result.removed:,} 条", markup=False)
    table = Table(title="按规则")
    for col in ("疑点", "发布时", "推演后", "新增", "减少", "以往核实", "以往属实率"):
        table.add_column(col, justify="left" if col == "疑点" else "right")
    for row in result.by_rule.values():
        rate = f"{row['true_rate']:.1%}" if row["true_rate"] is not None else "—"
        past = (str(row["verified"]), rate) if row["affected"] else ("", "")
        table.add_row(row["title"], f"{row['published']:,}", f"{row['whatif']:,}", f"{row['added']:,}",
                      f"{row['removed']:,}", *past)
    console.print(table)
    table = Table(title="按乡镇")
    for col in ("县（区）", "乡镇", "发布时", "推演后", "新增", "减少"):
        table.add_column(col, justify="left" if col in ("县（区）", "乡镇") else "right")
    for row in result.by_township.values():
        table.add_row(row.get("county", ""), row["name"] or "（未知乡镇）", f"{row['published']:,}",
                      f"{row['whatif']:,}", f"{row['added']:,}", f"{row['removed']:,}")
    console.print(table)
    for note in result.notes:
        console.print(note, markup=False)


def register(app: typer.Typer) -> None:
    """Adds `whatif` to the `rules` group."""
    app.command("whatif")(whatif_cmd)
