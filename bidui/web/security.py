"""Who is asking: server-side sessions, a login that cannot be turned against its users, CSRF on
every form, role checks.

Sessions. The cookie (Starlette's SessionMiddleware: signed with the installation secret, HttpOnly,
SameSite=Lax, Secure when BIDUI_SECURE_COOKIES is set) carries a random session id, the CSRF token
and passing state (a flash message, a search); who is signed in comes only from the session's row
in the ledger (`web_sessions`, which keeps the id's SHA-256). So logging out, changing or resetting
the password, disabling the user or an administrator's "end" revoke the row and every copy of the
cookie is worth nothing at its next request. A session ends after `[web] session_idle_hours`
without a request and `session_max_hours` after the sign-in, whatever happens; `last_seen` is
written at most once a minute (not a write per request).

Login. Failures are counted per client address, per account and per (account, address) pair
(`login_throttles`). An address that keeps failing waits longer and longer between attempts (it is
answered "请稍后再试" at once, nothing sleeps); an account failing from many addresses makes
addresses the user never signed in from wait; only the pair is ever blocked outright, so someone
guessing from elsewhere cannot lock the real user out of their own computer. Unknown names are
counted and blocked exactly as real ones, every answer costs one argon2 verification (of a dummy
hash when there is no real one to check), and a disabled account reads as a wrong password: the
answers do not tell which names exist. The verification runs outside any transaction, on a few
threads of its own (HASH_THREADS), so a flood of bogus logins neither holds the ledger's write
lock nor takes the threads other pages run on. Each failure is audited (`login_failed`: the
address, and the account only if it exists — a password typed into the name field is never
kept)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from fastapi import HTTPException, Request
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bidui.clues.actions import now
from bidui.clues.models import LoginThrottle, User, WebSession
from bidui.clues.users import audit
from bidui.config import WebSettings

SESSION_IDLE = 8 * 3600  # seconds: the cookie's own expiry (the ledger's row decides; see WebSettings)
SEEN_EVERY = timedelta(seconds=60)  # last_seen is written at most this often per session
# Failures an address may make freely in a window, then it waits 1 s, 2 s, 4 s … up to DELAY_CAP
# between attempts; the same for an account, from addresses the user never signed in from.
ADDRESS_FREE, ACCOUNT_FREE = 10, 20
DELAY_CAP = timedelta(seconds=60)
PAIR_BLOCK_AFTER, PAIR_BLOCK = 5, timedelta(minutes=15)  # failures of one account from one address
WINDOW = timedelta(minutes=15)  # a counter without a failure this long starts again from zero
# Password checks at once, on threads of their own run at a lower CPU priority (HASH_NICE): each
# argon2 verification takes 64 MiB and up to four cores' worth of threads for a fifth of a second,
# and a flood of them must queue behind the pages people are working on, not in front of them.
HASH_THREADS = max(1, (os.cpu_count() or 2) // 2)
HASH_NICE = 10

WRONG = "用户名或密码错误"
LATER = "尝试过于频繁，请稍后再试"
BLOCKED = f"连续输错密码，该账号在本机已锁定 {PAIR_BLOCK.seconds // 60} 分钟，请稍后再试，或请管理员解除锁定"
T = TypeVar("T")
UNKNOWN_USER = "未知用户"  # the audit's target when the name typed is nobody's

_hasher = PasswordHasher()
_dummy_hash = _hasher.hash(secrets.token_hex(16))  # same parameters as a real one: same time to verify
_hash_pool: ThreadPoolExecutor | None = None


class LoginRequired(Exception):  # noqa: N818 - a redirect, not an error
    pass


class PasswordToChange(Exception):  # noqa: N818 - a redirect, not an error
    """The user signed in with a password an administrator set: only the profile page opens."""


# What opens while the password is one an administrator set (signing out does not ask who is in).
PASSWORD_PAGES = frozenset({"/profile", "/profile/password"})


# ---------------------------------------------------------------- the client's address


def client_address(request: Request) -> str:
    """The socket's peer, or — only when that peer is a trusted proxy — the last address in the
    configured header that is not itself a trusted proxy (the one the nearest proxy saw)."""
    peer = request.client.host if request.client else ""
    settings: WebSettings = request.app.state.web
    if not settings.trusted_proxy_header or not _trusted(peer, settings):
        return peer[:64]
    hops = [h.strip() for h in request.headers.get(settings.trusted_proxy_header, "").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer[:64]  # a header we cannot read: the peer, not a guess
        if not _trusted(hop, settings):
            return hop
    return peer[:64]


def _trusted(address: str, settings: WebSettings) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies)


# ---------------------------------------------------------------- login


@dataclass
class _Seen:
    """What the first, read-only look found."""

    user_id: int | None
    password_hash: str | None  # None: verify the dummy (no such user, disabled, or refused already)
    refusal: str  # "" or the answer already decided (LATER, BLOCKED)


def _delay(failures: int, free: int) -> timedelta:
    return timedelta(0) if failures < free else min(timedelta(seconds=2 ** min(failures - free, 16)), DELAY_CAP)


def _current(row: LoginThrottle | None, at: datetime) -> int:
    return row.failures if row is not None and at - row.last_failure < WINDOW else 0


def _waiting(row: LoginThrottle | None, free: int, at: datetime) -> bool:
    failures = _current(row, at)
    return failures >= free and at < row.last_failure + _delay(failures, free)


def _throttles(s: Session, name: str, address: str) -> dict[str, LoginThrottle]:
    keys = or_(and_(LoginThrottle.kind == "address", LoginThrottle.username == "", LoginThrottle.address == address),
               and_(LoginThrottle.kind == "account", LoginThrottle.username == name, LoginThrottle.address == ""),
               and_(LoginThrottle.kind == "pair", LoginThrottle.username == name, LoginThrottle.address == address))
    return {t.kind: t for t in s.scalars(select(LoginThrottle).where(keys))}


def _look(ledger, name: str, address: str, at: datetime) -> _Seen:
    with ledger.read() as s:
        user = s.scalar(select(User).where(User.username == name)) if name else None
        rows = _throttles(s, name, address)
        known = user is not None and s.scalar(select(WebSession.id).where(
            WebSession.user_id == user.id, WebSession.address == address).limit(1)) is not None
    pair = rows.get("pair")
    if pair is not None and pair.blocked_until and pair.blocked_until > at:
        refusal = BLOCKED
    elif _waiting(rows.get("address"), ADDRESS_FREE, at) or (not known and _waiting(rows.get("account"), ACCOUNT_FREE, at)):
        refusal = LATER
    else:
        refusal = ""
    real = user is not None and user.active and not refusal
    return _Seen(user.id if user is not None else None, user.password_hash if real else None, refusal)


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not on every platform: then at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


def _verify(password_hash: str | None, password: str) -> bool:
    ok = False
    with contextlib.suppress(Exception):  # a mismatch, or a hash that cannot be read: no
        ok = _hasher.verify(password_hash or _dummy_hash, password)
    return ok and password_hash is not None


def _count_failure(s: Session, name: str, address: str, at: datetime) -> str:
    """One more failure for the address, the account and the pair; blocks the pair at
    PAIR_BLOCK_AFTER. Returns the answer."""
    rows = _throttles(s, name, address)
    answer = WRONG
    for kind, username, addr in (("address", "", address), ("account", name, ""), ("pair", name, address)):
        row = rows.get(kind)
        if row is None:
            row = LoginThrottle(kind=kind, username=username, address=addr, failures=0, last_failure=at)
            s.add(row)
        row.failures, row.last_failure = _current(row, at) + 1, at
        if kind == "pair" and row.failures >= PAIR_BLOCK_AFTER:
            row.failures, row.blocked_until, answer = 0, at + PAIR_BLOCK, BLOCKED
            user = s.scalar(select(User).where(User.username == name))
            if user is not None:  # the lists' "locked" mark (users.is_locked)
                user.locked_until = max(user.locked_until or at, row.blocked_until)
    return answer


def _one_write(ledger, work: Callable[[Session], T]) -> T:
    """`work` in one short write, tried again once: two first failures of a new pair at once, one
    insert of its throttle rows loses; the second try updates them."""
    for attempt in (1, 2):
        try:
            with ledger.write() as s:
                return work(s)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _failed(s: Session, seen: _Seen, name: str, address: str, at: datetime, actor: str, target: str,
            wrong: str) -> str:
    """A refused password counted against the throttle and audited (the address, never what was
    typed); the answer. `wrong`: the audit's reason for a wrong password."""
    answer = seen.refusal or _count_failure(s, name, address, at)
    audit(s, actor, "login_failed", target,
          {"地址": address, "原因": {WRONG: wrong, LATER: "尝试过于频繁", BLOCKED: "该地址已锁定"}[answer]})
    return answer


