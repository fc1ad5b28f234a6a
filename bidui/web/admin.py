"""The task force's admin pages (专班管理): users (list, add, disable, re-enable, reset a
password, unlock, re-scope, real name and position), held files applied, rules switched on and
off, the recent runs, and the audit trail of all of it.

Every change is a POST with the CSRF token; the ones that cannot simply be undone by the next click
(disabling a user, resetting a password, applying a held file, switching a rule) first show a
confirmation page. The checks and the audit are in bidui.clues.users (shared with `bidui users`);
held files in bidui.clues.approvals (the web app cannot write the warehouse: the next run of the
night applies them); rules in bidui.config (the home's bidui.toml)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from bidui import config, scope
from bidui.clues import actions, approvals, link_decisions, present, users
from bidui.clues.load_messages import file_message
from bidui.clues.models import AuditEvent, Clue, Division, LinkDecision, RunReport
from bidui.clues.present import parameter_value_text, parameter_words
from bidui.clues.states import CLOSED, RETURNED
from bidui.clues.workbook import CATEGORY_LABELS
from bidui.datasets import DATASETS
from bidui.web.deps import Ctx, ctx, default_due
from bidui.web.security import check_csrf, require_role

router = APIRouter()
DATASET_TITLES = {ds.code: ds.title for ds in DATASETS}
RUN_STATUS = {"completed": "完成", "partial": "部分完成（有文件仍在写入）", "running": "运行中", "already": "完成"}


def _parameter_label(name: str) -> str:
    """A rule parameter as the admin page lists it: its label, with its unit (present.py)."""
    label, unit = parameter_words(name)
    return f"{label}（{unit}）" if unit else label


def audit_text(e: AuditEvent, names: dict[str, str] | None = None) -> str:
    """An audit event's details as a person reads them (division codes by their names)."""
    p, names = e.payload or {}, names or {}
    if e.kind in (approvals.APPROVED, approvals.APPLIED, approvals.WITHDRAWN):
        return f"{p.get('night', '')} {DATASET_TITLES.get(p.get('dataset') or '', '')}（文件 {p.get('file', '')}）"
    if e.kind in ("rule_disabled", "rule_enabled"):
        return p.get("title", "")
    if e.kind in present.DECISION_AUDIT_LABELS:
        said = [link_decisions.KIND_LABELS.get(p.get("kind", ""), ""), f"线索 {p.get('clue_id', '')}",
                present.dataset_title(p.get("dataset")), f"理由：{p['reason']}" if p.get("reason") else ""]
        return "，".join(x for x in said if x)
    named = lambda v: names.get(v, v) if isinstance(v, str) else parameter_value_text(v)  # noqa: E731
    parts = []
    for k, v in p.items():
        parts.append(f"{k}：" + ("，".join(f"{a} {named(b)}" for a, b in v.items()) if isinstance(v, dict) else named(v)))
    return "；".join(parts)


def audit_label(kind: str) -> str:
    return users.AUDIT_LABELS.get(kind) or present.DECISION_AUDIT_LABELS.get(kind, "其他操作")


def audit_target(e: AuditEvent, people: dict[str, str] | None = None) -> dict[str, str]:
    """What an audit event acted on, as the audit log shows it: `text`, and `account` (a user
    account's login name, under the person's name) or `href` (the decision, on its list)."""
    if e.kind in (approvals.APPROVED, approvals.APPLIED, approvals.WITHDRAWN) or e.kind in ("rule_disabled", "rule_enabled"):
        return {"text": ""}  # the file or the rule is named in the details (a rule's target is its code)
    if e.kind in present.DECISION_AUDIT_LABELS:  # target link_decision:<id>
        number = (e.target or "").rpartition(":")[2]
        return {"text": f"关联决定 {number}", "href": f"/admin/link-decisions#decision-{number}"}
    return _account(e.target or "", people or {})


def _account(username: str, people: dict[str, str]) -> dict[str, str]:
    """An account as the audit log names it: the person (their name and position), then the login
    name an administrator manages it by; a name that is no account (命令行, 系统) as it is."""
    if username in people and username != "system":
        return {"text": people[username], "account": username}
    return {"text": people.get(username, username)}


