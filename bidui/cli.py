"""The `bidui` command. Subcommands live with the package that does the work; this file only
parses arguments and prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bidui.home import Home

app = typer.Typer(help="比对 bidui: nightly comparison of department extracts with the poverty register.",
                  no_args_is_help=True, add_completion=False)
console = Console()


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", envvar="BIDUI_HOME",
                                              help="Folder for the warehouse, ledger and bidui.toml (default ./data).")] = None,
) -> None:
    ctx.obj = Home.resolve(home)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write inbox/<date>/ and truth/ into.")],
    size: Annotated[str, typer.Option("--size", help="tiny (~2 k residents), small (~50 k), medium (~1 M), large (~4 M).")] = "small",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same prefecture, byte for byte.")] = 1,
    nights: Annotated[int, typer.Option("--nights", min=1, help="Consecutive nights to write.")] = 1,
    start: Annotated[str, typer.Option("--start", help="Date of the first night (YYYY-MM-DD).")] = "2026-11-20",
) -> None:
    """Build a synthetic prefecture with an answer key (see bidui/synth/README.md)."""
    from bidui.synth.config import SIZES, SynthConfig
    from bidui.synth.generate import generate

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}", param_hint="--size")
    with console.status(f"building the {size} prefecture (seed {seed}, {nights} night(s))…"):
        summary = generate(out, SynthConfig(size=size, seed=seed, nights=nights, start=start))
    table = Table(title=f"synthetic prefecture → {out}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("residents", "register_households", "register_members", "department_rows", "seconds",
                "peak_rss_mb"):
        table.add_row(key.replace("_", " "), f"{summary[key]:,}" if isinstance(summary[key], int) else str(summary[key]))
    table.add_row("nights", ", ".join(summary["nights"]))
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