def _record(ledger, seen: _Seen, ok: bool, name: str, address: str, agent: str, at: datetime) -> tuple[str, str]:
    """The outcome in one short write: (the new session's id or "", the answer when refused)."""
    def work(s: Session) -> tuple[str, str]:
        user = s.get(User, seen.user_id) if ok else None
        if user is not None and user.active:
            return _open_session(s, user, name, address, agent, at), ""
        target = name if seen.user_id is not None else UNKNOWN_USER
        return "", _failed(s, seen, name, address, at, "登录页", target, "用户名或密码错误")
    return _one_write(ledger, work)


def _open_session(s: Session, user: User, name: str, address: str, agent: str, at: datetime) -> str:
    s.execute(delete(LoginThrottle).where(LoginThrottle.kind == "pair", LoginThrottle.username == name,
                                          LoginThrottle.address == address))
    blocked = s.scalar(select(LoginThrottle.blocked_until).where(
        LoginThrottle.kind == "pair", LoginThrottle.username == name, LoginThrottle.blocked_until > at)
        .order_by(LoginThrottle.blocked_until.desc()).limit(1))
    user.failed_logins, user.locked_until = 0, blocked
    # Housekeeping while we are writing anyway: counters long quiet, sessions long dead.
    s.execute(delete(LoginThrottle).where(LoginThrottle.last_failure < at - timedelta(days=1),
                                          or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < at)))
    s.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.last_seen < at - timedelta(days=90)))
    token = secrets.token_urlsafe(32)
    s.add(WebSession(token_hash=_digest(token), user_id=user.id, created_at=at, last_seen=at, address=address,
                     user_agent=agent[:120], revoked_at=None, revoked_why=None))
    return token


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def login(request: Request, username: str, password: str) -> tuple[User | None, str]:
    """(user, "") when the password is right, the account open and the attempt not throttled;
    else (None, the answer). Starts the new session (a fresh cookie: no fixation)."""
    global _hash_pool
    if _hash_pool is None:
        _hash_pool = ThreadPoolExecutor(HASH_THREADS, "bidui-hash", initializer=_lower_priority)
    ledger, at = request.app.state.ledger, now()
    name, address = username.strip()[:64], client_address(request)
    seen = await run_in_threadpool(_look, ledger, name, address, at)
    ok = await asyncio.get_running_loop().run_in_executor(_hash_pool, _verify, seen.password_hash, password)
    token, answer = await run_in_threadpool(_record, ledger, seen, ok, name, address,
                                            request.headers.get("user-agent", ""), at)
    if not token:
        return None, answer
    back = request.session.get("after_login")
    request.session.clear()  # a new session at login: an old cookie is worth nothing
    request.session.update({"sid": token, "csrf": secrets.token_urlsafe(32)})
    if back:
        request.session["after_login"] = back
    with ledger.read() as s:
        return s.get(User, seen.user_id), ""


