"""The ledger's commands: `bidui publish`, `bidui clues …`, `bidui users add`, `bidui report`."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bidui.clitools import cli_date, out_file
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


def unchanged_message(result) -> str:
    """What the operator reads when a publish changed no clue (`PublishResult`), in Chinese: it is
    read by the task force's data engineer, who may take an English line for an error."""
    night = f"{result.night.year}年{result.night.month}月{result.night.day}日"
    if result.superseded:
        text = (f"{night}的数据已发布过，没有变化" if result.already
                else f"已发布更晚一夜的数据，{night}的数据不再改变线索")
    else:
        text = f"{night}的数据已发布过，没有变化"
    if result.register_filled:
        text += "；已补齐台账中的建档立卡名册副本"
    return text


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
    if result.already or result.superseded:
        _console().print(unchanged_message(result))
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


def _division(session, text: str, level: str | None = None) -> tuple[str, str]:
    """A division given by its code or its name (`和屯镇`) as (code, name); typer.Exit(1) with a
    Chinese message when none or several divisions answer to it."""
    from sqlalchemy import select

    from bidui.clues.models import Division

    text = text.strip()
    q = select(Division).where((Division.code == text) | (Division.name == text))
    found = [d for d in session.scalars(q) if level is None or d.level == level]
    if len(found) == 1:
        return found[0].code, found[0].name
    kind = {"township": "乡镇", None: "行政区划"}.get(level, "行政区划")
    if not found:
        _console().print(f"没有名称或代码为“{text}”的{kind}")
    else:
        parents = {d.code: d.name for d in session.scalars(select(Division).where(
            Division.code.in_([d.parent_code for d in found if d.parent_code])))}
        _console().print(f"有 {len(found)} 个{kind}叫“{text}”，请改用区划代码：" + "；".join(
            f"{d.code}（{parents.get(d.parent_code or '', '')}{d.name}）" for d in found))
    raise typer.Exit(1)


@clues_app.command("workbook")
def clues_workbook(ctx: typer.Context,
                   township: Annotated[str, typer.Option("--township", help="The township's name or code.")],
                   out: Annotated[Path | None, typer.Option("--out", help="Default: 核实工作簿_<乡镇>_<日期>.xlsx")] = None,
                   as_user: Annotated[str | None, typer.Option(
                       "--as", help="Who issues it, recorded in the token (default: 命令行, as the command line).")]
                   = None) -> None:
    """The township's open clues as an Excel workbook to fill in on visits."""
    from bidui.clues import users
    from bidui.clues.workbook import WorkbookError, workbook_filename, write_workbook
    from bidui.signing import secret_key

    home: Home = ctx.obj
    ledger = _ledger(home)
    if as_user is not None:
        _user(ledger, as_user)  # the token names who issued it: an account that exists
    issuer = as_user or users.CLI.name
    try:
        with ledger.read() as s:
            code, name = _division(s, township, "township")
            out = out or Path(workbook_filename(s, code))
            n = write_workbook(s, code, out, secret_key(home.root), issuer)
    except WorkbookError as e:
        _console().print(str(e))
        raise typer.Exit(1) from e
    finally:
        ledger.close()
    _console().print(f"{name}：{n:,} 条待核实线索 → {out}")


@clues_app.command("import")
def clues_import(ctx: typer.Context, path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
                 as_user: Annotated[str, typer.Option("--as")]) -> None:
    """Apply a filled-in township workbook: every row, or none (each bad row is named)."""
    from bidui import config
    from bidui.clues.workbook import WorkbookError, import_workbook
    from bidui.signing import secret_key

    home: Home = ctx.obj
    ledger = _ledger(home)
    user = _user(ledger, as_user)
    try:
        with ledger.write() as s:
            result = import_workbook(s, path, user, secret_key(home.root), required_attachments=config.attachment_settings(
                home.config).required_rules)
    except WorkbookError as e:
        _console().print(str(e))
        raise typer.Exit(2) from e
    finally:
        ledger.close()
    again = f"{len(result.already):,} 条此前已导入过（内容相同，不再重复签字）；" if result.already else ""
    _console().print(f"{len(result.applied):,} 条线索已核实并签字；{again}{result.untouched:,} 条未改动")


