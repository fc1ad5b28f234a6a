"""The `bidui` command. Subcommands live with the package that does the work; this file only
parses arguments and prints."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bidui.clitools import (
    Group,
    check_night_folder,
    checked_first,
    folder_night,
    locked_command,
    use_bidui_classes,
)
from bidui.errors import HomeMissing, require_home
from bidui.home import Home

# Group: a usage error exits 1 (bad input), not click's 2 (README: What a scheduler can act on).
app = typer.Typer(help="比对 bidui: nightly comparison of department extracts with the poverty register.",
                  no_args_is_help=True, add_completion=False, cls=Group)
# Off a terminal (CI logs, pipes) tables get room rather than folding every cell.
console = Console(width=None if Console().is_terminal else 200)

# Commands that only read a home: a missing one is a wrong --home, not a fresh start (they would
# otherwise create an empty ledger or warehouse there and fail further on).
READS_A_HOME = frozenset({"loads", "link", "links", "publish", "clues", "report", "users", "rules", "serve", "quality", "inspect", "household"})
# What main() needs to report a failure after the command's context is gone.
_invoked: dict[str, object] = {}


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", envvar="BIDUI_HOME",
                                              help="Folder for the warehouse, ledger and bidui.toml (default ./data).")] = None,
) -> None:
    ctx.obj = Home.resolve(home)
    _invoked.update(home=ctx.obj, command=ctx.invoked_subcommand)
    asks_for_help = "--help" in sys.argv[1:]  # the help of a command needs no home
    if ctx.invoked_subcommand in READS_A_HOME and not ctx.obj.exists() and not asks_for_help:
        # Only `bidui run`, `ingest` and the like start a home; a command that reads one and finds
        # none is pointed at the wrong place (a bare ./data would get an empty ledger and zeros).
        raise HomeMissing(ctx.obj.root)


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


@app.command()
@locked_command(create_home=True, check=check_night_folder)
def ingest(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The night's inbox folder, inbox/YYYY-MM-DD.", exists=True, file_okay=False)],
    night: Annotated[str | None, typer.Option("--date", help="The night (default: the folder's name).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Apply files that would be held.")] = False,
) -> None:
    """Load a night's extracts into the warehouse. Exit 0: all accepted; 1: bad input; 2: any
    refused or held; 3: another run on this home did not finish within --wait."""
    from rich.progress import BarColumn, Progress, TextColumn

    from bidui import config
    from bidui.connectors import warehouse
    from bidui.connectors.ingest import Limits, exit_code, ingest_night

    home: Home = ctx.obj
    day = folder_night(folder, night)
    limits = Limits.from_config(config.load(home.config))
    con = warehouse.connect(home.warehouse)
    files = [p for p in folder.iterdir() if p.is_file()]
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} files"),
                  console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task(f"ingest {day}", total=len(files))

        def step(name: str) -> None:
            bar.update(task, description=f"ingest {day}: {name}", advance=0)

        outcomes = ingest_night(con, folder, day, force=force, limits=limits,
                                progress=lambda name: (step(name), bar.advance(task)))
    table = Table(title=f"ingest {day} → {home.warehouse}")
    for col in ("file", "dataset", "status", "read", "loaded", "rejected", "s", "message"):
        table.add_column(col, justify="right" if col in ("read", "loaded", "rejected", "s") else "left",
                         overflow="fold")
    style = {"accepted": "green", "forced": "yellow", "held": "yellow", "refused": "red", "duplicate": "dim",
             "missing": "dim"}
    for o in outcomes:
        table.add_row(escape(o.file), o.dataset or "", f"[{style.get(o.status, '')}]{o.status}", f"{o.rows_read:,}",
                      f"{o.rows_loaded:,}", f"{o.rows_rejected:,}", f"{o.seconds:.1f}", escape(o.message))
    console.print(table)
    con.close()
    raise typer.Exit(exit_code(outcomes))


@app.command()
def loads(
    ctx: typer.Context,
    night: Annotated[str | None, typer.Option("--date", help="Only this night.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Print the load log."""
    import json

    from bidui.connectors import warehouse

    home: Home = ctx.obj
    day = _night(night) if night else None
    if not home.warehouse.exists():
        console.print(f"no warehouse at {home.warehouse} yet: run bidui ingest first")
        raise typer.Exit(1)
    con = warehouse.connect(home.warehouse)
    log = warehouse.load_log(con, day)
    con.close()
    if as_json:
        for row in log.iter_rows(named=True):
            print(json.dumps(row, ensure_ascii=False, default=str))
        return
    from bidui.clues.load_messages import file_message
    from bidui.clues.present import LOAD_STATUS_LABELS, dataset_title

    # The data engineer reads the table: Chinese headings, dataset names and statuses; the
    # format, encoding and completeness evidence stay in --json (and the log) for the machine.
    table = Table(title="入库记录")
    for col in ("编号", "日期", "文件", "数据", "状态", "读入行数", "入库行数", "拒收行数", "用时（秒）", "说明"):
        table.add_column(col, overflow="fold")
    for r in log.iter_rows(named=True):
        table.add_row(str(r["load_id"]), str(r["night"]), escape(r["file"] or ""), dataset_title(r["dataset"]),
                      LOAD_STATUS_LABELS.get(r["status"], "其他"), f"{r['rows_read'] or 0:,}",
                      f"{r['rows_loaded'] or 0:,}", f"{r['rows_rejected'] or 0:,}", f"{r['seconds'] or 0:.1f}",
                      escape(file_message(r["file"], r["status"], r["message"])))  # files and messages: not markup
    console.print(table)


