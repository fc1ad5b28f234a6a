"""The web app under attack (issue 17, findings 7–10 and 12): headers on every response, errors
included (a strict CSP with no inline style or script anywhere, no-store behind the login, no
server banner); the Origin/Referer check on state-changing requests; malformed paths, queries and
forms answered 400/404 in Chinese as HTML, never a 500, never JSON, never an echo; every route of
the app walked with hostile values as each role; messages only from the session, never the query
string; no ID number in any URL a page or a redirect gives."""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from bidui.web.app import UVICORN_OPTIONS, create_app
from bidui.web.hardening import CSP
from tests.test_web import client_for, clue_ids, login

TEMPLATES = Path(__file__).parent.parent / "bidui" / "web" / "templates"
ROLES = ("town", "county", "pref", "admin")
ID_NUMBER = "110101199003077777"
# An 18-digit (or old 15-digit) resident ID number standing alone in a URL.
ID_SHAPED = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9])")
HOSTILE = ["9223372036854775808", "-9223372036854775809", "-1", "abc",
           "x" * 10_000, "../../etc/passwd", "a\x00b", "1.5"]
FORGED = "系统升级：请将用户名和密码发送至"


def _chinese_html(r) -> None:
    assert r.headers["content-type"].startswith("text/html"), (r.status_code, r.headers["content-type"], r.text[:200])
    assert re.search(r"[\u4e00-\u9fff]", r.text)


def _signed_in(h, user: str) -> tuple[TestClient, str]:
    c = client_for(h)
    assert login(c, user).status_code == 303
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/profile").text).group(1)
    return c, token


# Headers and the CSP --------------------------------------------------------------------------------

def test_no_template_has_inline_style_or_script() -> None:
    """What the CSP would block: a style block or attribute, an inline script, an event attribute,
    a javascript: link. The pages' styles and scripts are files under /static."""
    inline = re.compile(r"<style|\sstyle=|<script(?![^>]*\ssrc=)|\son[a-z]+=|javascript:", re.I)
    found = [f"{p.name}: {m.group(0)}" for p in sorted(TEMPLATES.glob("*.html")) for m in inline.finditer(p.read_text())]
    assert found == []


def test_headers_on_pages_errors_downloads_and_static(home) -> None:
    h, town, _ = home
    c, _ = _signed_in(h, "county")
    some = clue_ids(h, town)[0]
    answers = {path: c.get(path) for path in ("/review", "/dashboard", f"/clues/{some}", f"/clues/{some}/print",
                                              "/report.xlsx", "/dashboard/rule.xlsx", "/no/such/page",
                                              "/clues/abc", "/inbox?page=abc")}
    answers["405"] = c.get("/logout")
    answers["login"] = client_for(h).get("/login")
    for what, r in answers.items():
        assert r.headers["content-security-policy"] == CSP, what
        assert r.headers["cache-control"] == "no-store", what
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff", what
        assert r.headers["referrer-policy"] == "same-origin", what
    assert [answers[p].status_code for p in ("/no/such/page", "/clues/abc", "/inbox?page=abc", "405")] == [404, 404, 400, 405]
    for name in ("app.css", "app.js", "print.css"):  # the files the CSP lets the pages use, cached
        r = client_for(h).get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-cache" and len(r.text) > 500
    assert client_for(h).get("/static/../app.py").status_code == 404


def test_every_page_links_only_its_own_style_and_script(home) -> None:
    """Rendered pages (not only templates) carry no inline style or script: the dashboard's bars and
    chart, the review queue's select-all, the printed records' buttons."""
    h, town, _ = home
    some = clue_ids(h, town)[0]
    inline = re.compile(r"<style|\sstyle=|<script(?![^>]*\ssrc=)|\son[a-z]+=|javascript:", re.I)
    for user, paths in (("county", ["/review", "/dashboard", f"/clues/{some}", f"/clues/{some}/print"]),
                        ("town", ["/inbox", f"/clues/{some}", "/profile"]), ("admin", ["/admin"])):
        c, _ = _signed_in(h, user)
        for path in paths:
            page = c.get(path).text
            assert not inline.search(page), (user, path, inline.search(page).group(0))
            assert 'src="/static/app.js"' in page
    c, _ = _signed_in(h, "county")
    assert 'data-select-all="clue"' in c.get("/review").text
    assert '<svg class="bar" width=' in c.get("/dashboard").text