@clues_app.command("review")
def clues_review(ctx: typer.Context, clue_id: Annotated[int, typer.Argument()],
                 as_user: Annotated[str, typer.Option("--as")],
                 close: Annotated[bool, typer.Option("--close", help="Close (销号) the verified clue.")] = False,
                 send_back: Annotated[bool, typer.Option("--return", help="Return it to the township.")] = False,
                 reason: Annotated[str, typer.Option("--reason")] = "",
                 due: Annotated[str | None, typer.Option(
                     "--due", help="With --return: the township's new due date (YYYY-MM-DD, today or later).")]
                 = None) -> None:
    """A county reviewer closes a verified clue, or returns it with a reason and a new due date
    (as the review page asks: the old one has usually passed, and the clue would come back overdue)."""
    from bidui.clues import actions
    from bidui.clues.states import TransitionError

    if close == send_back:
        _console().print("请给出 --close（销号）或 --return（退回）其中之一")
        raise typer.Exit(1)
    if send_back and not due:
        _console().print("退回须给出新的截止日期：--due YYYY-MM-DD（不早于今天）")
        raise typer.Exit(1)
    new_due = cli_date(due, "--due") if send_back and due else None
    home: Home = ctx.obj
    ledger = _ledger(home)
    user = _user(ledger, as_user)
    try:
        with ledger.write() as s:
            clue = actions.get_clue(s, clue_id, user)
            if close:
                clue = actions.close(s, clue_id, clue.version, user)
            else:
                clue = actions.send_back(s, clue_id, clue.version, user, reason, new_due)
    except (actions.NotFoundError, actions.ConflictError, TransitionError) as e:
        _console().print(str(e))
        raise typer.Exit(2) from e
    finally:
        ledger.close()
    from bidui.clues.states import STATUS_LABELS

    _console().print(f"线索 {clue_id}：{STATUS_LABELS.get(clue.status, '')}（第 {clue.version} 版）")


@clues_app.command("export")
def clues_export(ctx: typer.Context, out: Annotated[Path, typer.Option("--out", help="F.csv or F.xlsx")],
                 night: Annotated[str | None, typer.Option("--date", help="Only clues found on this night.")] = None,
                 township: Annotated[str | None, typer.Option(
                     "--township", help="Only clues under this division (a name or a code).")] = None,
                 codes: Annotated[bool, typer.Option(
                     "--codes", help="For other systems: the columns of `bidui rules export` and clue_id, status, "
                     "outcome, first_seen, last_seen, due_date, as codes.")] = False) -> None:
    """Clues with their state, evidence and verification, in Chinese as a person reads them (or,
    with --codes, as codes for other systems)."""
    from bidui.cli import _night, _write_csv
    from bidui.clues.export import export_frame, people_frame

    out_file(out, ".csv", ".xlsx")
    home: Home = ctx.obj
    ledger = _ledger(home)
    try:
        with ledger.read() as s:
            under = _division(s, township)[0] if township else None
            day = _night(night) if night else None
            frame = export_frame(s, day, under) if codes else people_frame(s, day, under)
    finally:
        ledger.close()
    if out.suffix.lower() == ".xlsx":
        from bidui.text import neutralise_formulas

        neutralise_formulas(frame).write_excel(out, worksheet="clues" if codes else "线索")
    else:
        _write_csv(frame, out)
    _console().print(f"{frame.height:,} 条线索 → {out}")