def _write_csv(frame, out: Path) -> None:
    """CSV for people who open it in Excel: UTF-8 with a byte-order mark, and no text cell that
    Excel would run as a formula (department data can hold "=HYPERLINK(…)")."""
    from bidui.text import neutralise_formulas

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        f.write(b"\xef\xbb\xbf")
        neutralise_formulas(frame).write_csv(f)


def _night(value: str) -> date:
    from bidui.clitools import cli_date

    return cli_date(value)


@app.command()
@locked_command()
def link(
    ctx: typer.Context,
    night: Annotated[str, typer.Option("--date", help="The night whose snapshots in force are linked.")],
    retrain: Annotated[bool, typer.Option("--retrain", help="Train the model again (it is kept between nights).")] = False,
    relink_all: Annotated[bool, typer.Option("--relink-all", help="Link every record again: carry no sure link from "
                                             "the night before.")] = False,
) -> None:
    """Link every person-bearing record in force to a hukou person: exact ID, then probabilistic.
    The Fellegi–Sunter model of an earlier night is kept unless --retrain, or unless the night's
    candidates drifted from those it was trained on. The night before's sure links are carried
    where nothing they depend on changed, unless --relink-all."""
    from bidui import config
    from bidui.connectors import warehouse
    from bidui.matching import decisions
    from bidui.matching.dedupe import register_duplicates, store_duplicates
    from bidui.matching.link import METHODS, Thresholds, link_night

    home: Home = ctx.obj
    day = _night(night)
    if not home.warehouse.exists():
        console.print(f"no warehouse at {home.warehouse}: run bidui ingest first")
        raise typer.Exit(1)
    con = warehouse.connect(home.warehouse)
    with console.status(f"linking {night}…"):
        try:
            decisions.refresh(con, home)  # the townships' verdicts on links, from the ledger
            result = link_night(con, day, Thresholds.from_config(config.load(home.config)), retrain=retrain,
                                carry=not relink_all)
        except LookupError as e:
            console.print(str(e))
            raise typer.Exit(1) from e
        dups = register_duplicates(con, day)
        store_duplicates(con, day, dups)
    con.close()
    table = Table(title=f"links {night} ({result.seconds:.1f} s)")
    table.add_column("method")
    table.add_column("records", justify="right")
    for method in METHODS:
        table.add_row(method, f"{result.counts.get(method, 0):,}")
    console.print(table)
    if result.model_version is not None:
        from bidui.clues.present import model_text

        console.print(model_text(result.model_version, result.model_trained_at, result.trained, result.model_night))
    groups = dups["group_key"].n_unique() if dups.height else 0
    console.print(f"register: {groups:,} person(s) listed more than once ({dups.height:,} rows)")
    if result.skipped:
        console.print(f"no snapshot in force (skipped): {', '.join(result.skipped)}")