def logout(request: Request) -> None:
    token, owner = request.session.get("sid"), None
    if token:
        with request.app.state.ledger.write() as s:
            owner = s.scalar(select(WebSession.user_id).where(WebSession.token_hash == _digest(token)))
            s.execute(update(WebSession).where(WebSession.token_hash == _digest(token), WebSession.revoked_at.is_(None))
                      .values(revoked_at=now(), revoked_why="logout"))
    request.session.clear()
    if token:  # another window of this browser, still on a page, is told why it must sign in again
        request.session["signed_out"] = {"user": owner}


def check_password_dummy(password: str) -> None:
    """Spend the time a real check takes (a check refused before any hash is looked at)."""
    _verify(None, password)


# ---------------------------------------------------------------- every request


def current_session(request: Request, session: Session) -> WebSession | None:
    """The request's open session in the ledger, or None (no cookie, ended, or expired)."""
    token = request.session.get("sid")
    if not token or not isinstance(token, str):
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _digest(token)))
    settings: WebSettings = request.app.state.web
    at = now()
    if (row is None or row.revoked_at is not None or at - row.created_at > timedelta(seconds=settings.session_max_seconds)
            or at - row.last_seen > timedelta(seconds=settings.session_idle_seconds)):
        return None
    return row


# What the login page says to someone whose session ended under them (idle too long, or signed
# out in another window of the same browser): they were sent to it from a page, or from a form
# they had filled in, without a word.
ENDED = "登录已失效（长时间未操作，或已在其他窗口退出），请重新登录。登录后回到刚才的页面。"
# When an administrator (or the user, elsewhere) ended it, the reason (web_sessions.revoked_why): a
# user whose account was stopped was told to sign in again as if idle (a walk, 2026-12-06).
ENDED_BECAUSE = {
    "disabled": "您的账号已被管理员停用，不能再登录。如有疑问，请联系专班管理员。",
    "password_reset": "您的密码已被管理员重置，请用管理员告知的临时密码重新登录。",
    "password_changed": "这个账号的密码已修改，请用新密码重新登录。",
    "ended": "管理员结束了您的登录，请重新登录。",
}