def device_text(agent: str) -> str:
    """A browser's User-Agent as a person reads it: the kind of device and the browser."""
    a = agent.lower()
    device = ("手机" if any(w in a for w in ("iphone", "android", "mobile", "harmonyos")) else
              "平板" if "ipad" in a else "电脑" if any(w in a for w in ("windows", "macintosh", "x11", "linux")) else "")
    browser = next((label for word, label in (("micromessenger", "微信"), ("dingtalk", "钉钉"), ("edg/", "Edge 浏览器"),
                                              ("qqbrowser", "QQ 浏览器"), ("360", "360 浏览器"), ("firefox", "火狐浏览器"),
                                              ("chrome", "Chrome 浏览器"), ("safari", "Safari 浏览器")) if word in a), "")
    return "，".join(p for p in (device, browser) if p) or "未知设备"


def _sessions(c: Ctx, u) -> tuple[list[dict], tuple[int, int]]:
    """The user's open sessions as the admin page lists them, and the failed sign-ins of a day."""
    web = c.request.app.state.web
    rows = [{"id": w.id, "created": f"{w.created_at:%Y-%m-%d %H:%M}", "seen": f"{w.last_seen:%Y-%m-%d %H:%M}",
             "address": w.address or "未知", "device": device_text(w.user_agent),
             "mine": w.id == getattr(c.request.state, "web_session_id", None)}
            for w in users.open_sessions(c.session, u.id, web.session_idle_seconds, web.session_max_seconds)]
    return rows, users.failed_logins_since(c.session, u.username, datetime.now() - timedelta(days=1))


def _actor(c: Ctx) -> users.Actor:
    return users.Actor(c.user.username, c.user.scope)


def _divisions(c: Ctx) -> list[dict]:
    """Divisions an admin can scope a user to (their own and below, not villages), named."""
    rows = list(c.session.scalars(select(Division).where(scope.under(Division.code, c.user.scope),
                                                         Division.level != "village").order_by(Division.code)))
    names = {d.code: d.name for d in rows}
    out = []
    for d in rows:
        county = names.get(scope.county_of(d.code)) if d.level == "township" else None
        out.append({"code": d.code, "level": d.level,
                    "label": f"{county} · {d.name}" if county else d.name})
    if c.user.scope not in names:
        out.insert(0, {"code": c.user.scope, "level": "prefecture", "label": "全市"})
    return out


def _rules(c: Ctx) -> list[dict]:
    from bidui.rules.engine import load_rules

    home = c.request.app.state.home
    cfg = config.load(home.config)
    params = cfg.get("rules", {}).get("parameters", {})
    disabled = set(cfg.get("rules", {}).get("disabled", []))
    return [{"code": r.code, "title": r.title, "category": CATEGORY_LABELS.get(r.category, r.category),
             "inputs": "、".join(DATASET_TITLES.get(i, i) for i in r.inputs),
             "parameters": [(_parameter_label(p), parameter_value_text(params.get(p))) for p in r.parameters],
             "enabled": r.code not in disabled} for r in load_rules(home.root / "rules")[0]]


