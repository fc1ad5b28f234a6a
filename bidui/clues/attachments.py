"""Photos and PDFs kept with a verification (影像资料、佐证材料): what is accepted, how it is made
safe, where it is kept, who may add, see and remove it. The bytes arrive through the upload
guard (bidui.uploads: read as they stream in, refused past the size limit); what they hold is
judged here; the web routes (bidui.web.attachments) only carry bytes to and from here.

- Accepted: JPEG, PNG and PDF, told by their content (magic bytes, then a real parse for images),
  never by the file name or the browser's content type. A name that says one allowed type over
  content of another (a PDF renamed .jpg) is refused: the clerk picked the wrong file, or the file
  was disguised.
- Images are decoded and encoded again: nothing of the original file survives but the pixels (no
  EXIF, no GPS position, no comments, no ICC profile), turned upright first. An image whose header
  promises more pixels than `max_pixels` is refused before it is decoded (a decompression bomb);
  a truncated or damaged image is refused. PDFs are checked for their header and kept as they
  came; they are never rendered here.
- Kept content-addressed under the home (`attachments/ab/abcdef…`, the SHA-256 of what is kept):
  the same photo uploaded twice is one file; the ledger row says which clue, round, who, when.
- A verification round is what the township sends between two county actions: its attachments
  are counted against `max_files`, and the uploader may remove their own while the county has not
  acted on them (a return or a close makes them part of the record)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageOps
from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Attachment, Clue, ClueEvent, User
from bidui.clues.states import CLOSED, OPEN, TransitionError
from bidui.config import AttachmentSettings
from bidui.home import Home
from bidui.uploads import MAX_NAME, shown_name

JPEG, PNG, PDF = "image/jpeg", "image/png", "application/pdf"
MEDIA_TYPES = (JPEG, PNG, PDF)
TYPE_NAMES = {JPEG: "JPG 图片", PNG: "PNG 图片", PDF: "PDF 文件"}
EXTENSIONS = {".jpg": JPEG, ".jpeg": JPEG, ".jpe": JPEG, ".jfif": JPEG, ".png": PNG, ".pdf": PDF}
SUFFIX = {JPEG: ".jpg", PNG: ".png", PDF: ".pdf"}
MAX_LABEL = MAX_NAME
# Kept images are at most this many pixels on the long side: a phone's 12- or 48-megapixel photo
# of a certificate stays legible, and a page of five stays light on a phone's data plan.
MAX_EDGE = 4096
THUMB_EDGE = 480
JPEG_QUALITY = 88
# Events in the clue's history; the county's actions close a verification round.
ADDED, VIEWED, REMOVED = "attachment_added", "attachment_viewed", "attachment_removed"
ROUND_ENDS = ("return", "close", "reraised")
LIMITS_HINT = "只能上传 JPG、PNG 图片或 PDF 文件"


class AttachmentError(ValueError):
    """An upload refused; the message says why and what to do, in Chinese."""


@dataclass(frozen=True)
class Prepared:
    """A file made safe and ready to keep."""

    label: str
    media_type: str
    content: bytes
    sha256: str


def clean_label(filename: str | None) -> str:
    """The uploader's file name as kept and shown (bidui.uploads.shown_name: no folder, no control
    characters, at most MAX_LABEL characters with the extension kept)."""
    return shown_name(filename, "附件")


def sniff(head: bytes) -> str | None:
    """The allowed media type the content starts as, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"%PDF-"):
        return PDF
    return None


