"""Issue 17, findings 2, 3, 4 and 11: sessions the server can end, a login that cannot be turned
against its users, and the password policy.

A cookie saved before a logout, a password change, a disable or a reset opens nothing; a session
dies 12 hours after its sign-in however busy; 1,000 guesses at one account from one address leave
the real user free to sign in from another; unknown and real names are answered alike, in text and
in time; a verification stays fast while 40 threads send bogus logins; weak passwords are refused
wherever a password is set; a proxy's address header is believed only from a trusted proxy."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from bidui.cli import app as cli_app
from bidui.clues import users
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import AuditEvent, Clue, WebSession
from bidui.home import Home
from bidui.web import security
from bidui.web.app import create_app
from tests.conftest import PASSWORD

GOOD = "Tianqi-qingle-7"  # passes the policy


def client(app, address: str = "10.0.0.1") -> TestClient:
    return TestClient(app, follow_redirects=False, client=(address, 40000))


def token(c: TestClient, path: str = "/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text).group(1)


def login(c: TestClient, username: str, password: str = PASSWORD, csrf: str | None = None):
    return c.post("/login", data={"username": username, "password": password, "csrf_token": csrf or token(c)})


def signed_in(c: TestClient) -> bool:
    r = c.get("/inbox")
    return r.status_code == 200


def page_text(r, name: str) -> str:
    """The answer as a person or a script can compare it: the name typed and the form's one-time
    values (its CSRF token, a script nonce) left out."""
    return re.sub(r'(value|nonce)="[0-9a-zA-Z_-]{16,}"', "", r.text.replace(name, "NAME")) + str(r.status_code)


def replay(app, cookies) -> TestClient:
    """Another browser holding a copy of the cookie."""
    other = client(app, "10.0.0.99")
    other.cookies.update(cookies)
    return other


def ledger_of(home: Home):
    return open_ledger(ledger_url(home.ledger))


@pytest.fixture
def app(home):
    h, _, _ = home
    return create_app(h)


def test_a_saved_cookie_is_worthless_after_logout_password_change_disable_and_reset(home, app) -> None:
    h, _, _ = home
    c = client(app)
    assert login(c, "town").status_code == 303 and signed_in(c)
    saved = dict(c.cookies)
    c.post("/logout", data={"csrf_token": token(c, "/inbox")})
    stolen = replay(app, saved)
    r = stolen.get("/inbox")
    assert r.status_code == 303 and r.headers["location"] == "/login"  # the login page, not the inbox

    # A password change ends the user's other sessions; the one in use stays.
    here, there = client(app), client(app, "10.0.0.2")
    login(here, "town"), login(there, "town")
    r = here.post("/profile/password", data={"csrf_token": token(here, "/profile"), "current": PASSWORD, "new": GOOD,
                                             "again": GOOD})
    assert r.status_code == 303 and "其他设备上的登录已全部退出" in here.get("/profile").text
    assert signed_in(here) and not signed_in(there)

    # Disable and reset through `bidui users …` (users.py): every session of the user ends.
    runner = CliRunner()
    for command, then in (("reset-password", None), ("disable", "enable")):
        c = client(app)
        assert login(c, "town", GOOD if command == "reset-password" else PASSWORD).status_code == 303
        saved = dict(c.cookies)
        assert runner.invoke(cli_app, ["--home", str(h.root), "users", command, "town"]).exit_code == 0
        replayed = replay(app, saved)
        assert not signed_in(replayed), command
        # and the browser is told why, not "idle or signed out elsewhere" (a walk, 2026-12-06)
        said = replayed.get("/login").text
        why = {"reset-password": "password_reset", "disable": "disabled"}[command]
        assert security.ENDED_BECAUSE[why] in said and security.ENDED not in said, command
        if command == "reset-password":  # back to the fixture's password for the next round
            with ledger_of(h).write() as s:
                users.reset_password(s, "town", users.CLI, PASSWORD)
        if then:
            runner.invoke(cli_app, ["--home", str(h.root), "users", then, "town"])
    with ledger_of(h).read() as s:
        why = {w.revoked_why for w in s.scalars(select(WebSession))}
    assert {"logout", "password_changed", "password_reset", "disabled"} <= why


def test_a_session_ends_12_hours_after_sign_in_however_busy_and_last_seen_is_written_once_a_minute(home, app,
                                                                                                 monkeypatch) -> None:
    h, _, _ = home
    c = client(app)
    login(c, "town")
    real, shift = security.now, [timedelta(0)]
    monkeypatch.setattr(security, "now", lambda: real() + shift[0])

    def last_seen():
        with ledger_of(h).read() as s:
            return s.scalar(select(WebSession.last_seen))

    first = last_seen()
    assert signed_in(c) and last_seen() == first  # within the minute: no write
    for hours in (3, 6, 9, 11.9):  # busy all day: never idle for 8 hours
        shift[0] = timedelta(hours=hours)
        assert signed_in(c), hours
    assert last_seen() > first
    shift[0] = timedelta(hours=12, seconds=1)
    r = c.get("/inbox")
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_a_thousand_guesses_from_one_address_do_not_keep_the_real_user_out(home, app, monkeypatch) -> None:
    h, _, _ = home
    # Refused attempts verify against the dummy hash: a cheap one here, so a thousand take seconds.
    monkeypatch.setattr(security, "_dummy_hash", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x"))
    attacker = client(app, "10.6.6.6")
    csrf = token(attacker)
    answers = [login(attacker, "town", f"guess-{i}", csrf) for i in range(1000)]
    assert all(a.status_code == 400 for a in answers)
    texts = {re.search(r'class="msg err">([^<]+)<', a.text).group(1) for a in answers}
    assert texts == {security.WRONG, security.BLOCKED}, texts
    assert "锁定" in answers[security.PAIR_BLOCK_AFTER - 1].text  # blocked after five, and it stays so
    # Other names from the same address: the address, past its free failures, must wait. (The
    # clock stands still: the first wait is one second, which a slow machine's attempt outlasts.)
    stopped = security.now()
    monkeypatch.setattr(security, "now", lambda: stopped)
    spray = [login(attacker, f"user{i}", "guess", csrf) for i in range(security.ADDRESS_FREE)]
    assert security.WRONG in spray[0].text and security.LATER in spray[-1].text
    assert login(attacker, "town").status_code == 400  # even the right password: not from there, not now

    real = client(app, "10.0.0.7")
    assert login(real, "town").status_code == 303 and signed_in(real)  # the clerk at her own desk: in

    with ledger_of(h).read() as s:
        failed = list(s.scalars(select(AuditEvent).where(AuditEvent.kind == "login_failed")))
    assert len(failed) == 1000 + security.ADDRESS_FREE + 1
    assert {e.target for e in failed} == {"town", security.UNKNOWN_USER}
    assert {e.payload["地址"] for e in failed} == {"10.6.6.6"}
    assert not any("guess-" in str(e.payload) for e in failed)  # never a password

    # The administrator's unlock lifts the block on that address too (once the address's own wait,
    # a minute at most, is over: that one is not the account's to lift).
    with ledger_of(h).write() as s:
        users.unlock(s, "town", users.CLI)
    later = security.now() + security.DELAY_CAP + timedelta(seconds=1)
    monkeypatch.setattr(security, "now", lambda: later)
    assert login(client(app, "10.6.6.6"), "town").status_code == 303


def test_unknown_and_real_names_are_answered_alike_in_text_and_time(home, app) -> None:
    h, _, _ = home
    times: dict[str, list[float]] = {"town": [], "nobody-here": []}
    texts: dict[str, set[str]] = {"town": set(), "nobody-here": set()}
    for i in range(20):
        for name in times:  # a fresh address each time: the limits are not what is measured
            c = client(app, f"10.1.{i}.{len(name)}")
            csrf = token(c)
            start = time.perf_counter()
            r = login(c, name, "not-the-password", csrf)
            times[name].append(time.perf_counter() - start)
            texts[name].add(page_text(r, name))
    assert texts["town"] == texts["nobody-here"] and len(texts["town"]) == 1
    ratio = statistics.median(times["town"]) / statistics.median(times["nobody-here"])
    assert 0.5 < ratio < 2.0, ratio
    # Blocked alike: five wrong passwords lock a real name and an unknown one the same way (two
    # names not tried above: those twenty failures, from twenty addresses, already make the
    # accounts' new addresses wait — also alike).
    blocked = {}
    for name in ("other", "nobody-else"):
        c = client(app, "10.2.0.1")
        csrf = token(c)
        blocked[name] = page_text([login(c, name, "not-the-password", csrf)
                                   for _ in range(security.PAIR_BLOCK_AFTER)][-1], name)
    assert blocked["other"] == blocked["nobody-else"] and security.BLOCKED in blocked["other"]
    with ledger_of(h).read() as s:
        targets = {e.target for e in s.scalars(select(AuditEvent).where(AuditEvent.kind == "login_failed"))}
    assert targets == {"town", "other", security.UNKNOWN_USER}  # a name nobody has is not kept (it may be a password)


FLOOD = """
import re, sys, threading, httpx
base = sys.argv[1]
def bogus(i):
    with httpx.Client(base_url=base, timeout=120) as b:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', b.get("/login").text).group(1)
        while True:
            try:
                b.post("/login", data={"username": f"nobody{i}", "password": "x" * 12, "csrf_token": csrf})
            except httpx.HTTPError:
                pass