def _runs(c: Ctx) -> tuple[list[dict], list[dict]]:
    from bidui.clues.present import changes_text, defects_text, relinks_text, rules_scope_text

    runs, held = [], []
    for r in c.session.scalars(select(RunReport).order_by(RunReport.night.desc()).limit(10)):
        report = json.loads(r.report)
        pending = approvals.approvals_in(c.session, r.night)
        files = report.get("files", [])
        not_in = []
        for f in files:
            if f.get("status") not in ("held", "refused", "missing"):
                continue
            row = {"file": f.get("file") or "", "dataset": DATASET_TITLES.get(f.get("dataset") or "", "未识别的数据集"),
                   "status": present.FILE_STATUS_LABELS.get(f["status"], "未入库"), "message": file_message(f.get("file"), f["status"], f.get("message"))}
            not_in.append(row)
            if f["status"] == "held" and not f.get("incomplete") and f.get("file"):
                approval = pending.get(f["file"])
                held.append(row | {"night": r.night.isoformat(), "approved": approval is not None,
                                   "approved_by": approval and (approval.actor, f"{approval.at:%Y-%m-%d %H:%M}"),
                                   "basis": approval and (approval.payload or {}).get("basis", "")})
        runs.append({"night": r.night, "finished": f"{r.finished_at:%Y-%m-%d %H:%M}",
                     "status": RUN_STATUS.get(report.get("status", ""), ""),
                     "taken": sum(f.get("status") in ("accepted", "forced", "duplicate") for f in files),
                     "forced": [DATASET_TITLES.get(f.get("dataset") or "", f.get("file", "")) for f in files
                                if f.get("status") == "forced"],
                     "not_in": not_in, "new": sum(v.get("new", 0) for v in report.get("clues", {}).values()),
                     "defects": defects_text(report.get("quality") or {}),
                     "changes": changes_text(report.get("changes") or {}, files, present.REASONS_ON_ADMIN_PAGE),
                     "relinks": relinks_text(report.get("relinks") or {}),
                     "rules_scope": rules_scope_text(report.get("rules_scope") or {}, c.request.app.state.home.root / "rules"),
                     "model": present.model_lines(report.get("model") or {}),
                     "timings": [(present.STEP_LABELS.get(k, "其他"), v) for k, v in report.get("timings", {}).items()]})
    who = c.people({h["approved_by"][0] for h in held if h["approved_by"]})
    for h in held:  # the person who approved, not the account
        if h["approved_by"]:
            h["approved_by"] = (who.get(h["approved_by"][0], "已停用的账号"), h["approved_by"][1])
    return runs, held


def render(c: Ctx, status_code: int = 200, error: str = "", message: str = "", form: dict | None = None,
           password: dict | None = None):
    listed = users.listed(c.session, _actor(c))
    names = {d["code"]: d["label"] for d in _divisions(c)}
    rows = [{"u": u, "scope": names.get(u.scope, u.scope), "locked": users.is_locked(u)} for u in listed]
    events = list(c.session.scalars(select(AuditEvent).where(AuditEvent.kind != "login_failed")
                                    .order_by(AuditEvent.id.desc()).limit(50)))
    people = c.people({e.actor for e in events} | {e.target for e in events if e.target})
    audits = [{"at": f"{e.at:%Y-%m-%d %H:%M}", "actor": _account(e.actor, people), "kind": audit_label(e.kind),
               "target": audit_target(e, people), "detail": audit_text(e, names)} for e in events]
    runs, held = _runs(c)
    return c.render("admin.html", status_code=status_code, error=error, message=message, users=rows,
                    divisions=_divisions(c), form=form or {}, password=password, rules=_rules(c), runs=runs,
                    held=held, audits=audits, roles=users.ROLE_LABELS)


def _done(c: Ctx, message: str, anchor: str = "", to: str = "/admin") -> RedirectResponse:
    """Back to the page with the message kept in the session (a message in a URL could be forged)."""
    c.flash(message=message)
    return RedirectResponse(f"{to}{anchor}", status_code=303)


def confirm(c: Ctx, action: str, question: str, details: list[str], fields: dict[str, str], danger: bool = True,
            ask: tuple[str, str, str] | None = None, back: str = "/admin", status_code: int = 200, error: str = ""):
    """A confirmation page; `ask`: (field, label, value) of a text the confirmation must give (why)."""
    return c.render("admin_confirm.html", status_code=status_code, action=action, question=question, details=details,
                    fields=fields, danger=danger, ask=ask, back=back, error=error)


@router.get("/admin")
def admin(c: Ctx = Depends(ctx)):  # noqa: B008
    require_role(c.user, "admin")
    return render(c)


