"""What every response and every request goes through, whatever the route: the security headers
(a strict Content-Security-Policy: the pages' styles and scripts are files under /static, never
inline), no caching of anything behind the login, the Origin/Referer check on state-changing
requests (a second line behind CSRF), numbers no database row can have, and the error pages —
in Chinese, as HTML, never echoing what was sent and never telling an exception's details.

The access log is here too: method, path and status only (query strings and forms can carry ID
numbers)."""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from bidui import config
from bidui.web.deps import templates

log = logging.getLogger("bidui.web")

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Every number the app takes (a row id, a version, a page) fits the databases' 64-bit integer: a
# bigger one names nothing, and handed to the database it fails as an overflow instead of "not found".
MAX_NUMBER = 2**63 - 1

MESSAGES = {
    400: "请求的内容不对，请返回上一页重新操作",
    403: "无权操作",
    404: "页面不存在，或不在您的管辖范围内",
    405: "不支持这种访问方式，请从页面上的链接或按钮进入",
    413: "提交的内容太大",
    500: "系统出错，请稍后再试；如果一直这样，请联系专班",
}


def _chinese(text: object) -> bool:
    return isinstance(text, str) and any("\u4e00" <= ch <= "\u9fff" for ch in text)


def error_page(request: Request, status: int, message: str = "", headers: dict[str, str] | None = None) -> Response:
    """The one error page: a sentence in Chinese for the status, never the request's own text."""
    text = message if _chinese(message) else MESSAGES.get(status, MESSAGES[400] if status < 500 else MESSAGES[500])
    return templates.TemplateResponse(request, "error.html", {"user": None, "problem": text, "csrf": ""},
                                      status_code=status, headers=headers)


def _too_big(text: str) -> bool:
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isdigit() and len(digits) >= 19 and int(digits) > MAX_NUMBER


def allowed_origins(home_config: Path | None) -> frozenset[str]:
    """`[web] allowed_origins`: the scheme://host[:port] a browser may send forms from besides the
    address the request itself came to (a reverse proxy answering under another name)."""
    origins = config.load(home_config).get("web", {}).get("allowed_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ValueError(f"[web] allowed_origins must be a list of addresses like \"https://bidui.example.gov.cn\", "
                         f"not {origins!r}")
    return frozenset(o.strip().rstrip("/").lower() for o in origins)


def ours(request: Request, origin: str) -> bool:
    """Is scheme://host[:port] this server's own address, or a configured `[web] allowed_origins`?"""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    return origin.rstrip("/").lower() in {own} | request.app.state.allowed_origins


def _foreign(request: Request) -> bool:
    """A state-changing request sent from another site's page: its Origin (else its Referer) is not
    this server's own scheme://host[:port] nor a configured `[web] allowed_origins`. Neither header
    is allowed (some clients and proxies strip both): the CSRF token is the first line."""
    origin = request.headers.get("origin")
    if origin is not None:
        return not ours(request, origin)
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return not ours(request, f"{parts.scheme}://{parts.netloc}")
    return False


def install(app: FastAPI) -> None:
    app.state.allowed_origins = allowed_origins(app.state.home.config)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        start = time.perf_counter()
        path = request.url.path
        if any(_too_big(part) for part in path.split("/")):
            response = error_page(request, 404)
        elif any(_too_big(v) for _, v in request.query_params.multi_items()):
            response = error_page(request, 400)
        elif request.method not in SAFE_METHODS and _foreign(request):
            log.warning("%s %s refused: sent from another site", request.method, path)
            response = error_page(request, 403, "请求来自其他网站，已拒绝。请在本系统的页面上操作")
        else:
            try:
                response = await call_next(request)
            except Exception as e:
                # The traceback without the request's values (query strings and forms can carry ID
                # numbers): frames and the exception's type, not its message.
                stack = "".join(traceback.format_tb(e.__traceback__))
                log.error("%s %s failed: %s\n%s", request.method, path, type(e).__name__, stack)
                response = error_page(request, 500)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)  # the attachment view sets its own, stricter
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        # Pages and files carry ID numbers: kept by no browser or proxy. The style sheet and
        # script may be kept, checked again each time (an upgrade shows at once).
        headers["Cache-Control"] = "no-cache" if path.startswith("/static/") else "no-store"
        log.info("%s %s %s %.0f ms", request.method, path if not path.startswith("/clues/") else "/clues/…",
                 response.status_code, (time.perf_counter() - start) * 1000)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_page(request, exc.status_code, str(exc.detail or ""), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # A path that cannot name anything is not found; a wrong query or form value is a bad
        # request. The values themselves are neither shown nor logged.
        in_path = any(err.get("loc", ("",))[0] == "path" for err in exc.errors())
        return error_page(request, 404 if in_path else 400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):  # an error in a middleware itself
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return error_page(request, 500)
