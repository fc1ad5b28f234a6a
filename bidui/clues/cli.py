"""The ledger's commands: `bidui publish`, `bidui clues …`, `bidui users add`, `bidui report`."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bidui.home import Home

clues_app = typer.Typer(help="The clue ledger: township workbooks, review, export.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the ledger and the web app.", no_args_is_help=True)


def _console():
    from bidui.cli import console

    return console


def _ledger(home: Home):
    from bidui.clues.db import ledger_url, open_ledger

    return open_ledger(ledger_url(home.ledger))


def _user(ledger, username: str):
    from bidui.clues.users import UserError, by_name

    with ledger.read() as s:
        try:
            return by_name(s, username)
        except UserError as e:
            _console().print(str(e))
            raise typer.Exit(1) from e


def publish_cmd(ctx: typer.Context, night: Annotated[str, typer.Option("--date")]) -> None:
    """The night's rule hits become clues: new ones dispatched to townships, known ones seen again,
    vanished ones marked evidence-gone (they stay open). Publishing a night twice changes nothing."""
    from bidui.cli import _night
    from bidui.clues.publish import publish_night

    home: Home = ctx.obj
    try:
        result = publish_night(home, _night(night))
    except LookupError as e:
        _console().print(str(e))
        raise typer.Exit(1) from e
    if result.already:
        _console().print(f"{night} was already published: nothing changed")
        return
    table = Table(title=f"publish {night}: {result.hits:,} hits")
    for col in ("rule", "new", "seen", "gone", "reraised", "suppressed"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for rule, c in sorted(result.by_rule.items()):
        table.add_row(rule, *(f"{c.get(k, 0):,}" for k in ("new", "seen", "gone", "reraised", "suppressed")))
    table.add_row("all", *(f"{getattr(result, k):,}" for k in ("new", "seen", "gone", "reraised", "suppressed")))
    _console().print(table)
    if result.skipped_rules:
        _console().print(f"rules that did not run (their clues are left as they were): {', '.join(result.skipped_rules)}")


@clues_app.command("workbook")
def clues_workbook(ctx: typer.Context, township: Annotated[str, typer.Option("--township")],
                   out: Annotated[Path, typer.Option("--out")],
                   as_user: Annotated[str, typer.Option("--as", help="Who issues it (recorded in the token).")] = "admin"
                   ) -> None:
    """The township's open clues as an Excel workbook to fill in on visits."""
    from bidui.clues.workbook import WorkbookError, write_workbook
    from bidui.signing import secret_key

    home: Home = ctx.obj
    ledger = _ledger(home)
    try:
        with ledger.read() as s:
            n = write_workbook(s, township, out, secret_key(home.root), as_user)
    except WorkbookError as e:
        _console().print(str(e))
        raise typer.Exit(1) from e
    finally:
        ledger.close()
    _console().print(f"{n:,} open clue(s) of {township} → {out}")


@clues_app.command("import")
def clues_import(ctx: typer.Context, path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
                 as_user: Annotated[str, typer.Option("--as")]) -> None:
    """Apply a filled-in township workbook: every row, or none (each bad row is named)."""
    from bidui.clues.workbook import WorkbookError, import_workbook
    from bidui.signing import secret_key

    home: Home = ctx.obj
    ledger = _ledger(home)
    user = _user(ledger, as_user)
    try:
        with ledger.write() as s:
            result = import_workbook(s, path, user, secret_key(home.root))
    except WorkbookError as e:
        _console().print(str(e))
        raise typer.Exit(2) from e
    finally:
        ledger.close()
    _console().print(f"{len(result.applied):,} clue(s) verified and signed; {result.untouched:,} left as they were")


@clues_app.command("review")
def clues_review(ctx: typer.Context, clue_id: Annotated[int, typer.Argument()],
                 as_user: Annotated[str, typer.Option("--as")],
                 close: Annotated[bool, typer.Option("--close", help="Close (销号) the verified clue.")] = False,
                 send_back: Annotated[bool, typer.Option("--return", help="Return it to the township.")] = False,
                 reason: Annotated[str, typer.Option("--reason")] = "") -> None:
    """A county reviewer closes a verified clue, or returns it with a reason."""
    from bidui.clues import actions
    from bidui.clues.states import TransitionError

    if close == send_back:
        _console().print("give exactly one of --close or --return")
        raise typer.Exit(1)
    home: Home = ctx.obj
    ledger = _ledger(home)
    user = _user(ledger, as_user)
    try:
        with ledger.write() as s:
            clue = actions.get_clue(s, clue_id, user)
            if close:
                clue = actions.close(s, clue_id, clue.version, user)
            else:
                clue = actions.send_back(s, clue_id, clue.version, user, reason)
    except (actions.NotFoundError, actions.ConflictError, TransitionError) as e:
        _console().print(str(e))
        raise typer.Exit(2) from e
    finally:
        ledger.close()
    _console().print(f"clue {clue_id}: {clue.status} (version {clue.version})")


