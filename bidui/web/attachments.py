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
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bidui import config, uploads
from bidui.clues import attachments as store
from bidui.config import AttachmentSettings
from bidui.uploads import UploadRefused
from bidui.web import township
from bidui.web.deps import Ctx, ctx, templates
from bidui.web.security import check_csrf

log = logging.getLogger("bidui.web")
router = APIRouter()
__all__ = ["UploadRefused", "read_files", "router"]  # UploadRefused: the guard's, raised by read_files


def settings_of(request: Request) -> AttachmentSettings:
    return config.attachment_settings(request.app.state.home.config)


def attachment_form(settings: AttachmentSettings) -> uploads.FormLimits:
    """The attachment form: up to max_files photos or PDFs, each refused while it streams in past
    max_file_mb (what they hold is checked by bidui.clues.attachments)."""
    mb = settings.max_file_mb
    return uploads.FormLimits(
        max_file_bytes=settings.max_file_bytes, max_files=settings.max_files,
        too_big=lambda label: f"「{label}」文件超过 {mb} MB，请压缩或拍得小一些后再上传",
        too_much=f"每次核实最多 {settings.max_files} 个附件，每个不超过 {mb} MB",
        too_many=f"每次核实最多 {settings.max_files} 个附件", wrong_form="上传格式不对，请在线索页面上选择文件后上传",
        incomplete="上传的内容不完整，请重新选择文件上传", fallback_name="附件")


async def read_files(headers: Mapping[str, str], stream: AsyncIterator[bytes], settings: AttachmentSettings,
                     on_field: Callable[[str, str], None]) -> list[uploads.Received]:
    """The files of an attachment form, read by the upload guard (bidui.uploads.read_form)."""
    return await uploads.read_form(headers, stream, attachment_form(settings), on_field)


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
        try:
            prepared = await run_in_threadpool(lambda: [store.prepare(f.filename, f.read(), settings) for f in received])
        finally:
            for f in received:
                f.close()
        with c.request.app.state.ledger.write() as s:
            kept = store.add(s, c.request.app.state.home, clue.id, c.user, prepared, settings)
    except (UploadRefused, store.AttachmentError) as e:
        log.info("attachment refused")  # why stays out of the log: the message names the user's file
        return _refused(c, clue.id, str(e), getattr(e, "status", 400))
    same = len(prepared) - len(kept)
    c.flash(message=f"已上传 {len(kept)} 个附件" + (f"；{same} 个与已上传的文件相同，没有重复保存" if same else ""))
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


def _thumbnails_seen_today(c: Ctx, clue_id: int) -> bool:
    """Whether this person's thumbnail look at the clue is already in its history today.

    A county reviewer reads the history for who opened which attachment in full (each one
    recorded) and who saw the household's photos at all: a thumbnail does show the photo, so the
    first of a day is kept, but the clue page asks for every thumbnail on every visit (no-store),
    and a row per thumbnail per visit would bury the verification steps under 查看附件."""
    from datetime import datetime, time

    from sqlalchemy import select

    from bidui.clues.models import ClueEvent

    since = datetime.combine(datetime.now().date(), time())
    payloads = c.session.scalars(select(ClueEvent.payload).where(
        ClueEvent.clue_id == clue_id, ClueEvent.actor == c.user.username, ClueEvent.kind == store.VIEWED,
        ClueEvent.at >= since))
    return any((p or {}).get("thumbnail") for p in payloads)


@router.get("/attachments/{attachment_id}")
def view(attachment_id: int, c: Ctx = Depends(ctx), thumb: bool = False):  # noqa: B008
    clue, attachment = _served(c, attachment_id)
    home = c.request.app.state.home
    try:
        content = store.open_bytes(home, attachment)
    except store.MissingContentError as e:
        raise HTTPException(410, str(e)) from None
    image = attachment.media_type in (store.JPEG, store.PNG)
    small = thumb and image
    if not small or not _thumbnails_seen_today(c, clue.id):
        with c.request.app.state.ledger.write() as s:
            store.record_view(s, clue, attachment, c.user, thumb=small)
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