def what_it_is(head: bytes) -> str:
    """What a refused file actually is, in words a clerk knows."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<meta", b"<iframe")):
        return "HTML 网页"
    if text.startswith(b"<?xml") or text.startswith(b"<svg"):
        return "SVG 图形或 XML 文件" if b"<svg" in text[:1024] else "XML 文件"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF 动图"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP 图片"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "苹果手机的 HEIC 照片，请在“设置—相机—格式”中选“兼容性最佳”后重拍，或截图后上传"
        return "AVIF 图片" if brand in (b"avif", b"avis") else "视频"
    if head.startswith(b"PK\x03\x04"):
        return "Word、Excel 文档或压缩包"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "旧版 Word、Excel 文档"
    if head.startswith(b"BM"):
        return "BMP 图片"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF 图片"
    if head.startswith((b"Rar!", b"7z\xbc\xaf", b"\x1f\x8b")):
        return "压缩包"
    if head.startswith(b"MZ") or head.startswith(b"\x7fELF"):
        return "程序文件"
    if not head:
        return "空文件"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "无法识别的格式"
    return "文本文件"


def prepare(filename: str | None, data: bytes, settings: AttachmentSettings) -> Prepared:
    """Check an uploaded file and make it safe to keep, or AttachmentError."""
    label = clean_label(filename)
    if len(data) > settings.max_file_bytes:
        raise AttachmentError(f"「{label}」超过 {settings.max_file_mb} MB，请压缩或拍得小一些后再上传")
    media_type = sniff(data[:16])
    if media_type is None:
        what = what_it_is(data[:2048])
        raise AttachmentError(f"{LIMITS_HINT}（「{label}」实际是{' ' if what[0].isascii() else ''}{what}）")
    named = EXTENSIONS.get(Path(label).suffix.lower())
    if named is not None and named != media_type:
        raise AttachmentError(f"「{label}」的名字是 {TYPE_NAMES[named]}，内容却是 {TYPE_NAMES[media_type]}：请确认选对了文件，"
                              f"或把文件名改回 {SUFFIX[media_type]} 后再上传")
    content = data if media_type == PDF else _reencode(label, data, media_type, settings)
    return Prepared(label, media_type, content, hashlib.sha256(content).hexdigest())


def _reencode(label: str, data: bytes, media_type: str, settings: AttachmentSettings) -> bytes:
    fmt = "JPEG" if media_type == JPEG else "PNG"
    damaged = f"「{label}」图片已损坏或不完整（可能没有传完），请重新拍照或重新选择文件"
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            width, height = im.size
            if width * height > settings.max_pixels:
                raise AttachmentError(f"「{label}」图片像素过多（{width}×{height}），最多 {settings.max_pixels // 1_000_000} "
                                      "百万像素：请缩小后再上传")
            if fmt == "JPEG" and max(width, height) > MAX_EDGE:
                im.draft("RGB", (MAX_EDGE, MAX_EDGE))  # decode at a reduced scale: less memory
            im.load()  # the real parse: a truncated or corrupt file fails here
            try:
                upright = ImageOps.exif_transpose(im)  # the EXIF orientation goes: apply it first
            except (ValueError, OSError, SyntaxError, KeyError, TypeError):
                upright = im.copy()  # unreadable EXIF: keep the pixels as stored
    except AttachmentError:
        raise
    except Image.DecompressionBombError as e:
        raise AttachmentError(f"「{label}」图片像素过多，可能是恶意构造的文件，已拒收") from e
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as e:
        raise AttachmentError(damaged) from e
    if max(upright.size) > MAX_EDGE:
        upright.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS)
    if fmt == "JPEG":
        upright = upright if upright.mode in ("RGB", "L") else upright.convert("RGB")
    elif upright.mode not in ("1", "L", "LA", "RGB", "RGBA"):
        alpha = upright.mode in ("PA", "La") or "transparency" in upright.info
        upright = upright.convert("RGBA" if alpha else "RGB")
    upright.info = {}  # Pillow writes some of info (ICC profile, comment, DPI) back: nothing is kept
    out = io.BytesIO()
    if fmt == "JPEG":
        upright.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        upright.save(out, "PNG", optimize=True)
    return out.getvalue()


def thumbnail(content: bytes, media_type: str) -> bytes:
    """A small JPEG of a kept image (for the clue page and the review queue)."""
    if media_type not in (JPEG, PNG):
        raise ValueError("only images have thumbnails")
    with Image.open(io.BytesIO(content), formats=["JPEG" if media_type == JPEG else "PNG"]) as im:
        im.draft("RGB", (THUMB_EDGE, THUMB_EDGE))
        im.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.Resampling.LANCZOS)
        if im.mode in ("RGBA", "LA", "PA", "P"):
            rgba = im.convert("RGBA")
            im = Image.new("RGB", rgba.size, "white")
            im.paste(rgba, mask=rgba.getchannel("A"))
        elif im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
    return out.getvalue()


# ---- storage ------------------------------------------------------------------------------------

def path_of(home: Home, sha256: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("not a SHA-256")
    return home.attachments / sha256[:2] / sha256


def store(home: Home, prepared: Prepared) -> Path:
    """Write the bytes once (a rename makes them appear whole or not at all)."""
    path = path_of(home, prepared.sha256)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(prepared.content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class MissingContentError(LookupError):
    """The ledger lists the attachment but its bytes are gone or altered."""


def open_bytes(home: Home, attachment: Attachment) -> bytes:
    """The kept bytes, checked against their address (a file altered on disk is not served)."""
    try:
        content = path_of(home, attachment.sha256).read_bytes()
    except FileNotFoundError as e:
        raise MissingContentError("附件文件缺失，请联系专班管理员") from e
    if hashlib.sha256(content).hexdigest() != attachment.sha256:
        raise MissingContentError("附件文件已损坏，请联系专班管理员")
    return content


# ---- the ledger ---------------------------------------------------------------------------------

def _round_marks(session: Session, clue_ids: Collection[int]) -> tuple[dict[int, int], dict[int, list[tuple[int, str]]]]:
    """(attachment id → id of its `attachment_added` event, clue id → (id, kind) of its
    round-ending events): which verification round each attachment belongs to."""
    added: dict[int, int] = {}
    ends: dict[int, list[tuple[int, str]]] = {i: [] for i in clue_ids}
    for event in session.scalars(select(ClueEvent).where(ClueEvent.clue_id.in_(clue_ids),
                                                         ClueEvent.kind.in_((ADDED, *ROUND_ENDS)))
                                 .order_by(ClueEvent.id)):
        if event.kind == ADDED and event.payload:
            added[int(event.payload.get("attachment", 0))] = event.id
        elif event.kind != ADDED:
            ends[event.clue_id].append((event.id, event.kind))
    return added, ends


def _annotate(session: Session, attachments: list[Attachment]) -> None:
    """Set, on each loaded row (plain attributes, not columns), `round` (1 = with the first
    verification, 2 = after the first return…), `open_round` (the county has not acted on it
    yet) and `uploader` (the person, not the login name)."""
    if not attachments:
        return
    clue_ids = {a.clue_id for a in attachments}
    added, ends = _round_marks(session, clue_ids)
    names = {u.username: (u.real_name or u.display_name or u.username) for u in session.scalars(
        select(User).where(User.username.in_({a.uploaded_by for a in attachments})))}
    for a in attachments:
        at = added.get(a.id, 0)
        a.round = 1 + sum(1 for e, kind in ends[a.clue_id] if e < at and kind == "return")
        a.open_round = not any(e > at for e, _ in ends[a.clue_id])
        a.uploader = names.get(a.uploaded_by, a.uploaded_by)


def for_clue(session: Session, clue_id: int) -> list[Attachment]:
    """The clue's attachments not removed, oldest first (annotated: see _annotate). The caller
    has checked the clue is in the user's scope."""
    return for_clues(session, [clue_id]).get(clue_id, [])