def _users_do(ctx: typer.Context, work):
    """Run `work(session)` on the ledger as the CLI (audited as 命令行); a UserError ends in its
    message and exit 1."""
    from bidui.clues.users import UserError

    home: Home = ctx.obj
    ledger = _ledger(home)
    try:
        with ledger.write() as s:
            return work(s)
    except UserError as e:
        _console().print(str(e))
        raise typer.Exit(1) from e
    finally:
        ledger.close()


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every user: login name, real name, position, role, scope (with its name), state."""
    from bidui.clues import users

    def work(s):
        table = Table(title="用户")
        for col in ("用户名", "姓名", "职务", "角色", "管辖范围", "状态"):
            table.add_column(col, overflow="fold")
        for u in users.listed(s, users.CLI):
            states = ["停用"] if not u.active else [word for word, on in (("锁定", users.is_locked(u)),
                                                                       ("待本人改密码", u.must_change_password)) if on]
            state = "，".join(states) or "正常"
            table.add_row(u.username, u.real_name or u.display_name, u.position or "", users.ROLE_LABELS.get(u.role, u.role),
                          f"{users.division_name(s, u.scope)}（{u.scope}）", state)
        return table

    _console().print(_users_do(ctx, work))


@users_app.command("add")
def users_add(ctx: typer.Context, username: Annotated[str, typer.Option("--name", help="Login name.")],
              role: Annotated[str, typer.Option("--role", help="township | county | prefecture | admin")],
              scope_code: Annotated[str, typer.Option("--scope", help="The 12-digit division code the user covers.")],
              password: Annotated[str, typer.Option("--password", prompt=True, hide_input=True)],
              display: Annotated[str | None, typer.Option("--display-name")] = None,
              position: Annotated[str | None, typer.Option("--position", help="职务, as the person signs.")] = None,
              real_name: Annotated[str | None, typer.Option("--real-name", help="姓名, as the person signs.")] = None
              ) -> None:
    """Add a user. The password: at least 10 characters, not containing the user name, not a
    common one; stored hashed with argon2; the user changes it at the first sign-in. Audited."""
    from bidui.clues import users

    def add(s) -> str:
        users.add_user(s, username, display or real_name or username, role, scope_code, password, position,
                       real_name=real_name, actor=users.CLI)
        return users.division_name(s, scope_code)

    _console().print(f"已添加用户 {username}（{users.ROLE_LABELS[role]}，{_users_do(ctx, add)}）；"
                     "本人第一次登录时须先改成自己的密码")


@users_app.command("disable")
def users_disable(ctx: typer.Context, username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a user: they cannot sign in, and a session they have open stops working. Audited."""
    from bidui.clues import users

    _users_do(ctx, lambda s: users.disable(s, username, users.CLI))
    _console().print(f"已停用用户 {username}")