links_app = typer.Typer(help="Links of a night.", no_args_is_help=True)
app.add_typer(links_app, name="links")


@links_app.command("export")
def links_export(
    ctx: typer.Context,
    night: Annotated[str, typer.Option("--date")],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (UTF-8 with BOM, opens in Excel).")],
) -> None:
    """One row per person-bearing record: how it was linked, to whom, with what score."""
    from bidui.connectors import warehouse
    from bidui.matching.link import export

    home: Home = ctx.obj
    con = warehouse.connect(home.warehouse)
    frame = export(con, _night(night))
    con.close()
    if frame.is_empty():
        console.print(f"no links for {night}: run bidui link --date {night} first")
        raise typer.Exit(1)
    _write_csv(frame, out)
    console.print(f"{frame.height:,} rows → {out}")


rules_app = typer.Typer(help="The comparison rules (bidui/sql/rules, <home>/rules).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("list")
def rules_list(ctx: typer.Context) -> None:
    """Code, title, category, inputs, parameters (with their values) and whether enabled."""
    from bidui import config
    from bidui.rules.engine import load_rules

    home: Home = ctx.obj
    cfg = config.load(home.config)
    params = cfg.get("rules", {}).get("parameters", {})
    disabled = set(cfg.get("rules", {}).get("disabled", []))
    rules, _ = load_rules(home.root / "rules")
    from bidui.clues.present import CATEGORY_LABELS, dataset_title

    # The task force reads it: Chinese headings, categories and dataset names. The code and the
    # parameter names stay as written: they are what bidui.toml and `--rule` take.
    table = Table(title="比对规则")
    for col in ("规则代码", "规则名称", "类别", "比对数据", "参数（配置名=值）", "是否启用"):
        table.add_column(col, overflow="fold")
    for r in rules:
        table.add_row(r.code, r.title, CATEGORY_LABELS.get(r.category, "其他"),
                      "、".join(dataset_title(d) or "其他数据" for d in r.inputs),
                      "; ".join(f"{p}={params.get(p)}" for p in r.parameters), "否" if r.code in disabled else "是")
    console.print(table)


@rules_app.command("run")
@locked_command()
def rules_run(ctx: typer.Context, night: Annotated[str, typer.Option("--date")]) -> None:
    """Run every enabled rule on the night's linked snapshots; store the hits in the warehouse."""
    from bidui import config
    from bidui.connectors import warehouse
    from bidui.rules.engine import run_rules, store_hits

    home: Home = ctx.obj
    day = _night(night)
    con = warehouse.connect(home.warehouse)
    result = run_rules(con, day, config.load(home.config), home.root / "rules")
    store_hits(con, day, result)
    con.close()
    table = Table(title=f"rules {night}")
    for col in ("rule", "status", "hits", "s", "message"):
        table.add_column(col, justify="right" if col in ("hits", "s") else "left", overflow="fold")
    for o in result.outcomes:
        table.add_row(o.code, o.status, f"{o.hits:,}", f"{o.seconds:.2f}", escape(o.message))
    console.print(table)
    if any(o.status == "failed" for o in result.outcomes):
        raise typer.Exit(2)


@rules_app.command("export")
def rules_export(ctx: typer.Context, night: Annotated[str, typer.Option("--date")],
                 out: Annotated[Path, typer.Option("--out")]) -> None:
    """The night's hits as CSV (UTF-8 with BOM)."""
    from bidui.connectors import warehouse
    from bidui.rules.engine import export

    home: Home = ctx.obj
    require_home(home.root)
    day = _night(night)
    if not home.warehouse.exists():
        console.print(f"no rules run for {night}: run bidui rules run --date {night} first")
        raise typer.Exit(1)
    con = warehouse.connect(home.warehouse)
    try:
        frame = export(con, day)
        ran = con.execute("SELECT count(*) FROM rule_runs WHERE night = ?", [day]).fetchone()[0]
    finally:
        con.close()
    if not ran:  # a night whose rules ran and found nothing is an empty file; one never run is not
        console.print(f"no rules run for {night}: run bidui rules run --date {night} first")
        raise typer.Exit(1)
    _write_csv(frame, out)
    console.print(f"{frame.height:,} hits → {out}")


def _register_commands() -> None:
    from bidui.clues.cli import register as ledger_commands
    from bidui.clues.inspection_cli import register as inspection_commands
    from bidui.flows.cli import register as flow_commands
    from bidui.quality.cli import register as quality_commands
    from bidui.rules.whatif_cli import register as whatif_commands

    ledger_commands(app)
    flow_commands(app)
    quality_commands(app)  # quality report
    inspection_commands(app)  # inspect sample, household print
    whatif_commands(rules_app)  # rules whatif
    for info in app.registered_commands:
        # publish lives with the ledger's commands; it writes the night's state like the others.
        if info.name == "publish" and info.callback is not None:
            info.callback = locked_command()(info.callback)
        # run (bidui.flows.cli) checks its night and the home's rule files before it makes or locks
        # the home; and says what its exit codes mean, here rather than in a module's name.
        if info.name == "run" and info.callback is not None:
            info.callback = checked_first(_run_can_start)(info.callback)
            info.help = _RUN_HELP
    use_bidui_classes(app)


# Typer keeps the line breaks of the help's later paragraphs: one line each.
_RUN_HELP = "\n".join((
    "Run the nightly comparison for one night: ingest, link, rules, publish, and the report.",
    "",
    "No Prefect server is needed (an ephemeral one is started unless --plain).",
    "",
    'Exit codes (README: "What a scheduler can act on"):',
    "0: every file accepted;",
    "1: bad input (no such folder, a bad --date, a broken rule file in <home>/rules);",
    "2: a file was refused or held;",
    "3: another run on this home did not finish within --wait;",
    "4: the warehouse or the ledger is locked by another process;",
    "5: the home cannot be written (read-only, permission denied);",
    "6: the disk is full."))


def _run_can_start(kwargs: dict) -> None:
    """Before `bidui run` makes or locks the home: its night, and every rule file it would run. A
    rule file of the home that is not one (bidui.rules.engine.RuleError) stops the run before it
    starts, in one line (bidui.errors.BadInput): no clue is published from a rule half read."""
    from bidui.rules.engine import load_rules

    check_night_folder(kwargs)
    ctx = kwargs.get("ctx")
    if ctx is not None and isinstance(ctx.obj, Home):
        load_rules(ctx.obj.root / "rules")


_register_commands()


def main() -> None:
    """The `bidui` entry point. A failure an operator can act on (another run, a locked
    warehouse, a read-only home, a full disk, a missing home) ends with one line and its exit
    code (bidui.errors); the traceback goes to <home>/logs/bidui.log. Anything else is a bug and
    shows its traceback."""
    from bidui.errors import report_failure

    try:
        app()
    except Exception as e:
        home = _invoked.get("home")
        root = home.root if isinstance(home, Home) else Home.resolve().root
        code = report_failure(e, root, str(_invoked.get("command") or ""))
        if code is None:
            raise
        sys.exit(code)


if __name__ == "__main__":
    main()