threads = [threading.Thread(target=bogus, args=(i,), daemon=True) for i in range(40)]
for t in threads:
    t.start()
print("flooding", flush=True)
threading.Event().wait()
"""


def _refused(h) -> int:
    """Failed logins stored so far."""
    with ledger_of(h).read() as s:
        return len(s.scalars(select(AuditEvent.id).where(AuditEvent.kind == "login_failed")).all())


def test_a_verification_stays_fast_while_40_threads_send_bogus_logins(home) -> None:
    import socket

    import uvicorn

    h, town, _ = home
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(h), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    clerk = httpx.Client(base_url=base)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', clerk.get("/login").text).group(1)
    assert clerk.post("/login", data={"username": "town", "password": PASSWORD, "csrf_token": csrf}).status_code == 303
    with ledger_of(h).read() as s:
        clues = list(s.scalars(select(Clue.id).where(Clue.township_code == town).order_by(Clue.id)))[:20]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', clerk.get(f"/clues/{clues[0]}").text).group(1)
    # The attacker in a process of its own (as a real one is: not sharing the server's interpreter).
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, base], stdout=subprocess.PIPE, text=True)
    took = []
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "flooding"
        # Measured once the flood is answered (40 logins in flight, the hashing threads busy): on a
        # loaded machine a fixed wait of 1.5 s sometimes ended before its first refusal was stored.
        deadline = time.monotonic() + 60
        while _refused(h) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _refused(h) >= 2, "the flood never reached the server"
        for clue in clues:
            start = time.perf_counter()
            r = clerk.post(f"/clues/{clue}/verify", data={"csrf_token": csrf, "version": 1, "outcome": "不属实",
                                                          "finding": "入户核实，情况不属实", "verified_on": "2026-11-21"})
            took.append(time.perf_counter() - start)
            assert r.status_code == 303, r.text[:300]
    finally:
        flood.kill()
        flood.wait()
        srv.should_exit = True
    assert _refused(h) >= 2  # the flood was answered — slowly: its logins queue for the hashing threads
    p95 = sorted(took)[int(len(took) * 0.95) - 1]
    assert p95 < 0.2, (p95, took)


def test_the_password_policy_wherever_a_password_is_set(home, app) -> None:
    h, town, _ = home
    for bad, why in (("12345678", "至少 10 位"), (" " * 10, "空格"), ("town-password-1", "用户名"),
                     ("TOWN2026abc!", "用户名"), ("woaini1314", "常见"), ("qwerty123456", "常见"),
                     ("aaaaaaaaaa", "不同的字符"), ("qzqzqzqzqzqz", "不同的字符"), ("AbAbAbaBAB", "不同的字符"),
                     ("12345678901", "依次相连"), ("0987654321x", "依次相连"), ("ABCDEFGhijk", "依次相连"),
                     ("3456789012", "依次相连")):
        with pytest.raises(users.UserError, match=why):
            users.check_password_policy(bad, "town")
    users.check_password_policy(GOOD, "town")
    for name in (" ", "a", "two words", "名字", "x" * 65):
        with pytest.raises(users.UserError, match="用户名"):
            users.check_username(name)

    runner = CliRunner()
    refused = runner.invoke(cli_app, ["--home", str(h.root), "users", "add", "--name", "sun", "--role", "township",
                                      "--scope", town, "--password", "1qaz2wsx3edc"])
    assert refused.exit_code == 1 and "常见" in refused.output
    assert runner.invoke(cli_app, ["--home", str(h.root), "users", "add", "--name", "sun", "--role", "township",
                                   "--scope", town, "--password", GOOD]).exit_code == 0
    # A name that differs only in case is one person's to a clerk: refused, the other named.
    twin = runner.invoke(cli_app, ["--home", str(h.root), "users", "add", "--name", "Sun", "--role", "township",
                                   "--scope", town, "--password", GOOD])
    assert twin.exit_code == 1 and "与已有的 sun 只差大小写" in twin.output
    admin = client(app)
    login(admin, "admin")
    r = admin.post("/admin/users/add", data={"csrf_token": token(admin, "/admin"), "username": "zhao", "real_name": "赵敏",
                                             "position": "扶贫专干", "role": "township", "scope_code": town,
                                             "password": "zhao-zhao-2026"})
    assert r.status_code == 400 and "不能包含用户名" in r.text
    r = admin.post("/admin/users/add", data={"csrf_token": token(admin, "/admin"), "username": " ", "real_name": "赵敏",
                                             "position": "扶贫专干", "role": "township", "scope_code": town,
                                             "password": GOOD})
    assert r.status_code == 400 and "用户名为 2–64 个字符" in r.text
    with ledger_of(h).write() as s, pytest.raises(users.UserError, match="至少 10 位"):
        users.reset_password(s, "sun", users.CLI, " " * 8)

    c = client(app)
    login(c, "town")
    for new, again, why in (("woaini1314", "woaini1314", "常见"), (GOOD, GOOD + "x", "不一致")):
        r = c.post("/profile/password", data={"csrf_token": token(c, "/profile"), "current": PASSWORD, "new": new,
                                              "again": again})
        assert r.status_code == 400 and why in r.text
    r = c.post("/profile/password", data={"csrf_token": token(c, "/profile"), "current": "wrong-one-1", "new": GOOD,
                                          "again": GOOD})
    assert r.status_code == 400 and "当前密码不正确" in r.text
    assert login(client(app), "town").status_code == 303  # the old password still works after refusals


def test_the_address_header_is_believed_only_from_a_trusted_proxy(home, app) -> None:
    h, _, _ = home
    for peer, header, seen in (("127.0.0.1", "203.0.113.9", "203.0.113.9"),  # our proxy: its word
                               ("127.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the hop it saw
                               ("10.9.9.9", "203.0.113.9", "10.9.9.9"),  # anyone else: the socket
                               ("127.0.0.1", "not-an-address", "127.0.0.1")):
        c = client(app, peer)
        c.headers["X-Forwarded-For"] = header
        assert login(c, "town").status_code == 303
        with ledger_of(h).read() as s:
            assert s.scalar(select(WebSession.address).order_by(WebSession.id.desc()).limit(1)) == seen, (peer, header)


def test_an_admin_sees_a_users_sessions_and_ends_them(home, app) -> None:
    h, _, _ = home
    clerk = client(app, "10.3.3.3")
    clerk.headers["User-Agent"] = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Chrome/120 Mobile MicroMessenger"
    login(clerk, "town")
    admin = client(app)
    login(admin, "admin")
    page = admin.get("/admin/users/town").text
    assert "登录会话" in page and "10.3.3.3" in page and "手机，微信" in page
    sid = re.search(r'name="session" value="(\d+)"', page).group(1)
    csrf = token(admin, "/admin/users/town")
    ask = admin.post("/admin/users/town/sessions/end", data={"csrf_token": csrf, "session": sid})
    assert ask.status_code == 200 and "确认" in ask.text and signed_in(clerk)  # asked first
    done = admin.post("/admin/users/town/sessions/end", data={"csrf_token": csrf, "session": sid, "confirmed": "1"})
    assert done.status_code == 303 and not signed_in(clerk)
    assert "已结束 1 个登录会话" in admin.get("/admin/users/town").text
    with ledger_of(h).read() as s:
        assert s.scalar(select(AuditEvent.actor).where(AuditEvent.kind == "sessions_ended")) == "admin"


def test_a_form_sent_after_the_session_ended_says_why_and_leads_back_to_its_page(home, app, monkeypatch) -> None:
    """A clerk who signs after idling past the limit, or after signing out in another window, was
    sent to a bare login page and then to the inbox: the login now says why, and leads back to the
    clue (whose page keeps what was typed in this window, app.js); nothing was signed meanwhile."""
    h, town, _ = home
    with ledger_of(h).read() as s:
        clue = s.scalar(select(Clue.id).where(Clue.township_code == town, Clue.status == "dispatched").limit(1))
    c = client(app)
    login(c, "town")
    csrf = token(c, f"/clues/{clue}")
    real = security.now
    monkeypatch.setattr(security, "now", lambda: real() + timedelta(hours=9))  # idle past the 8 hours
    sent = c.post(f"/clues/{clue}/verify", headers={"referer": f"http://testserver/clues/{clue}"},
                  data={"csrf_token": csrf, "version": 1, "outcome": "不属实", "finding": "入户核实", "verified_on": "2026-11-25"})
    assert sent.status_code == 303 and sent.headers["location"] == "/login"
    assert security.ENDED in c.get("/login").text
    monkeypatch.setattr(security, "now", real)
    back = login(c, "town")
    assert back.status_code == 303 and back.headers["location"] == f"/clues/{clue}"
    with ledger_of(h).read() as s:
        assert s.get(Clue, clue).status == "dispatched"

    # Signed out in another window of the same browser (one cookie): the same.
    c.post("/logout", data={"csrf_token": token(c, "/inbox")})
    assert security.ENDED not in c.get("/login").text  # whoever signed out knows it
    assert c.get("/inbox?sort=due").headers["location"] == "/login"
    assert security.ENDED in c.get("/login").text
    assert login(c, "town").headers["location"] == "/inbox?sort=due"
    c.post("/logout", data={"csrf_token": token(c, "/inbox")})
    c.get("/inbox")
    c.get("/inbox.xlsx?status=open")  # a download asked for meanwhile is not where the login leads
    assert login(c, "town").headers["location"] == "/inbox"

    # Another account signing in on that browser is not led to the page of the one whose session ended.
    c.post("/logout", data={"csrf_token": token(c, "/inbox")})
    c.get(f"/clues/{clue}")
    assert login(c, "county").headers["location"] == "/review"
    # An account that gives its name and position first is led back after that.
    c.post("/logout", data={"csrf_token": token(c, "/review")})
    login(c, "town")
    c.post("/logout", data={"csrf_token": token(c, "/inbox")})
    with ledger_of(h).write() as s:
        s.scalar(select(users.User).where(users.User.username == "town")).real_name = ""
    c.get(f"/clues/{clue}")
    assert login(c, "town").headers["location"] == "/profile"
    saved = c.post("/profile", data={"csrf_token": token(c, "/profile"), "real_name": "王秀兰", "position": "扶贫专干"})
    assert saved.status_code == 303 and saved.headers["location"] == f"/clues/{clue}"

    # Another site's page, or the login itself, is never where a login leads.
    fresh = client(app)
    fresh.post(f"/clues/{clue}/verify", headers={"referer": "http://evil.example/clues/1"}, data={"csrf_token": "x"})
    assert security.ENDED not in fresh.get("/login").text  # never signed in here: nothing ended
    assert login(fresh, "town").headers["location"] == "/inbox"
    assert security._local_path("//evil.example/x") == "/x" and security._local_path("/\\evil.example") is None
    assert security._local_path("/login") is None and security._local_path("/clues/7?s=a") == "/clues/7?s=a"