def test_a_real_server_names_no_software(published_home, tmp_path: Path) -> None:
    import shutil
    import socket

    import uvicorn

    from bidui.home import Home

    home = Home(tmp_path / "home")
    shutil.copytree(published_home[0], home.root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(home), host="127.0.0.1", port=port, log_level="warning",
                                        **UVICORN_OPTIONS))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if srv.started:
                break
            time.sleep(0.05)
        for path in ("/login", "/no/such/page"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.getheader("server") is None and r.getheader("content-security-policy") == CSP
            conn.close()
    finally:
        srv.should_exit = True
        thread.join(10)


# The Origin check -----------------------------------------------------------------------------------

def test_state_changing_requests_from_another_site_are_refused(home) -> None:
    h, _, _ = home
    c, token = _signed_in(h, "town")
    form = {"csrf_token": token, "q": "张"}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Origin": "http://testserver.evil.example"},
                    {"Referer": "https://evil.example/page"}, {"Origin": "https://testserver"}):
        r = c.post("/inbox/search", data=form, headers=headers)
        assert r.status_code == 403, headers
        _chinese_html(r)
        assert "其他网站" in r.text
    for headers in ({}, {"Origin": "http://testserver"}, {"Referer": "http://testserver/inbox"}):
        assert c.post("/inbox/search", data=form, headers=headers).status_code == 303, headers
    # A login form posted from elsewhere is refused too, before any password is looked at.
    assert client_for(h).post("/login", data={"username": "town"}, headers={"Origin": "https://evil.example"}).status_code == 403
    # A configured origin (behind a proxy that answers under another name) is accepted.
    before = h.config.read_text(encoding="utf-8") if h.config.exists() else ""
    h.config.write_text(before + '\n[web]\nallowed_origins = ["https://bidui.example.gov.cn"]\n', encoding="utf-8")
    c, token = _signed_in(h, "town")
    assert c.post("/inbox/search", data={"csrf_token": token, "q": "张"},
                  headers={"Origin": "https://bidui.example.gov.cn"}).status_code == 303


# Validation: 400/404 in Chinese, no 500, no JSON, no echo -------------------------------------------

def test_the_reported_500s_are_answered_in_chinese(home) -> None:
    h, _, _ = home
    c, token = _signed_in(h, "county")
    assert c.get("/clues/9223372036854775808").status_code == 404
    assert c.get("/clues/-9223372036854775809/print").status_code == 404
    r = c.get("/inbox?page=9223372036854775807")
    assert r.status_code == 200 and "户编号" in r.text  # the last page
    assert c.get("/review?page=9223372036854775807&age=9223372036854775807").status_code == 200
    for bad in ("abc:1", "1:abc", ":", "1:", ":1", "1:2:3", "9" * 30 + ":1", "１:1"):
        r = c.post("/review", data={"csrf_token": token, "clue": ["1:1", bad], "decision": "close"})
        assert r.status_code == 400, bad
        _chinese_html(r)
        assert "编号不对" in r.text and "9" * 30 not in r.text
    r = c.post("/review", data={"csrf_token": token, "clue": "1:1", "decision": "return", "age": "99999999999"})
    assert r.status_code == 400


def test_unknown_routes_wrong_methods_and_types_are_html_without_echo(home) -> None:
    h, _, _ = home
    c, token = _signed_in(h, "town")
    marker = "<b>echo-me-110101199003077777</b>"
    for method, path, data, status in (
            ("GET", "/no/such/page", None, 404), ("GET", "/api/v1/clues", None, 404),
            ("GET", f"/clues/{quote(marker, safe='')}", None, 404),
            ("GET", f"/inbox?page={quote(marker)}", None, 400), ("GET", f"/inbox?overdue={quote(marker)}", None, 400),
            ("DELETE", "/inbox", None, 405), ("GET", "/logout", None, 405),
            ("POST", "/clues/1/verify", {"csrf_token": token, "version": marker}, 400)):
        r = c.request(method, path, data=data)
        assert r.status_code == status, (method, path, r.status_code)
        _chinese_html(r)
        assert "echo-me" not in r.text and "detail" not in r.text and "Not Found" not in r.text
        assert r.text.count("<h1>") == 1 and 'class="msg' not in r.text  # said once, not as a green notice too


def test_an_unexpected_error_is_a_chinese_page_without_details(home, caplog: pytest.LogCaptureFixture) -> None:
    h, _, _ = home
    app = create_app(h)

    @app.get("/boom")
    def boom(id: str) -> None:
        raise RuntimeError(f"the request's own value: {id}")

    c = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger="bidui.web"):
        r = c.get(f"/boom?id={ID_NUMBER}")
    assert r.status_code == 500
    _chinese_html(r)
    assert "own value" not in r.text and "RuntimeError" not in r.text and ID_NUMBER not in r.text
    assert r.headers["content-security-policy"] == CSP and r.headers["cache-control"] == "no-store"
    logged = "\n".join(rec.getMessage() for rec in caplog.records if rec.name.startswith("bidui"))
    assert "RuntimeError" in logged and "in boom" in logged  # the traceback, for whoever runs the server
    assert ID_NUMBER not in logged