@users_app.command("enable")
def users_enable(ctx: typer.Context, username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Re-enable a disabled user. Audited."""
    from bidui.clues import users

    _users_do(ctx, lambda s: users.enable(s, username, users.CLI))
    _console().print(f"已恢复用户 {username}")


@users_app.command("reset-password")
def users_reset(ctx: typer.Context, username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Give the user a temporary password (printed once), lift a lock-out and end their web sessions.
    Audited (not the password)."""
    from bidui.clues import users

    password = _users_do(ctx, lambda s: users.reset_password(s, username, users.CLI))
    _console().print(f"用户 {username} 的临时密码（只显示这一次，请当面或电话告知本人；登录后须先改成自己的密码）：{password}")


@users_app.command("unlock")
def users_unlock(ctx: typer.Context, username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Lift the lock-outs after too many wrong passwords (each holds for one address): the user can
    sign in at once; their open sessions stay. Audited."""
    from bidui.clues import users

    _users_do(ctx, lambda s: users.unlock(s, username, users.CLI))
    _console().print(f"已解除 {username} 的锁定，可以立即登录")


@users_app.command("rescope")
def users_rescope(ctx: typer.Context, username: Annotated[str, typer.Argument(help="Login name.")],
                  role: Annotated[str, typer.Option("--role", help="township | county | prefecture | admin")],
                  scope_code: Annotated[str, typer.Option("--scope", help="The 12-digit division code.")]) -> None:
    """Change a user's role and scope (a township user's scope is a township, and so on). Audited."""
    from bidui.clues import users

    def rescope(s) -> str:
        users.rescope(s, username, role, scope_code, users.CLI)
        return users.division_name(s, scope_code)

    _console().print(f"用户 {username} 现为{users.ROLE_LABELS[role]}，管辖范围 {_users_do(ctx, rescope)}")


@users_app.command("edit")
def users_edit(ctx: typer.Context, username: Annotated[str, typer.Argument(help="Login name.")],
               real_name: Annotated[str | None, typer.Option("--real-name", help="姓名")] = None,
               position: Annotated[str | None, typer.Option("--position", help="职务")] = None,
               display: Annotated[str | None, typer.Option("--display-name")] = None) -> None:
    """Change a user's real name, position or display name. Audited."""
    from bidui.clues import users

    if real_name is None and position is None and display is None:
        _console().print("没有要修改的内容：请给出 --real-name、--position 或 --display-name")
        raise typer.Exit(1)
    _users_do(ctx, lambda s: users.edit_profile(s, username, users.CLI, real_name, position, display))
    _console().print(f"已更新用户 {username}")


def report_cmd(ctx: typer.Context,
               scope_code: Annotated[str | None, typer.Option(
                   "--scope", help="A division's name or code (default: all).")] = None,
               out: Annotated[Path | None, typer.Option("--out", help="Write the report as Excel.")] = None,
               three_day: Annotated[bool, typer.Option("--three-day", help="三天一报: what moved in the last 3 days.")] = False,
               today: Annotated[str | None, typer.Option("--today", help="Report as of this date.")] = None) -> None:
    """Issued, verified, closed, closure rate, on-time rate, overdue; by county, township, rule and
    category; 属实率 per rule; counts behind 错评 / 漏评 / 错退."""
    from bidui import scope
    from bidui.clues import report
    from bidui.clues.models import Division

    home: Home = ctx.obj
    day = cli_date(today, "--today") if today else date.today()
    ledger = _ledger(home)
    with ledger.read() as s:
        # A name, or a code the ledger knows (a prefecture's code need not be among the divisions):
        # an unknown one is said, not reported as zeros.
        if scope_code and not (scope.is_code(scope_code) and (s.get(Division, scope_code) is not None
                                                               or scope.level(scope_code) == "prefecture")):
            scope_code, _ = _division(s, scope_code)
        rep = report.three_days(s, scope_code, day) if three_day else report.build(s, scope_code, day)
    ledger.close()
    import polars as pl

    from bidui.clues.workbook import CATEGORY_LABELS

    console = _console()
    by_category = rep.by_category.with_columns(pl.col("category").replace_strict(CATEGORY_LABELS, default=pl.col("category")))
    def cell(column: str, v: object) -> str:
        if v is None:
            return "—" if column in report.DASHED else ""
        if isinstance(v, float):
            return f"{v:.1%}" if column.endswith("_rate") else f"{v:g}"
        return str(v)

    tables = [("总体", rep.overall), ("按县", rep.by_county), ("按乡镇", rep.by_township), ("按疑点", rep.by_rule),
              ("按类别", by_category), ("错评 / 漏评 / 错退", rep.findings)]
    if rep.burden is not None:
        tables.append(("核查负担（每查实一条需核实几条）", rep.burden))
    for title, frame in tables:
        # A person reads names: the county, township and rule codes stay in the Excel file only.
        frame = frame.drop([c for c in frame.columns if c.endswith("_code")])
        table = Table(title=title)
        for c in frame.columns:
            table.add_column(report.SHEET_LABELS.get(c, c), overflow="fold")
        for row in frame.iter_rows():
            table.add_row(*(cell(c, v) for c, v in zip(frame.columns, row, strict=True)))
        console.print(table)
    console.print(f"逾期未核实：{rep.overdue.height:,} 条")
    if out:
        report.write_xlsx(rep, out)
        console.print(f"报表 → {out}")


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_cmd)
    app.command("report")(report_cmd)
    app.add_typer(clues_app, name="clues")
    app.add_typer(users_app, name="users")