@router.post("/admin/users/add")
def add_user(c: Ctx = Depends(ctx), csrf_token: str = Form(""), username: str = Form(""),  # noqa: B008
             real_name: str = Form(""), position: str = Form(""), role: str = Form(""), scope_code: str = Form(""),
             password: str = Form("")):
    require_role(c.user, "admin")
    check_csrf(c.request, csrf_token)
    form = {"username": username, "real_name": real_name, "position": position, "role": role, "scope_code": scope_code}
    if not real_name.strip():
        return render(c, 400, error="请填写姓名（核实签字时用）", form=form)
    try:
        with c.request.app.state.ledger.write() as s:
            users.add_user(s, username, real_name.strip(), role, scope_code, password, position.strip(),
                           real_name=real_name.strip(), actor=_actor(c))
    except users.UserError as e:
        return render(c, 400, error=str(e), form=form)
    return _done(c, f"已添加用户 {username.strip()}，请把初始密码当面或电话告知本人；本人第一次登录时须先改成自己的密码", "#users")


@router.get("/admin/users/{username}")
def user_page(username: str, c: Ctx = Depends(ctx)):  # noqa: B008
    require_role(c.user, "admin")
    try:
        u = users.managed(c.session, username, _actor(c))
    except users.UserError:
        from fastapi import HTTPException

        raise HTTPException(404) from None
    return _user_render(c, u)


def _user_render(c: Ctx, u, status_code: int = 200, error: str = "", message: str = "", form: dict | None = None,
                 password: str | None = None):
    names = {d["code"]: d["label"] for d in _divisions(c)}
    # What the user did and what was done to the account (the page said 该用户的操作记录 and listed
    # only the second).
    events = list(c.session.scalars(select(AuditEvent).where(
        (AuditEvent.target == u.username) | (AuditEvent.actor == u.username), AuditEvent.kind != "login_failed")
        .order_by(AuditEvent.id.desc()).limit(20)))
    people = c.people({e.actor for e in events} | {e.target for e in events if e.target})
    audits = [{"at": f"{e.at:%Y-%m-%d %H:%M}", "actor": _account(e.actor, people), "kind": audit_label(e.kind),
               "target": audit_target(e, people), "detail": audit_text(e, names)} for e in events]
    sessions, (failed, failed_from) = _sessions(c, u)
    return c.render("admin_user.html", status_code=status_code, error=error, message=message, u=u,
                    locked=users.is_locked(u), divisions=_divisions(c), roles=users.ROLE_LABELS,
                    form=form or {"real_name": u.real_name or "", "position": u.position or "",
                                  "display_name": u.display_name, "role": u.role, "scope_code": u.scope},
                    password=password, audits=audits, sessions=sessions, failed=failed, failed_from=failed_from)


def _managed_or_404(c: Ctx, username: str):
    from fastapi import HTTPException

    try:
        return users.managed(c.session, username, _actor(c))
    except users.UserError:
        raise HTTPException(404) from None


@router.post("/admin/users/{username}/profile")
def user_profile(username: str, c: Ctx = Depends(ctx), csrf_token: str = Form(""),  # noqa: B008
                 real_name: str = Form(""), position: str = Form(""), display_name: str = Form("")):
    require_role(c.user, "admin")
    check_csrf(c.request, csrf_token)
    u = _managed_or_404(c, username)
    form = {"real_name": real_name, "position": position, "display_name": display_name, "role": u.role,
            "scope_code": u.scope}
    try:
        with c.request.app.state.ledger.write() as s:
            users.edit_profile(s, username, _actor(c), real_name, position, display_name)
    except users.UserError as e:
        return _user_render(c, u, 400, error=str(e), form=form)
    return _done(c, "已保存姓名与职务", to=f"/admin/users/{quote(username)}")


@router.post("/admin/users/{username}/rescope")
def user_rescope(username: str, c: Ctx = Depends(ctx), csrf_token: str = Form(""),  # noqa: B008
                 role: str = Form(""), scope_code: str = Form("")):
    require_role(c.user, "admin")
    check_csrf(c.request, csrf_token)
    u = _managed_or_404(c, username)
    form = {"real_name": u.real_name or "", "position": u.position or "", "display_name": u.display_name,
            "role": role, "scope_code": scope_code}
    try:
        with c.request.app.state.ledger.write() as s:
            users.rescope(s, username, role, scope_code, _actor(c))
    except users.UserError as e:
        return _user_render(c, u, 400, error=str(e), form=form)
    return _done(c, "已调整角色与管辖范围", to=f"/admin/users/{quote(username)}")


