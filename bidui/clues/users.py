"""Users of the ledger: role, scope (a division code), hashed password (argon2), and what an
administrator does to them (add, disable, enable, reset a password, unlock, re-scope, edit the
real name and position, end their web sessions), each written to the audit trail
(`audit_events`) in the same transaction. The web app's admin page and `bidui users …` both call
these, so the checks and the audit are in one place — the password policy and the user name rule
included, and the revoking of sessions that disabling a user or resetting a password implies."""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.actions import now
from bidui.clues.models import AuditEvent, Division, LoginThrottle, User, WebSession
from bidui.clues.present import signer
from bidui.clues.states import MAX_SIGNER

ROLES = ("township", "county", "prefecture", "admin")
ROLE_LABELS = {"township": "乡镇核实员", "county": "县级审核员", "prefecture": "市级督导", "admin": "专班管理员"}
# The division level each role's scope must name.
ROLE_LEVEL = {"township": "township", "county": "county", "prefecture": "prefecture", "admin": "prefecture"}
LEVEL_LABELS = {"province": "省", "prefecture": "市（州）", "county": "县（区）", "township": "乡镇", "village": "村"}
MIN_PASSWORD = 10
MIN_DISTINCT = 4  # different characters a password needs at least
# Letters, digits and . _ - between a letter or digit at each end: `..` opened /admin/users/..,
# which the browser reads as /admin/ (its account could not be managed on the web), and `admin.`
# passed for `admin`.
USERNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])")
# Names that stand for no person: `system` is how the nightly run writes its events, which every
# page shows as 系统比对 (a user named so signed clues as the system).
RESERVED_USERNAMES = frozenset({"system"})
# Control characters; with the invisible ones names drop (bidui.names: zero-width, direction
# overrides and isolates), what may not be in a name, position or display name: "王\u200b芳" and
# "\u202e芳王" both showed as 王芳 beside the real 王芳 in the user list.
_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")
_hasher = PasswordHasher()

# How each audited action reads to a person (the admin page's audit list).
AUDIT_LABELS = {
    "user_added": "添加用户", "user_disabled": "停用用户", "user_enabled": "恢复用户", "password_reset": "重置密码",
    "user_unlocked": "解除锁定", "user_rescoped": "调整角色与范围", "user_profile": "修改姓名职务",
    "rule_disabled": "停用规则", "rule_enabled": "启用规则",
    "held_file_approved": "批准暂缓文件入库", "held_file_applied": "暂缓文件已入库", "held_file_withdrawn": "撤回入库批准",
    "login_failed": "登录失败", "password_changed": "修改密码", "sessions_ended": "结束登录会话",
}
# Why a web session ended early (web_sessions.revoked_why), as the admin page says it.
REVOKED_LABELS = {"logout": "退出登录", "password_changed": "修改了密码", "password_reset": "密码被重置",
                  "disabled": "账号停用", "ended": "管理员结束"}


class UserError(ValueError):
    """A request an administrator can correct; the text is shown to them as it is."""


@dataclass
class Actor:
    """Who does it (a username, or 命令行 for the CLI) and which division they administer."""

    name: str
    scope: str | None = None  # None: the whole installation (the CLI, run by whoever runs bidui)


CLI = Actor("命令行")


def people(session: Session, usernames: set[str]) -> dict[str, str]:
    """How the people behind usernames read on a page or in a file: their real name (else the
    account's display name), with their position. The nightly run is 系统比对."""
    out = {"system": "系统比对"}
    for u in session.scalars(select(User).where(User.username.in_(usernames - {"system"}))):
        out[u.username] = signer(u.real_name or u.display_name, u.position)
    return out


def audit(session: Session, actor: str, kind: str, target: str, payload: dict | None = None) -> AuditEvent:
    event = AuditEvent(at=now(), actor=actor, kind=kind, target=target, payload=payload or None)
    session.add(event)
    return event


