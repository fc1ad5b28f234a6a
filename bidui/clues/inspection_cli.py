"""`bidui inspect sample` (迎检抽样) and `bidui household print` (一户一档): the same sample and
the same file as the web pages, from the home's ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bidui.home import Home

inspect_app = typer.Typer(help="迎检抽样: a county's sample as the evaluation draws it.", no_args_is_help=True)
household_app = typer.Typer(help="一户一档: a household's (or a village's) printable file.", no_args_is_help=True)


@inspect_app.command("sample")
def sample_cmd(ctx: typer.Context,
               county: Annotated[str, typer.Option("--county", help="The county's name or 12-digit code.")],
               out: Annotated[Path, typer.Option("--out", help="The Excel file to write (.xlsx).")],
               seed: Annotated[int, typer.Option("--seed", help="The random seed: the same seed, the same sample.")] = 1,
               households: Annotated[int, typer.Option(
                   "--households", min=1, help="Households drawn per village at least (all when fewer).")] = 43) -> None:
    """3 townships of the county, a good, a middling and a poor village of each (by the stated
    measure), at least N households per village, their members, every clue with its state and
    verification, and what is still open; written as Excel."""
    from bidui import scope
    from bidui.clues import inspection
    from bidui.clues.cli import _console, _division, _ledger

    home: Home = ctx.obj
    console = _console()
    if out.suffix.lower() != ".xlsx":
        console.print("输出文件须为 .xlsx")
        raise typer.Exit(2)
    ledger = _ledger(home)
    try:
        with ledger.read() as s:
            code, name = _division(s, county)
            if scope.level(code) != "county":
                console.print(f"“{name}”不是县级行政区划，请给出县（区、市）的名称或代码")
                raise typer.Exit(1)
            drawn = inspection.draw(s, code, seed, households)
            inspection.write_xlsx(drawn, out)
    finally:
        ledger.close()
    n = inspection.summary(drawn)
    for t in drawn.townships:
        console.print(f"{drawn.names.get(t.code, '')}：" + "；".join(
            f"{drawn.names.get(v.score.code, '')}（{v.grade}，抽 {len(v.households)} 户）" for v in t.villages))
    if not drawn.townships:
        console.print(f"{name}还没有建档立卡户数据（每晚比对发布后更新）")
    console.print(f"抽中 {n['townships']} 个乡镇、{n['villages']} 个村、{n['households']} 户；线索 {n['clues']} 条，"
                  f"未办结 {n['open']} 条 → {out}")


@household_app.command("print")
def print_cmd(ctx: typer.Context,
              out: Annotated[Path, typer.Option("--out", help="The file to write: .html, or .pdf (headless Chromium).")],
              code: Annotated[str | None, typer.Argument(help="The household's 户编号 (or 户号).")] = None,
              village: Annotated[str | None, typer.Option(
                  "--village", help="Every household of a village (its name or 12-digit code) in one file.")] = None,
              scope_code: Annotated[str | None, typer.Option(
                  "--scope", help="Print only what a user of this division would see (a township's code).")] = None) -> None:
    """A household's file (members, every clue over time with its evidence, verifications with
    signatures, attachments as thumbnails, history), or a whole village's; the HTML stands alone."""
    from bidui import scope
    from bidui.clues import household_file
    from bidui.clues.cli import _console, _division, _ledger

    home: Home = ctx.obj
    console = _console()
    if (code is None) == (village is None):
        console.print("请给出一个户编号，或用 --village 给出一个村")
        raise typer.Exit(2)
    if out.suffix.lower() not in (".html", ".htm", ".pdf"):
        console.print("输出文件须为 .html 或 .pdf")
        raise typer.Exit(2)
    if out.suffix.lower() == ".pdf" and household_file.chromium() is None:
        console.print("本机没有安装 Chromium 浏览器，无法生成 PDF。请改用 .html 输出后用浏览器打印，"
                      "或由管理员安装 Chromium（Debian/Ubuntu：apt-get install chromium）")
        raise typer.Exit(1)
    ledger = _ledger(home)
    try:
        with ledger.read() as s:
            under = _division(s, scope_code)[0] if scope_code else None  # the operator's command sees all
            names = household_file.all_names(s)
            if village is not None:
                vcode, vname = _division(s, village)
                if scope.level(vcode) != "village":
                    console.print(f"“{vname}”不是村级行政区划")
                    raise typer.Exit(1)
                files = household_file.build_village(s, vcode, under, names)
                title = f"{vname}一户一档（{len(files)} 户）"
            else:
                found = household_file.build(s, code, under, names)  # type: ignore[arg-type]
                files = [found] if found is not None else []
                title = f"户疑点线索核实档案 {code}"
            if not files:
                console.print("没有找到这一户" if village is None else "这个村没有可打印的农户")
                raise typer.Exit(1)
            html = household_file.render_html(home, files, names, title)
    finally:
        ledger.close()
    if out.suffix.lower() == ".pdf":
        try:
            household_file.write_pdf(html, out)
        except household_file.PdfError as e:
            console.print(str(e))
            raise typer.Exit(1) from None
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    clues = sum(len(f.records) for f in files)
    console.print(f"一户一档：{len(files)} 户，线索 {clues} 条 → {out}")


def register(app: typer.Typer) -> None:
    """Adds this module's commands to `app`."""
    app.add_typer(inspect_app, name="inspect")
    app.add_typer(household_app, name="household")
