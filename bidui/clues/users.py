"""Users of the ledger: role, scope (a division code), hashed password (argon2)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.actions import now
from bidui.clues.models import User

ROLES = ("township", "county", "prefecture", "admin")
# The division level each role's scope must name.
ROLE_LEVEL = {"township": "township", "county": "county", "prefecture": "prefecture", "admin": "prefecture"}
_hasher = PasswordHasher()


class UserError(ValueError):
    pass


def add_user(session: Session, username: str, display_name: str, role: str, scope_code: str, password: str,
             position: str | None = None) -> User:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if not scope.is_code(scope_code):
        raise UserError(f"scope must be a 12-digit division code, not {scope_code!r}")
    if scope.level(scope_code) != ROLE_LEVEL[role]:
        raise UserError(f"a {role} user's scope is a {ROLE_LEVEL[role]} code; {scope_code} is a {scope.level(scope_code)}")
    if len(password) < 8:
        raise UserError("password must have at least 8 characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} exists")
    user = User(username=username, display_name=display_name, role=role, scope=scope_code, position=position,
                password_hash=_hasher.hash(password), failed_logins=0, active=True, created_at=now())
    session.add(user)
    session.flush()
    return user


def check_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except VerificationError:
        return False


def by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        raise UserError(f"no active user {username!r}")
    return user