def _routes(app) -> list[APIRoute]:
    """Every route of the app, those of the included routers too (no prefixes are used)."""
    def walk(routes) -> list[APIRoute]:
        out = []
        for r in routes:
            if isinstance(r, APIRoute):
                out.append(r)
            elif hasattr(r, "original_router"):  # FastAPI ≥ 0.150 keeps an included router whole
                out += walk(r.original_router.routes)
        return out

    found = [r for r in walk(app.routes) if r.path not in ("/login", "/logout", "/healthz")]
    assert len(found) > 20
    return found


def _params(dependant, kind: str) -> set[str]:
    """The names of a route's query parameters or form fields, its dependencies' included."""
    own = {p.name for p in getattr(dependant, kind)}
    return own.union(*(_params(d, kind) for d in dependant.dependencies))


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", quote(value, safe=""), path)


@pytest.mark.parametrize("user", ROLES)
def test_every_route_with_hostile_values_as_each_role(home, user: str) -> None:
    """Every route of the app (app.routes), each path parameter, query value and form field given a
    huge, negative, non-numeric, 10 kB, ../ or NUL value: no 500, no JSON answer."""
    h, _, _ = home
    c, token = _signed_in(h, user)
    seen = 0
    for route in _routes(c.app):
        queries = sorted(_params(route.dependant, "query_params"))
        fields = _params(route.dependant, "body_params") - {"csrf_token", "file"}
        fields |= {"clue", "decision", "age", "version", "reason", "due"}  # those read by hand (review_many)
        for method in route.methods - {"HEAD"}:
            for value in HOSTILE:
                if method == "GET":
                    tries = [c.get(_fill(route.path, value))] if "{" in route.path or value == HOSTILE[0] else []
                    # All query values at once; a 10 kB one alone (a URL has a length limit).
                    for group in ([queries] if len(value) < 1000 else [[q] for q in queries]):
                        tries.append(c.get(_fill(route.path, "1"), params=dict.fromkeys(group, value)))
                else:
                    tries = [c.request(method, _fill(route.path, value), data={"csrf_token": token,
                                                                               **dict.fromkeys(fields, value)})]
                for r in tries:
                    seen += 1
                    assert r.status_code < 500, (user, method, route.path, value[:30], r.status_code)
                    assert "json" not in r.headers.get("content-type", ""), (user, method, route.path, value[:30])
    assert seen > 150
    assert c.get("/").headers["location"] != "/login"  # still signed in: the walk ran as the role


# Messages only from the session --------------------------------------------------------------------

@pytest.mark.parametrize("user", ROLES)
def test_no_page_takes_its_message_from_the_query_string(home, user: str) -> None:
    h, town, _ = home
    c, _ = _signed_in(h, user)
    some = clue_ids(h, town)[0]
    paths = [r.path for r in _routes(c.app) if "GET" in r.methods and "{" not in r.path and not r.path.endswith(".xlsx")]
    paths += [f"/clues/{some}", f"/clues/{some}/print", f"/admin/users/{user}", "/no/such/page"]
    forged = {"message": FORGED, "error": FORGED, "msg": FORGED, "flash": FORGED}
    for path in paths:
        r = c.get(path, params=forged)
        assert FORGED not in r.text, (user, path)
    assert FORGED not in client_for(h).get("/login", params=forged).text


# No ID number in any URL ---------------------------------------------------------------------------

def _urls(page: str) -> list[str]:
    return re.findall(r'(?:href|action|src)="([^"]*)"', page)


@pytest.mark.parametrize("user", ROLES)
def test_no_url_the_app_gives_carries_an_id_number(home, user: str) -> None:
    """Crawl the pages a role reaches by its links (and a search for an ID number, and every GET
    form's fields): no href, action, src or Location holds an ID-shaped number."""
    h, _, _ = home
    c, token = _signed_in(h, user)
    r = c.post("/inbox/search", data={"csrf_token": token, "q": ID_NUMBER})
    locations = [r.headers.get("location", "")]
    todo, seen, pages = ["/", "/inbox", locations[0] or "/inbox"], set(), 0
    while todo and pages < 40:
        path = todo.pop(0)
        if path in seen or not path.startswith("/") or path.endswith(".xlsx") or path.startswith(("/attachments", "/static")):
            continue
        seen.add(path)
        r = c.get(path)
        pages += 1
        if r.is_redirect:
            locations.append(r.headers["location"])
            todo.append(r.headers["location"])
            continue
        urls = _urls(r.text)
        assert not [u for u in urls if ID_SHAPED.search(u)], (user, path)
        # A GET form has no free-text field (an ID number typed there would land in the URL).
        for form in re.findall(r"<form(?![^>]*method=\"post\")[^>]*>.*?</form>", r.text, re.S):
            free = re.findall(r"<input(?![^>]*type=\"(?:hidden|checkbox|radio|submit|date|number)\")[^>]*>", form)
            assert not free, (user, path, free)
        todo += [urlsplit(u).path + (f"?{urlsplit(u).query}" if urlsplit(u).query else "") for u in urls]
    assert pages > 3
    assert not [loc for loc in locations if ID_SHAPED.search(loc)]