def for_clues(session: Session, clue_ids: Iterable[int]) -> dict[int, list[Attachment]]:
    """Attachments not removed, by clue (for the review queue: one query for a page of clues)."""
    ids = sorted(set(clue_ids))
    if not ids:
        return {}
    rows = list(session.scalars(select(Attachment).where(Attachment.clue_id.in_(ids), Attachment.removed.is_(False))
                                .order_by(Attachment.id)))
    _annotate(session, rows)
    out: dict[int, list[Attachment]] = {}
    for a in rows:
        out.setdefault(a.clue_id, []).append(a)
    return out


def scoped_clue(session: Session, clue_id: int, user: User) -> Clue:
    clue = session.get(Clue, clue_id)
    if clue is None or not scope.covers(user.scope, clue.township_code):
        raise LookupError("no such clue in scope")
    return clue


def can_upload(clue: Clue, user: User) -> bool:
    """The township's verifiers, while the clue is open to them (not once closed)."""
    return user.role == "township" and clue.status in OPEN and scope.covers(user.scope, clue.township_code)


def can_remove(clue: Clue, attachment: Attachment, user: User) -> bool:
    """Only one's own, only while the county has not acted on it (needs an annotated row)."""
    return (can_upload(clue, user) and attachment.uploaded_by == user.username and not attachment.removed
            and clue.status != CLOSED and bool(getattr(attachment, "open_round", False)))


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)