@router.post("/admin/users/{username}/sessions/end")
def end_sessions(username: str, c: Ctx = Depends(ctx), csrf_token: str = Form(""),  # noqa: B008
                 session: str = Form(""), confirmed: str = Form("")):
    """End one of the user's sessions (by its number) or all of them: the browsers holding them
    are at the login page at their next click. Confirmed first, audited."""
    require_role(c.user, "admin")
    check_csrf(c.request, csrf_token)
    u = _managed_or_404(c, username)
    one = int(session) if session.isdigit() and len(session) < 18 else None
    if one is None and session != "all":
        return _user_render(c, u, 400, error="请从会话列表中选择要结束的会话")
    if confirmed != "1":
        who = f"{u.real_name or u.display_name}（{u.username}）"
        what = "结束该用户的全部登录会话" if one is None else "结束该用户的这个登录会话"
        return confirm(c, f"/admin/users/{quote(username)}/sessions/end", f"{what}：{who}",
                       ["结束后，使用这些会话的浏览器下一次操作时会回到登录页，需要重新登录。确认结束？"],
                       {"session": session}, True)
    with c.request.app.state.ledger.write() as s:
        ended = users.end_sessions(s, username, _actor(c), one)
    return _done(c, f"已结束 {ended} 个登录会话" if ended else "该会话已经结束", to=f"/admin/users/{quote(username)}")


USER_ACTIONS = {
    "disable": ("停用", "停用后该用户不能登录，已登录的会话立即失效。确认停用？", True),
    "enable": ("恢复", "恢复后该用户可以重新登录。确认恢复？", False),
    "reset": ("重置密码", "将生成一个临时密码（只显示一次），原密码立即失效。确认重置？", True),
    "unlock": ("解除锁定", "解除后该用户可以立即登录。确认解除？", False),
}


@router.post("/admin/users/{username}/{action}")
def user_action(username: str, action: str, c: Ctx = Depends(ctx), csrf_token: str = Form(""),  # noqa: B008
                confirmed: str = Form(""), once: str = Form("")):
    from fastapi import HTTPException

    require_role(c.user, "admin")
    check_csrf(c.request, csrf_token)
    if action not in USER_ACTIONS:
        raise HTTPException(404)
    u = _managed_or_404(c, username)
    label, question, danger = USER_ACTIONS[action]
    # A reset's confirmation is good once: the page showing the temporary password is the answer to
    # a POST, and refreshing it reset the password again, to one the user was not told.
    key = f"reset_once:{username}"
    if confirmed != "1":
        who = f"{u.real_name or u.display_name}（{u.username}，{users.ROLE_LABELS.get(u.role, '')}）"
        fields = {}
        if action == "reset":
            fields["once"] = c.request.session[key] = secrets.token_urlsafe(16)
        details = [question]
        if action == "reset" and u.id == c.user.id:
            details.append("这是您自己的账号：确认后您会立即退出登录。请先记下页面上显示的临时密码，"
                           "再用它重新登录，并设置自己的新密码。")
        return confirm(c, f"/admin/users/{quote(username)}/{action}", f"{label}：{who}", details, fields, danger)
    if action == "reset" and (not once or c.request.session.pop(key, None) != once):
        return _user_render(c, u, message="这次重置已经完成，刷新页面不会再次重置（临时密码以当时显示的为准）。"
                                          "如需再次重置，请重新点击“重置密码”。")
    try:
        with c.request.app.state.ledger.write() as s:
            if action == "disable":
                users.disable(s, username, _actor(c))
            elif action == "enable":
                users.enable(s, username, _actor(c))
            elif action == "unlock":
                users.unlock(s, username, _actor(c))
            else:
                password = users.reset_password(s, username, _actor(c))
    except users.UserError as e:
        return _user_render(c, u, 400, error=str(e))
    if action == "reset":
        # The request's own session began before the reset was written: ended, so that the page
        # drawn now (its history too) reads what was written, not the snapshot before it.
        c.session.rollback()
        u = _managed_or_404(c, username)
        # Shown once, on this response only: never in a URL, a log or the audit trail.
        return _user_render(c, u, message="已重置密码", password=password)
    done = {"disable": "已停用", "enable": "已恢复", "unlock": "已解除锁定，可以立即登录"}[action]
    return _done(c, done, to=f"/admin/users/{quote(username)}")


