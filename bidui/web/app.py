"""The web app (FastAPI + Jinja2, server-rendered, in Chinese). It reads and writes the ledger
only; it never opens the DuckDB warehouse (the nightly run copies what it needs into the ledger).

    bidui serve [--host 127.0.0.1] [--port 8000]"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.middleware.sessions import SessionMiddleware

from bidui import config
from bidui.clues.db import Ledger, ledger_url, open_ledger
from bidui.home import Home
from bidui.signing import secret_key
from bidui.web import admin, county, hardening, inspection, profile, quality, supervisor, township, whatif
from bidui.web import attachments as attachment_routes
from bidui.web.deps import db, templates
from bidui.web.security import (
    LoginRequired,
    PasswordToChange,
    back_after_login,
    csrf_token,
    current_user,
    ended_message,
    login,
    logout,
)

log = logging.getLogger("bidui.web")
HOME_PAGE = {"township": "/inbox", "county": "/review", "prefecture": "/dashboard", "admin": "/admin"}


def create_app(home: Home, ledger: Ledger | None = None) -> FastAPI:
    app = FastAPI(title="bidui 比对", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.home = home
    app.state.ledger = ledger or open_ledger(ledger_url(home.ledger))
    app.state.secret = secret_key(home.root)
    app.state.web = config.web_settings(home.config)
    # The cookie carries the session id, the CSRF token and passing state; who is signed in is the
    # ledger's row (security.current_user), which can be revoked and expires on its own.
    app.add_middleware(SessionMiddleware, secret_key=app.state.secret, session_cookie="bidui_session",
                       max_age=app.state.web.session_max_seconds, same_site="lax", https_only=bool(os.environ.get("BIDUI_SECURE_COOKIES")))

    hardening.install(app)  # headers, the Origin check, error pages, the access log, /static

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired):
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(PasswordToChange)
    async def to_password(request: Request, _exc: PasswordToChange):
        return RedirectResponse("/profile", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request):
        request.session.setdefault("login_csrf", os.urandom(16).hex())
        ended = request.session.pop("ended", False)
        return templates.TemplateResponse(request, "login.html", {"user": None, "error": "",
                                                                  "message": ended_message(ended) if ended else "",
                                                                  "csrf": request.session["login_csrf"]})

    @app.post("/login")
    async def login_post(request: Request, username: str = Form(""), password: str = Form(""),
                         csrf_token: str = Form("")):
        # Async, so a flood of logins waits on the password-hashing threads (HASH_THREADS in security),
        # not on the threads every other page runs on.
        if not csrf_token or csrf_token != request.session.get("login_csrf"):
            raise HTTPException(403, "表单已失效，请刷新页面后重试")
        user, message = await login(request, username, password)
        if user is None:
            log.info("login refused")
            # The form again with the user name as typed (the message stays out of the URL).
            return templates.TemplateResponse(request, "login.html", {"user": None, "error": message, "username": username,
                                                                      "csrf": request.session["login_csrf"]},
                                              status_code=400)
        # Whoever has no real name or position on record gives them first: every signature uses them.
        # Then back to the page the session ended on (a form filled in there is kept by the page).
        # A password an administrator set is changed there before anything else opens.
        if profile.needs_profile(user) or user.must_change_password:  # (the way back is kept: bidui.web.profile)
            return RedirectResponse("/profile", status_code=303)
        return RedirectResponse(back_after_login(request, user) or HOME_PAGE[user.role], status_code=303)

    @app.post("/logout")
    def logout_post(request: Request, csrf_token: str = Form("")):
        if csrf_token and csrf_token == request.session.get("csrf"):
            logout(request)  # the session's row revoked: a copy of the cookie opens nothing
        return RedirectResponse("/login", status_code=303)

    @app.get("/")
    def home_page(request: Request, session: Session = Depends(db)):  # noqa: B008
        return RedirectResponse(HOME_PAGE[current_user(request, session).role], status_code=303)

    @app.get("/healthz")
    def health() -> dict:
        return {"ok": True}

    templates.env.globals["csrf_of"] = csrf_token
    app.include_router(township.router)
    app.include_router(attachment_routes.router)
    app.include_router(profile.router)
    app.include_router(county.router)
    app.include_router(supervisor.router)
    app.include_router(admin.router)
    app.include_router(quality.router)
    app.include_router(inspection.router)
    app.include_router(whatif.router)
    return app


# What every uvicorn serving the app is given (`bidui serve` and the test servers): no access log
# of its own (it prints query strings, which may hold an ID number: ours replaces it) and no
# `server: uvicorn` banner naming the software to an attacker; and uvicorn's own reading of
# X-Forwarded-For off, so the client's address follows `[web] trusted_proxy_header` alone
# (security.client_address: the login limits count failures per address).
UVICORN_OPTIONS = {"access_log": False, "server_header": False, "proxy_headers": False}


def serve(home: Home, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ["BIDUI_HOME"] = str(Path(home.root).resolve())
    uvicorn.run("bidui.web.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info",
                **UVICORN_OPTIONS)


def app_from_env() -> FastAPI:
    return create_app(Home.resolve(None))