@cache
def common_passwords() -> frozenset[str]:
    """The passwords guessed first (bidui/data/common_passwords.txt, lower case; see its header)."""
    text = resources.files("bidui").joinpath("data/common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def check_password_policy(password: str, username: str) -> None:
    """The one password policy: at creation, at a reset and at a change. Length first (the
    strongest single defence against guessing), then what a guesser tries first: spaces, the
    user name, the common passwords shipped with the package."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"密码至少 {MIN_PASSWORD} 位")
    if not password.strip():
        raise UserError("密码不能全是空格")
    if username and username.strip().lower() in password.lower():
        raise UserError("密码不能包含用户名")
    if password.strip().lower() in common_passwords():
        raise UserError("这个密码太常见，很容易被猜中，请换一个")
    # One key held down, or two typed in turn (aaaaaaaaaa, 1212121212): long, and guessed at once.
    if len(set(password.lower())) < MIN_DISTINCT:
        raise UserError(f"密码至少要用 {MIN_DISTINCT} 个不同的字符（不能是同一个字重复）")
    # A run along the keys (12345678901, 0987654321x, abcdefghijk): long, distinct, and guessed
    # at once; not in the common list at every length (a red team set 12345678901, 2026-12-07).
    if _in_turn(password) >= len(password) - 2:
        raise UserError("密码不能是依次相连的数字或字母（如 12345678901、abcdefghijk），请换一个")


def _in_turn(password: str) -> int:
    """How many neighbouring characters are one after the other, either way (9 and 0 too)."""
    text = password.lower()
    steps = 0
    for a, b in itertools.pairwise(text):
        if a.isdigit() and b.isdigit():
            steps += (int(b) - int(a)) % 10 in (1, 9)
        else:
            steps += abs(ord(b) - ord(a)) == 1 and a.isalpha() and b.isalpha()
    return steps


def check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise UserError("用户名为 2–64 个字符，只能用英文字母、数字和 . _ -（不含空格），首尾须是字母或数字")
    if username.lower() in RESERVED_USERNAMES:
        raise UserError(f"用户名 {username} 是系统保留的，请换一个")


def person_text(value: str | None, label: str) -> str:
    """A name, position or display name as typed on the admin page or given to the CLI, checked
    and trimmed: at most what a signature holds (MAX_SIGNER: a longer real name was accepted, and
    its user could then never sign), and no character that hides or reorders text."""
    from bidui.names import _INVISIBLE  # (as bidui.text.typed: polars is not loaded for the CLI's sake)

    value = (value or "").strip()
    if _CONTROL.search(value) or _INVISIBLE.search(value):
        raise UserError(f"{label}含有看不见的字符（如零宽空格、文字方向控制符），请重新输入")
    if len(value) > MAX_SIGNER:
        raise UserError(f"{label}最长 {MAX_SIGNER} 个字符")
    return value


def hash_password(password: str, username: str) -> str:
    """The policy checked, then the argon2 hash (slow on purpose: compute it outside any write
    transaction where the caller can)."""
    check_password_policy(password, username)
    return _hasher.hash(password)


def _check_scope(role: str, scope_code: str, actor: Actor, session: Session | None = None, exists: bool = True) -> None:
    """The role is one of ROLES and its scope a division of its level within the actor's; when
    `exists` and the ledger knows its divisions (published once), one of them (a mistyped township
    code gave an account an empty inbox called 本乡镇, listed by its bare code)."""
    if role not in ROLES:
        raise UserError("角色应为：" + "、".join(f"{ROLE_LABELS[r]}（{r}）" for r in ROLES))
    if not scope.is_code(scope_code):
        raise UserError("管辖范围应为 12 位行政区划代码")
    if scope.level(scope_code) != ROLE_LEVEL[role]:
        # Named as the page's list names it (a code means nothing to the person who picked it).
        shown = division_name(session, scope_code) if session is not None else scope_code
        raise UserError(f"{ROLE_LABELS[role]}的管辖范围应是{LEVEL_LABELS[ROLE_LEVEL[role]]}，"
                        f"{shown} 是{LEVEL_LABELS[scope.level(scope_code)]}")
    if actor.scope is not None and not scope.covers(actor.scope, scope_code):
        raise UserError("该管辖范围不在您的管理范围内")
    if exists and session is not None and not _known_division(session, scope_code):
        raise UserError(f"没有行政区划代码为 {scope_code} 的地方：请从列表中选择，或核对代码")


def add_user(session: Session, username: str, display_name: str, role: str, scope_code: str, password: str,
             position: str | None = None, *, real_name: str | None = None, actor: Actor | None = None) -> User:
    """A new user. Audited when an actor is given (the admin page, the CLI), and then the password is
    one the actor chose: the user changes it at the first sign-in. Fixtures and the demo seed users
    without one (the demo's passwords are printed for anyone to use)."""
    username = username.strip()
    check_username(username)
    # (the 姓名 first: the add page makes the display name of it, and says 姓名)
    real_name, position, display_name = (person_text(real_name, "姓名"), person_text(position, "职务"),
                                         person_text(display_name, "显示名"))
    _check_scope(role, scope_code, actor or CLI, session, exists=actor is not None)
    check_password_policy(password, username)
    # Names that differ only in case are one person's to a clerk (zhaomin, Zhaomin): not two accounts.
    taken = session.scalar(select(User.username).where(func.lower(User.username) == username.lower()))
    if taken is not None:
        raise UserError(f"用户名 {username} 已存在" if taken == username
                        else f"用户名 {username} 与已有的 {taken} 只差大小写，请换一个")
    user = User(username=username, display_name=display_name or username, role=role, scope=scope_code,
                position=position or None, real_name=real_name or None, password_hash=_hasher.hash(password),
                failed_logins=0, active=True, created_at=now(), must_change_password=actor is not None)
    session.add(user)
    session.flush()
    if actor is not None:
        audit(session, actor.name, "user_added", username, {"角色": ROLE_LABELS[role], "范围": scope_code})
    return user


def _known_division(session: Session, code: str) -> bool:
    """The division is in the ledger's (the prefecture: some division lies under it); any code
    while the ledger has none yet (before the first night is published: accounts are made first)."""
    if session.scalar(select(func.count()).select_from(Division)) == 0:
        return True
    if scope.level(code) == "prefecture":
        return session.scalar(select(Division.code).where(scope.under(Division.code, code)).limit(1)) is not None
    return session.get(Division, code) is not None


def check_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except VerificationError:
        return False


def by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        raise UserError(f"没有在用的用户 {username}")
    return user


def managed(session: Session, username: str, actor: Actor) -> User:
    """A user the actor may manage: one that exists and lies in the actor's scope (another
    division's user is "not found", as a clue out of scope is)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or (actor.scope is not None and not scope.covers(actor.scope, user.scope)):
        raise UserError(f"没有用户 {username}")
    return user


def listed(session: Session, actor: Actor) -> list[User]:
    q = select(User).order_by(User.role, User.scope, User.username)
    if actor.scope is not None:
        q = q.where(scope.under(User.scope, actor.scope))
    return list(session.scalars(q))


def disable(session: Session, username: str, actor: Actor) -> User:
    user = managed(session, username, actor)
    if user.username == actor.name:
        raise UserError("不能停用自己的账号")
    if not user.active:
        raise UserError(f"{username} 已是停用状态")
    user.active = False  # the session check reads this on every request: the user is out at once
    revoke_sessions(session, user.id, "disabled")
    audit(session, actor.name, "user_disabled", username)
    return user


def enable(session: Session, username: str, actor: Actor) -> User:
    user = managed(session, username, actor)
    if user.active:
        raise UserError(f"{username} 已是在用状态")
    user.active, user.failed_logins, user.locked_until = True, 0, None
    audit(session, actor.name, "user_enabled", username)
    return user


def temporary_password() -> str:
    """Twelve characters a person can read out and type: no 0/O, 1/l/I."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def reset_password(session: Session, username: str, actor: Actor, password: str | None = None) -> str:
    """Set a new password (a temporary one unless given), clear a lock-out and end the user's
    sessions (whoever knew the old password is out); returns it (the caller shows it once; it is
    stored only hashed and never audited). The administrator knows it: the user must change it at
    the next sign-in."""
    user = managed(session, username, actor)
    password = password or temporary_password()
    user.password_hash = hash_password(password, user.username)
    user.must_change_password = True
    _clear_blocks(session, user)
    revoke_sessions(session, user.id, "password_reset")
    audit(session, actor.name, "password_reset", username)
    return password


def change_password(session: Session, user_id: int, password_hash: str, keep_session: int | None) -> User:
    """The user's own change (hash_password'd and the old password checked by the caller, outside
    this transaction): every other session of theirs ends, the one they are using stays."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise UserError("账号已停用")
    user.password_hash, user.must_change_password = password_hash, False
    revoke_sessions(session, user.id, "password_changed", keep=keep_session)
    audit(session, user.username, "password_changed", user.username)
    return user


def unlock(session: Session, username: str, actor: Actor) -> User:
    """Lift the blocks on the user's (account, address) pairs. The sessions stay: a block comes
    from wrong passwords typed somewhere (often by someone else), which says nothing against the
    sessions the user has open; ending them would hand a guesser the very lock-out the per-pair
    blocks exist to prevent."""
    user = managed(session, username, actor)
    _clear_blocks(session, user)
    audit(session, actor.name, "user_unlocked", username)
    return user


def _clear_blocks(session: Session, user: User) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.username == user.username,
                                                LoginThrottle.kind.in_(("pair", "account"))))
    user.failed_logins, user.locked_until = 0, None


def revoke_sessions(session: Session, user_id: int, why: str, keep: int | None = None,
                    only: int | None = None) -> int:
    """End a user's open sessions (all, all but `keep`, or just `only`); returns how many. Every
    cookie of theirs stops working at its next request."""
    q = update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
    if keep is not None:
        q = q.where(WebSession.id != keep)
    if only is not None:
        q = q.where(WebSession.id == only)
    return session.execute(q.values(revoked_at=now(), revoked_why=why)).rowcount or 0


def open_sessions(session: Session, user_id: int, idle_seconds: int, max_seconds: int) -> list[WebSession]:
    """The user's sessions still good for a request: not ended, within both lifetimes."""
    at = now()
    return list(session.scalars(select(WebSession).where(
        WebSession.user_id == user_id, WebSession.revoked_at.is_(None),
        WebSession.created_at > at - timedelta(seconds=max_seconds),
        WebSession.last_seen > at - timedelta(seconds=idle_seconds)).order_by(WebSession.last_seen.desc())))


def end_sessions(session: Session, username: str, actor: Actor, session_id: int | None = None) -> int:
    """An administrator ends one session of the user (by id) or all of them. Audited."""
    user = managed(session, username, actor)
    ended = revoke_sessions(session, user.id, "ended", only=session_id)
    if ended:
        audit(session, actor.name, "sessions_ended", username, {"结束会话": f"{ended} 个"})
    return ended


def failed_logins_since(session: Session, username: str, since: datetime) -> tuple[int, int]:
    """(failed sign-ins, distinct addresses) on the account since then, from the audit trail."""
    rows = session.scalars(select(AuditEvent.payload).where(
        AuditEvent.kind == "login_failed", AuditEvent.target == username, AuditEvent.at >= since)).all()
    return len(rows), len({(p or {}).get("地址") for p in rows})


def rescope(session: Session, username: str, role: str, scope_code: str, actor: Actor) -> User:
    user = managed(session, username, actor)
    _check_scope(role, scope_code, actor, session)
    if user.username == actor.name and role != user.role:
        raise UserError("不能修改自己的角色")
    before = {"角色": ROLE_LABELS.get(user.role, user.role), "范围": user.scope}
    user.role, user.scope = role, scope_code
    audit(session, actor.name, "user_rescoped", username,
          {"原": before, "新": {"角色": ROLE_LABELS[role], "范围": scope_code}})
    return user


def edit_profile(session: Session, username: str, actor: Actor, real_name: str | None = None,
                 position: str | None = None, display_name: str | None = None) -> User:
    user = managed(session, username, actor)
    changed = {}
    for field, value, label in (("real_name", real_name, "姓名"), ("position", position, "职务"),
                                ("display_name", display_name, "显示名")):
        if value is None:
            continue
        value = person_text(value, label)
        if field == "display_name" and not value:
            raise UserError("显示名不能为空")
        if (getattr(user, field) or "") != value:
            setattr(user, field, value or None)
            changed[label] = value
    if changed:
        audit(session, actor.name, "user_profile", username, changed)
    return user


def is_locked(user: User) -> bool:
    """Some (account, address) pair of the user is blocked (users.locked_until keeps the latest
    such time for the lists; the login checks the pairs themselves)."""
    return bool(user.locked_until and user.locked_until > now())


def division_name(session: Session, code: str) -> str:
    """A division as people call it: its name, 全市 for the prefecture (not itself a row of the
    divisions), else its code."""
    row = session.get(Division, code)
    return row.name if row else ("全市" if scope.is_code(code) and scope.level(code) == "prefecture" else code)