@router.post("/admin/rules/switch")
def rule_switch(c: Ctx = Depends(ctx), csrf_token: str = Form(""), code: str = Form(""),  # noqa: B008
                enabled: str = Form(""), confirmed: str = Form("")):
    require_role(c.user, "admin")
    check_csrf(c.request, csrf_token)
    rule = next((r for r in _rules(c) if r["code"] == code), None)
    if rule is None:
        return render(c, 400, error="没有这条规则")
    on = enabled == "1"
    if confirmed != "1":
        what = "启用" if on else "停用"
        return confirm(c, "/admin/rules/switch", f"{what}规则：{rule['title']}",
                       [f"修改后从下次比对起{'运行' if on else '不再运行'}这条规则。"
                        + ("" if on else "已下发的线索保持原样，不会标记为证据消失。")],
                       {"code": code, "enabled": enabled}, danger=not on)
    home = c.request.app.state.home
    try:
        config.set_rule_enabled(home.config, code, on)
    except (ValueError, OSError):
        return render(c, 500, error="无法修改配置文件 bidui.toml，请联系系统管理员")
    with c.request.app.state.ledger.write() as s:
        users.audit(s, c.user.username, "rule_enabled" if on else "rule_disabled", code, {"title": rule["title"]})
    return _done(c, f"已{'启用' if on else '停用'}规则“{rule['title']}”，下次比对时生效", "#rules")


def _held_row(c: Ctx, csrf_token: str, night: str, file: str) -> dict | None:
    """The held file of the night the admin acts on (`_runs`' row), once the request is checked."""
    require_role(c.user, "admin")
    check_csrf(c.request, csrf_token)
    _, held = _runs(c)
    return next((h for h in held if h["night"] == night and h["file"] == file), None)


def _delivered(c: Ctx, night: str, file: str) -> tuple[str | None, str | None]:
    """(the night's folder, the file's dataset) as the night's run report has them."""
    report = c.session.get(RunReport, datetime.fromisoformat(night).date())
    if report is None:
        return None, None
    said = json.loads(report.report)
    return said.get("folder"), next((f.get("dataset") for f in said.get("files", []) if f.get("file") == file), None)


@router.post("/admin/held/approve")
def held_approve(c: Ctx = Depends(ctx), csrf_token: str = Form(""), night: str = Form(""),  # noqa: B008
                 file: str = Form(""), confirmed: str = Form(""), basis: str = Form("")):
    row = _held_row(c, csrf_token, night, file)
    if row is None:
        return render(c, 400, error="没有这个暂缓入库的文件（可能已处理）")
    if row["approved"]:
        return _done(c, "该文件已批准，下次比对时入库", "#held")
    # An approval says on what grounds (who at the department confirmed the file, when): the audit
    # trail said who approved a cut file, not why.
    basis = basis.strip()[:500]
    if confirmed != "1" or not basis:
        return confirm(c, "/admin/held/approve", f"批准入库：{row['dataset']}（{night}）",
                       [f"文件：{file}", f"暂缓原因：{row['message']}",
                        "批准后，下次比对时按原样入库，并重新比对、下发这一夜的线索。请先与报送部门核实数据无误。",
                        # (a delivery is the dataset's whole extract: what it lacks counts as gone)
                        "入库后，这份文件就是该数据集的全部数据：上一版有、这份文件没有的记录都按已删除处理，"
                        "依据这些记录的线索会标记为“证据已消失”。如果文件不完整（行数明显变少），请让报送部门重新报送，不要批准。",
                        "下次比对前，可以在本页撤回批准。"],
                       {"night": night, "file": file}, back="/admin#held",
                       ask=("basis", "批准依据（必填）：与报送部门核实的情况，如 谁、何时确认这份文件完整无误", basis),
                       status_code=400 if confirmed == "1" else 200,
                       error="请填写批准依据：与报送部门核实的情况" if confirmed == "1" else "")
    folder, dataset = _delivered(c, night, file)
    with c.request.app.state.ledger.write() as s:
        approvals.approve(s, c.user.username, night, file, dataset, folder, basis)
    return _done(c, f"已批准 {row['dataset']}（{night}）入库：下次比对时入库", "#held")


