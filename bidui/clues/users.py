"""Users of the ledger: role, scope (a division code), hashed password (argon2), and what an
administrator does to them (add, disable, enable, reset a password, unlock, re-scope, edit the
real name and position), each written to the audit trail (`audit_events`) in the same
transaction. The web app's admin page and `bidui users …` both call these, so the checks and the
audit are in one place."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.actions import now
from bidui.clues.models import AuditEvent, Division, User

ROLES = ("township", "county", "prefecture", "admin")
ROLE_LABELS = {"township": "乡镇核实员", "county": "县级审核员", "prefecture": "市级督导", "admin": "专班管理员"}
# The division level each role's scope must name.
ROLE_LEVEL = {"township": "township", "county": "county", "prefecture": "prefecture", "admin": "prefecture"}
LEVEL_LABELS = {"province": "省", "prefecture": "市（州）", "county": "县（区）", "township": "乡镇", "village": "村"}
MIN_PASSWORD = 8
_hasher = PasswordHasher()

# How each audited action reads to a person (the admin page's audit list).
AUDIT_LABELS = {
    "user_added": "添加用户", "user_disabled": "停用用户", "user_enabled": "恢复用户", "password_reset": "重置密码",
    "user_unlocked": "解除锁定", "user_rescoped": "调整角色与范围", "user_profile": "修改姓名职务",
    "rule_disabled": "停用规则", "rule_enabled": "启用规则",
    "held_file_approved": "批准暂缓文件入库", "held_file_applied": "暂缓文件已入库",
}


class UserError(ValueError):
    """A request an administrator can correct; the text is shown to them as it is."""


@dataclass
class Actor:
    """Who does it (a username, or 命令行 for the CLI) and which division they administer."""

    name: str
    scope: str | None = None  # None: the whole installation (the CLI, run by whoever runs bidui)


CLI = Actor("命令行")


def audit(session: Session, actor: str, kind: str, target: str, payload: dict | None = None) -> AuditEvent:
    event = AuditEvent(at=now(), actor=actor, kind=kind, target=target, payload=payload or None)
    session.add(event)
    return event


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"密码至少 {MIN_PASSWORD} 位")


def _check_scope(role: str, scope_code: str, actor: Actor) -> None:
    if role not in ROLES:
        raise UserError("角色应为：" + "、".join(f"{ROLE_LABELS[r]}（{r}）" for r in ROLES))
    if not scope.is_code(scope_code):
        raise UserError("管辖范围应为 12 位行政区划代码")
    if scope.level(scope_code) != ROLE_LEVEL[role]:
        raise UserError(f"{ROLE_LABELS[role]}的管辖范围应是{LEVEL_LABELS[ROLE_LEVEL[role]]}，"
                        f"{scope_code} 是{LEVEL_LABELS[scope.level(scope_code)]}")
    if actor.scope is not None and not scope.covers(actor.scope, scope_code):
        raise UserError("该管辖范围不在您的管理范围内")


def add_user(session: Session, username: str, display_name: str, role: str, scope_code: str, password: str,
             position: str | None = None, *, real_name: str | None = None, actor: Actor | None = None) -> User:
    """A new user. Audited when an actor is given (the admin page, the CLI); fixtures and the demo
    seed users without one."""
    username = username.strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise UserError("用户名不能为空、不能含空格，最长 64 个字符")
    _check_scope(role, scope_code, actor or CLI)
    _check_password(password)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"用户名 {username} 已存在")
    user = User(username=username, display_name=display_name or username, role=role, scope=scope_code,
                position=position or None, real_name=real_name or None, password_hash=_hasher.hash(password),
                failed_logins=0, active=True, created_at=now())
    session.add(user)
    session.flush()
    if actor is not None:
        audit(session, actor.name, "user_added", username, {"角色": ROLE_LABELS[role], "范围": scope_code})
    return user


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
    """Set a new password (a temporary one unless given) and clear a lock-out; returns it (the
    caller shows it once; it is stored only hashed and never audited)."""
    user = managed(session, username, actor)
    password = password or temporary_password()
    _check_password(password)
    user.password_hash, user.failed_logins, user.locked_until = _hasher.hash(password), 0, None
    audit(session, actor.name, "password_reset", username)
    return password


def unlock(session: Session, username: str, actor: Actor) -> User:
    user = managed(session, username, actor)
    user.failed_logins, user.locked_until = 0, None
    audit(session, actor.name, "user_unlocked", username)
    return user


def rescope(session: Session, username: str, role: str, scope_code: str, actor: Actor) -> User:
    user = managed(session, username, actor)
    _check_scope(role, scope_code, actor)
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
        value = value.strip()
        if len(value) > 64:
            raise UserError(f"{label}最长 64 个字符")
        if field == "display_name" and not value:
            raise UserError("显示名不能为空")
        if (getattr(user, field) or "") != value:
            setattr(user, field, value or None)
            changed[label] = value
    if changed:
        audit(session, actor.name, "user_profile", username, changed)
    return user


def is_locked(user: User) -> bool:
    return bool(user.locked_until and user.locked_until > now())


def division_name(session: Session, code: str) -> str:
    row = session.get(Division, code)
    return row.name if row else code
