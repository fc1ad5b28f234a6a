"""Attachment routes: upload (multipart, read as it streams in and stopped at the limit), view
(scoped, audited, served so a browser cannot take it for a page), remove one's own.

    POST /clues/{clue_id}/attachments     files + csrf_token
    GET  /attachments/{id}[?thumb=1]
    POST /attachments/{id}/remove         csrf_token

What is accepted and how it is made safe lives in bidui.clues.attachments; this module carries
bytes. The file name a user gave never goes into a URL or a log: messages reach the next page
through the session (Ctx.flash)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import python_multipart
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from bidui import config
from bidui.clues import attachments as store
from bidui.config import AttachmentSettings
from bidui.web import township
from bidui.web.deps import Ctx, ctx, templates
from bidui.web.security import check_csrf

log = logging.getLogger("bidui.web")
router = APIRouter()
MAX_FIELD = 4096  # bytes of a form field that is not a file (the CSRF token)
MAX_FIELDS = 10
FORM_OVERHEAD = 64 * 1024  # part headers and boundaries, generously


class UploadRefused(Exception):  # noqa: N818 - a message for the user, not a fault
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Received:
    filename: str
    data: bytearray = field(default_factory=bytearray)


def settings_of(request: Request) -> AttachmentSettings:
    return config.attachment_settings(request.app.state.home.config)


async def read_files(headers: Mapping[str, str], stream: AsyncIterator[bytes], settings: AttachmentSettings,
                     on_field: Callable[[str, str], None]) -> list[Received]:
    """The files of a multipart form, each read chunk by chunk and refused the moment it passes
    the per-file limit (a 50 MB file costs 10 MB of reading, not 50); fields are handed to
    `on_field` as soon as they end (the CSRF token comes before the files in our form)."""
    ctype, params = parse_options_header(headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRefused("上传格式不对，请在线索页面上选择文件后上传")
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_files * settings.max_file_bytes + FORM_OVERHEAD:
        raise UploadRefused(f"每次核实最多 {settings.max_files} 个附件，每个不超过 {settings.max_file_mb} MB", 413)

    files: list[Received] = []
    fields = 0
    part: dict = {}

    def on_part_begin() -> None:
        part.clear()
        part.update(headers=[], name=b"", value=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"].append((part["name"].lower(), part["value"]))
        part["name"], part["value"] = b"", b""

    def on_headers_finished() -> None:
        nonlocal fields
        disposition = dict(part["headers"]).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        part["field"] = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            part["file"] = Received(options[b"filename"].decode("utf-8", "replace"))
            files.append(part["file"])
            if sum(1 for f in files if f.filename) > settings.max_files:
                raise UploadRefused(f"每次核实最多 {settings.max_files} 个附件")
        else:
            fields += 1
            if fields > MAX_FIELDS:
                raise UploadRefused("上传的表单不对，请刷新页面后重试")
            part["file"], part["text"] = None, bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        received: Received | None = part.get("file")
        if received is None:
            part["text"] += data[start:end]
            if len(part["text"]) > MAX_FIELD:
                raise UploadRefused("上传的表单不对，请刷新页面后重试")
            return
        if len(received.data) + (end - start) > settings.max_file_bytes:
            label = store.clean_label(received.filename)
            raise UploadRefused(f"「{label}」文件超过 {settings.max_file_mb} MB，请压缩或拍得小一些后再上传", 413)
        received.data += data[start:end]

    def on_part_end() -> None:
        if part.get("file") is None and "text" in part:
            on_field(part["field"], part["text"].decode("utf-8", "replace"))

    parser = python_multipart.MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished})
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise UploadRefused("上传的内容不完整，请重新选择文件上传") from e
    # A file input left empty still sends a part with no name and no bytes.
    return [f for f in files if f.filename or f.data]


def _clue_or_404(c: Ctx, clue_id: int):
    try:
        return store.scoped_clue(c.session, clue_id, c.user)
    except LookupError:
        raise HTTPException(404) from None


@router.post("/clues/{clue_id}/attachments")
async def upload(clue_id: int, c: Ctx = Depends(ctx)):  # noqa: B008
    clue = _clue_or_404(c, clue_id)
    if c.user.role != "township":
        raise HTTPException(404)  # like every action a role has no business with
    back = RedirectResponse(f"/clues/{clue_id}#attachments", status_code=303)
    if not store.can_upload(clue, c.user):
        return _refused(c, clue.id, "该线索已销号，不能再上传附件", 400)
    settings = settings_of(c.request)
    csrf_seen: list[str] = []

    def on_field(name: str, value: str) -> None:
        if name == "csrf_token":
            check_csrf(c.request, value)  # before any file is read
            csrf_seen.append(value)

    try:
        received = await read_files(c.request.headers, c.request.stream(), settings, on_field)
        if not csrf_seen:
            check_csrf(c.request, None)
        prepared = await run_in_threadpool(lambda: [store.prepare(f.filename, bytes(f.data), settings) for f in received])
        with c.request.app.state.ledger.write() as s:
            kept = store.add(s, c.request.app.state.home, clue.id, c.user, prepared, settings)
    except (UploadRefused, store.AttachmentError) as e:
        log.info("attachment refused")  # why stays out of the log: the message names the user's file
        return _refused(c, clue.id, str(e), getattr(e, "status", 400))
    c.flash(message=f"已上传 {len(kept)} 个附件")
    return back


def _served(c: Ctx, attachment_id: int):
    try:
        return store.get(c.session, _attachment_clue(c, attachment_id), attachment_id, c.user)
    except LookupError:
        raise HTTPException(404) from None


def _attachment_clue(c: Ctx, attachment_id: int) -> int:
    row = c.session.get(store.Attachment, attachment_id)
    if row is None:
        raise HTTPException(404)
    return row.clue_id


@router.get("/attachments/{attachment_id}")
def view(attachment_id: int, c: Ctx = Depends(ctx), thumb: bool = False):  # noqa: B008
    clue, attachment = _served(c, attachment_id)
    home = c.request.app.state.home
    try:
        content = store.open_bytes(home, attachment)
    except store.MissingContentError as e:
        raise HTTPException(410, str(e)) from None
    image = attachment.media_type in (store.JPEG, store.PNG)
    with c.request.app.state.ledger.write() as s:
        store.record_view(s, clue, attachment, c.user, thumb=thumb and image)
    if thumb and image:
        content, media_type = store.thumbnail(content, attachment.media_type), store.JPEG
    else:
        media_type = attachment.media_type
    # The label goes in the header only as the name to save under (RFC 6266), never in a URL.
    fallback = f"attachment-{attachment.id}{store.SUFFIX[attachment.media_type]}"
    disposition = "inline" if image else "attachment"
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(attachment.label)}",
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox"})


@router.post("/attachments/{attachment_id}/remove")
def remove(attachment_id: int, c: Ctx = Depends(ctx), csrf_token: str = Form("")):  # noqa: B008
    check_csrf(c.request, csrf_token)
    clue, _ = _served(c, attachment_id)
    try:
        with c.request.app.state.ledger.write() as s:
            store.remove(s, clue.id, attachment_id, c.user)
    except store.AttachmentError as e:
        return _refused(c, clue.id, str(e), 400)
    c.flash(message="附件已删除（处理记录中保留删除记录）")
    return RedirectResponse(f"/clues/{clue.id}#attachments", status_code=303)


def _refused(c: Ctx, clue_id: int, message: str, status: int):
    """The clue page again with the reason (rendered, not redirected: it may name the user's file,
    which must not go into a URL)."""
    return township._clue_page(c, _clue_or_404(c, clue_id), status, None, message)


def limits(request: Request) -> AttachmentSettings:
    """For the upload form: the limits it states and checks before sending."""
    return settings_of(request)


templates.env.globals["attachment_limits"] = limits