def add(session: Session, home: Home, clue_id: int, user: User, files: list[Prepared],
        settings: AttachmentSettings) -> list[Attachment]:
    """Keep the files with the clue's current verification round, or AttachmentError (then nothing
    is kept). Call inside a write transaction: the count and the insert are one step."""
    clue = scoped_clue(session, clue_id, user)
    if not can_upload(clue, user):
        raise AttachmentError("该线索已销号，不能再上传附件" if clue.status == CLOSED else "只有乡镇核实人员可以上传附件")
    if not files:
        raise AttachmentError("请先选择要上传的照片或 PDF 文件")
    kept_before = [a for a in for_clue(session, clue.id) if a.open_round]
    # The same file twice (picked again, or sent twice on a slow line) is kept once: each copy took
    # one of the round's places.
    seen, fresh = {a.sha256 for a in kept_before}, []
    for p in files:
        if p.sha256 not in seen:
            seen.add(p.sha256)
            fresh.append(p)
    if not fresh:
        raise AttachmentError(f"“{files[0].label}”本轮已上传过，不用再传" if len(files) == 1
                              else "所选文件本轮都已上传过，不用再传")
    files, in_round = fresh, len(kept_before)
    if in_round + len(files) > settings.max_files:
        left = max(settings.max_files - in_round, 0)
        raise AttachmentError(f"每次核实最多 {settings.max_files} 个附件" +
                              (f"（本轮已有 {in_round} 个，还可上传 {left} 个）" if in_round else ""))
    stamp, kept = _now(), []
    for p in files:
        store(home, p)
        row = Attachment(clue_id=clue.id, clue_version=clue.version, sha256=p.sha256, media_type=p.media_type,
                         size=len(p.content), label=p.label, uploaded_by=user.username, uploaded_at=stamp, removed=False)
        session.add(row)
        session.flush()
        session.add(ClueEvent(clue_id=clue.id, at=stamp, actor=user.username, kind=ADDED, from_status=clue.status,
                              to_status=clue.status, payload={"attachment": row.id, "media_type": p.media_type,
                                                              "size": len(p.content)}))
        kept.append(row)
    session.flush()
    return kept


def get(session: Session, clue_id: int, attachment_id: int, user: User) -> tuple[Clue, Attachment]:
    """The clue and its attachment if the user's scope covers the clue and it is not removed, or
    LookupError (a clue outside one's scope and a missing attachment are not told apart)."""
    clue = scoped_clue(session, clue_id, user)
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.clue_id != clue.id or attachment.removed:
        raise LookupError("no such attachment")
    _annotate(session, [attachment])
    return clue, attachment


def record_view(session: Session, clue: Clue, attachment: Attachment, user: User, thumb: bool = False) -> None:
    """Every look at an attachment goes into the clue's history (a thumbnail too: it shows the photo)."""
    session.add(ClueEvent(clue_id=clue.id, at=_now(), actor=user.username, kind=VIEWED, from_status=clue.status,
                          to_status=clue.status, payload={"attachment": attachment.id, "thumbnail": thumb}))


def remove(session: Session, clue_id: int, attachment_id: int, user: User) -> Attachment:
    clue, attachment = get(session, clue_id, attachment_id, user)
    if not can_remove(clue, attachment, user):
        raise AttachmentError("只能删除本人上传、县级尚未审核的附件")
    attachment.removed = True  # the row and the bytes stay: the history still says what was there
    session.add(ClueEvent(clue_id=clue.id, at=_now(), actor=user.username, kind=REMOVED, from_status=clue.status,
                          to_status=clue.status, payload={"attachment": attachment.id}))
    session.flush()
    return attachment


def check_required(session: Session, clue: Clue, required_rules: Collection[str]) -> None:
    """A rule configured to need one ([rules.attachments] required) is not signed without a photo
    or PDF on the clue (one from an earlier round counts: it is still evidence)."""
    if clue.rule_code not in required_rules:
        return
    has = session.scalar(select(Attachment.id).where(Attachment.clue_id == clue.id, Attachment.removed.is_(False))
                         .limit(1))
    if has is None:
        raise TransitionError(f"“{clue.rule_title}”须上传照片或证明材料（影像资料、佐证材料）后才能签字，"
                              "请先在本页上传")
