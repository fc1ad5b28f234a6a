"""Who is asking: sessions, login with lock-out, CSRF on every form, role checks.

The session cookie is signed (Starlette's SessionMiddleware, the installation secret), HttpOnly,
SameSite=Lax, and Secure when BIDUI_SECURE_COOKIES is set (behind HTTPS). A session lasts
SESSION_IDLE of inactivity; the login rotates the session (no fixation); a user is locked for
LOCKOUT after MAX_FAILURES wrong passwords in a row."""

from __future__ import annotations

import contextlib
import hmac
import secrets
import time
from datetime import datetime, timedelta

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui.clues.models import User
from bidui.clues.users import check_password

SESSION_IDLE = 8 * 3600  # seconds
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


class LoginRequired(Exception):  # noqa: N818 - a redirect, not an error
    pass


def login(session: Session, request: Request, username: str, password: str) -> tuple[User | None, str]:
    """(user, message): the user when the password is right and the account open."""
    user = session.scalar(select(User).where(User.username == username))
    now = datetime.now()
    if user is None or not user.active:
        check_password_dummy(password)
        return None, "用户名或密码错误"
    if user.locked_until and user.locked_until > now:
        return None, f"连续输错密码，账号已锁定至 {user.locked_until:%H:%M}"
    if not check_password(user, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until, user.failed_logins = now + LOCKOUT, 0
            return None, f"连续输错密码 {MAX_FAILURES} 次，账号锁定 {int(LOCKOUT.total_seconds() // 60)} 分钟"
        return None, "用户名或密码错误"
    user.failed_logins, user.locked_until = 0, None
    request.session.clear()  # a new session at login: an old cookie is worth nothing
    request.session.update({"uid": user.id, "csrf": secrets.token_urlsafe(32), "seen": int(time.time()),
                            "nonce": secrets.token_urlsafe(8)})
    return user, ""


_DUMMY = None


def check_password_dummy(password: str) -> None:
    """Spend the time a real check takes, so an unknown user name is not told by the clock."""
    global _DUMMY
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    if _DUMMY is None:
        _DUMMY = hasher.hash(secrets.token_hex(8))
    with contextlib.suppress(Exception):  # the point is the time spent
        hasher.verify(_DUMMY, password)


def current_user(request: Request, session: Session) -> User:
    uid, seen = request.session.get("uid"), request.session.get("seen", 0)
    if not uid or time.time() - seen > SESSION_IDLE:
        request.session.clear()
        raise LoginRequired
    user = session.get(User, uid)
    if user is None or not user.active:
        request.session.clear()
        raise LoginRequired
    request.session["seen"] = int(time.time())
    return user


def csrf_token(request: Request) -> str:
    return request.session.get("csrf", "")


def check_csrf(request: Request, token: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not token or not hmac.compare_digest(expected, token):
        raise HTTPException(403, "表单已失效，请刷新页面后重试")


def require_role(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise HTTPException(404)  # a page one's role has no business with does not exist for it