@router.post("/admin/held/withdraw")
def held_withdraw(c: Ctx = Depends(ctx), csrf_token: str = Form(""), night: str = Form(""),  # noqa: B008
                  file: str = Form(""), confirmed: str = Form("")):
    """Withdraw an approval the next run has not applied yet: the file stays held. Confirmed, audited."""
    row = _held_row(c, csrf_token, night, file)
    if row is None or not row["approved"]:
        return _done(c, "这个文件没有待入库的批准（可能已入库或已撤回）", "#held")
    if confirmed != "1":
        return confirm(c, "/admin/held/withdraw", f"撤回入库批准：{row['dataset']}（{night}）",
                       [f"文件：{file}", "撤回后，这份文件继续暂缓、不入库，沿用上一期数据。",
                        "如果这一夜的比对此刻正在把它入库，撤回就来不及了：比对运行记录和操作记录会写明已入库。"],
                       {"night": night, "file": file}, danger=False)
    _, dataset = _delivered(c, night, file)
    with c.request.app.state.ledger.write() as s:
        approvals.withdraw(s, c.user.username, night, file, dataset)
    return _done(c, f"已撤回 {row['dataset']}（{night}）的入库批准：文件继续暂缓", "#held")


# ---------------------------------------------------------------- 不是本人 / 确认是本人 (issue 18)
# The record↔person decisions townships' verifications made (bidui.clues.link_decisions): the task
# force (admin, prefecture) lists and may revoke them; a county reads its own. Scoped by the
# decision's township.
DECISION_ROLES, REVOKE_ROLES = ("admin", "prefecture", "county"), ("admin", "prefecture")
DECISIONS_SHOWN = 500
DECISION_STATES = {"active": "生效", "revoked": "已撤销"}


def _decision_rows(c: Ctx, state: str, kind: str) -> tuple[list[dict], int]:
    from bidui.privacy import mask_id, mask_name

    q = (select(LinkDecision, Clue.subject_name).join(Clue, Clue.id == LinkDecision.clue_id)
         .where(scope.under(LinkDecision.township_code, c.user.scope)))
    if state == "active":
        q = q.where(LinkDecision.revoked_at.is_(None))
    elif state == "revoked":
        q = q.where(LinkDecision.revoked_at.is_not(None))
    if kind in link_decisions.KIND_LABELS:
        q = q.where(LinkDecision.kind == kind)
    found = c.session.execute(q.order_by(LinkDecision.decided_at.desc(), LinkDecision.id.desc())
                              .limit(DECISIONS_SHOWN + 1)).all()
    names = c.division_names()
    people = c.people({d.decided_by for d, _ in found} | {d.revoked_by for d, _ in found if d.revoked_by})
    rows = []
    for d, subject in found[:DECISIONS_SHOWN]:
        person_id = d.person_key.split("~")[0]
        rows.append({
            "id": d.id, "kind": d.kind, "label": link_decisions.KIND_LABELS.get(d.kind, "其他"),
            "source": present.dataset_title(d.dataset) or "其他数据", "record_name": mask_name(d.record_name),
            "record_id": mask_id(d.record_id_number),
            # The person: the clue's subject, named as the clue names them; the key is an ID number.
            "person_name": mask_name(subject or ""), "person_id": mask_id(person_id),
            # Masked, a record and its person often read alike: say when they are alike unmasked.
            "same": d.record_name == subject and d.record_id_number == person_id,
            "township": names.get(d.township_code, "其他乡镇"), "verifier": d.verifier_name,
            # The account signed in when it was signed: its login, and the person it belongs to.
            "account": people.get(d.decided_by, "已停用的账号"),
            "login": d.decided_by if d.decided_by in people else "", "day": f"{d.decided_at:%Y-%m-%d}",
            "clue_id": d.clue_id, "active": d.revoked_at is None,
            "revoked": None if d.revoked_at is None else {
                "who": people.get(d.revoked_by or "", "已停用的账号"), "at": f"{d.revoked_at:%Y-%m-%d %H:%M}",
                "why": d.revoke_reason or ""}})
    return rows, len(found)