def ended_message(why: object) -> str:
    """What the login page says to a browser whose session ended under it (`why`: the session's
    `ended` mark: True, or the reason it was revoked)."""
    return ENDED_BECAUSE.get(why, ENDED) if isinstance(why, str) else ENDED


def _local_path(url: str) -> str | None:
    """The path (and query) of a URL of this app to go back to after signing in; None for another
    site's, the login's own, or anything odd (no open redirect through the login page)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if not path.startswith("/") or path.startswith("//") or "\\" in path or len(path) > 500 \
            or parts.path in ("/login", "/logout"):
        return None
    return path


def _came_from(request: Request) -> str | None:
    """The page to go back to: the one asked for, or for a form sent, the page it was on (this
    app's, behind a proxy too). Not a file (a download, a photo's thumbnail): signing in would
    fetch it and leave the login page up."""
    from bidui.web.hardening import ours

    if request.method == "GET":
        path = request.url.path
        if path.startswith("/attachments/") or path == "/workbook" or path.endswith((".xlsx", ".pdf", ".csv")):
            return None
        return _local_path(path + (f"?{request.url.query}" if request.url.query else ""))
    referer = urlsplit(request.headers.get("referer", ""))
    return _local_path(referer.path + (f"?{referer.query}" if referer.query else "")) \
        if ours(request, f"{referer.scheme}://{referer.netloc}") else None


def back_after_login(request: Request, user: User) -> str | None:
    """Where signing in leads back to: the page the session ended on, for the account whose session
    it was (another account signing in on that browser is not sent to a page of theirs), or for
    anyone when nobody was signed in (a link opened)."""
    back = request.session.pop("after_login", None)
    if not isinstance(back, dict) or back.get("user") not in (None, user.id):
        return None
    return back.get("path")


def current_user(request: Request, session: Session) -> User:
    row = current_session(request, session)
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not user.active:
        token, signed_out = request.session.get("sid"), request.session.get("signed_out")
        ended = session.execute(select(WebSession.user_id, WebSession.revoked_why)
                                .where(WebSession.token_hash == _digest(token))).first() \
            if isinstance(token, str) and token else None
        owner = ended[0] if ended else signed_out.get("user") if isinstance(signed_out, dict) else None
        why = ended[1] if ended and ended[1] else ("disabled" if user is not None and not user.active else True)
        request.session.clear()
        if token or signed_out:
            request.session["ended"] = why if token else True
        back = _came_from(request)
        if back:
            request.session["after_login"] = {"path": back, "user": owner}
        raise LoginRequired
    at = now()
    if at - row.last_seen >= SEEN_EVERY:  # once a minute, in its own short write
        with request.app.state.ledger.write() as w:
            w.execute(update(WebSession).where(WebSession.id == row.id).values(last_seen=at))
    request.state.web_session_id = row.id
    if user.must_change_password and request.url.path not in PASSWORD_PAGES:
        raise PasswordToChange
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


# ---------------------------------------------------------------- the current password, signed in


def check_own_password(request: Request, user: User, password: str) -> str:
    """"" when `password` is the signed-in user's own; else the answer, in Chinese. Counted and
    blocked exactly as a sign-in of that account from this address (the login's throttle): a
    session left open, or stolen, must not guess the password faster on /profile than the
    login page allows. Each failure is audited as a failed login (the address, never what was typed)."""
    ledger, at = request.app.state.ledger, now()
    name, address = user.username, client_address(request)
    seen = _look(ledger, name, address, at)
    if _verify(seen.password_hash, password):
        return ""
    answer = _one_write(ledger, lambda s: _failed(s, seen, name, address, at, name, name, "修改密码时当前密码错误"))
    return "当前密码不正确" if answer == WRONG else answer