@clues_app.command("export")
def clues_export(ctx: typer.Context, out: Annotated[Path, typer.Option("--out", help="F.csv or F.xlsx")],
                 night: Annotated[str | None, typer.Option("--date", help="Only clues found on this night.")] = None,
                 township: Annotated[str | None, typer.Option("--township", help="Only clues under this division.")] = None
                 ) -> None:
    """Clues with their state: the columns of `bidui rules export` and clue_id, status, outcome,
    first_seen, last_seen, due_date."""
    from bidui.cli import _night, _write_csv
    from bidui.clues.export import export_frame

    home: Home = ctx.obj
    ledger = _ledger(home)
    with ledger.read() as s:
        frame = export_frame(s, _night(night) if night else None, township)
    ledger.close()
    if out.suffix.lower() == ".xlsx":
        frame.write_excel(out, worksheet="clues")
    else:
        _write_csv(frame, out)
    _console().print(f"{frame.height:,} clue(s) → {out}")


@users_app.command("add")
def users_add(ctx: typer.Context, username: Annotated[str, typer.Option("--name", help="Login name.")],
              role: Annotated[str, typer.Option("--role", help="township | county | prefecture | admin")],
              scope_code: Annotated[str, typer.Option("--scope", help="The 12-digit division code the user covers.")],
              password: Annotated[str, typer.Option("--password", prompt=True, hide_input=True)],
              display: Annotated[str | None, typer.Option("--display-name")] = None,
              position: Annotated[str | None, typer.Option("--position")] = None) -> None:
    """Add a user (the password is stored hashed with argon2)."""
    from bidui.clues.users import UserError, add_user

    home: Home = ctx.obj
    ledger = _ledger(home)
    try:
        with ledger.write() as s:
            add_user(s, username, display or username, role, scope_code, password, position)
    except UserError as e:
        _console().print(str(e))
        raise typer.Exit(1) from e
    finally:
        ledger.close()
    _console().print(f"user {username} ({role}, {scope_code}) added")


def report_cmd(ctx: typer.Context,
               scope_code: Annotated[str | None, typer.Option("--scope", help="A division code (default: all).")] = None,
               out: Annotated[Path | None, typer.Option("--out", help="Write the report as Excel.")] = None,
               three_day: Annotated[bool, typer.Option("--three-day", help="三天一报: what moved in the last 3 days.")] = False,
               today: Annotated[str | None, typer.Option("--today", help="Report as of this date.")] = None) -> None:
    """Issued, verified, closed, closure rate, on-time rate, overdue; by county, township, rule and
    category; 属实率 per rule; counts behind 错评 / 漏评 / 错退."""
    from bidui.clues import report

    home: Home = ctx.obj
    ledger = _ledger(home)
    day = date.fromisoformat(today) if today else date.today()
    with ledger.read() as s:
        rep = report.three_days(s, scope_code, day) if three_day else report.build(s, scope_code, day)
    ledger.close()
    console = _console()
    for title, frame in (("overall", rep.overall), ("by county", rep.by_county), ("by township", rep.by_township),
                         ("by rule", rep.by_rule), ("by category", rep.by_category), ("错评 / 漏评 / 错退", rep.findings)):
        table = Table(title=title)
        for c in frame.columns:
            table.add_column(report.SHEET_LABELS.get(c, c), overflow="fold")
        for row in frame.iter_rows():
            table.add_row(*("" if v is None else f"{v:.1%}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)
    console.print(f"overdue: {rep.overdue.height:,} clue(s)")
    if out:
        report.write_xlsx(rep, out)
        console.print(f"report → {out}")


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_cmd)
    app.command("report")(report_cmd)
    app.add_typer(clues_app, name="clues")
    app.add_typer(users_app, name="users")