def _decisions_page(c: Ctx, state: str = "", kind: str = "", status_code: int = 200, error: str = ""):
    rows, found = _decision_rows(c, state, kind)
    return c.render("link_decisions.html", status_code=status_code, rows=rows, more=found > DECISIONS_SHOWN,
                    shown=DECISIONS_SHOWN, state=state, kind=kind, states=DECISION_STATES,
                    kinds=link_decisions.KIND_LABELS, can_revoke=c.user.role in REVOKE_ROLES, error=error)


@router.get("/admin/link-decisions")
def decisions(c: Ctx = Depends(ctx), state: str = "", kind: str = ""):  # noqa: B008
    require_role(c.user, *DECISION_ROLES)
    return _decisions_page(c, state if state in DECISION_STATES else "", kind)


@router.post("/admin/link-decisions/{decision_id}/revoke")
def revoke_decision(decision_id: int, c: Ctx = Depends(ctx), csrf_token: str = Form(""),  # noqa: B008
                    reason: str = Form(""), confirmed: str = Form("")):
    require_role(c.user, *REVOKE_ROLES)
    check_csrf(c.request, csrf_token)
    in_scope = (LinkDecision.id == decision_id, scope.under(LinkDecision.township_code, c.user.scope))
    if c.session.scalar(select(LinkDecision.id).where(*in_scope)) is None:
        raise HTTPException(404)
    reason = reason.strip()[:500]
    if not reason:
        return _decisions_page(c, status_code=400, error="撤销须说明理由（写在要撤销的那一行）")
    if confirmed != "1":  # it may send a clue back to a township: asked once more, as the other admin actions are
        return confirm(c, f"/admin/link-decisions/{decision_id}/revoke", f"撤销关联决定 {decision_id}",
                       [f"撤销理由：{reason}",
                        "撤销后，以后的比对照常判断这条记录是不是本人。",
                        "如果这条线索的核实结论依据的就是这项认定、且尚未销号，线索将退回乡镇重新核实。"],
                       {"reason": reason}, back="/admin/link-decisions")
    try:
        with c.request.app.state.ledger.write() as s:
            decision = s.scalar(select(LinkDecision).where(*in_scope))
            if decision is None or decision.revoked_at is not None:
                c.flash(error="这条决定已经撤销过了")
                return RedirectResponse("/admin/link-decisions", status_code=303)
            link_decisions.revoke(s, decision, c.user, reason)
            clue = actions.decision_revoked(s, decision, c.user, default_due(c))
            clue_id = decision.clue_id
            state = clue.status if clue is not None else None
    except actions.ConflictError:  # the county or the nightly run changed the clue meanwhile: nothing revoked
        c.flash(error="这条线索刚被他人修改，没有撤销：请刷新后重试")
        return RedirectResponse("/admin/link-decisions", status_code=303)
    said = {RETURNED: "；这条线索的核实结论依据的就是这项认定，已退回乡镇重新核实",
            CLOSED: "；这条线索已销号，保持销号（处理记录中已注明撤销）"}.get(state, "")
    c.flash(message=f"已撤销关联决定（线索 {clue_id}）：以后的比对照常判断这条记录是不是本人{said}")
    return RedirectResponse("/admin/link-decisions", status_code=303)
