"""The one place for upload safety: every file a user sends comes through here before anything
reads what it holds.

- **The body as it streams in** (`read_form`): a multipart form read chunk by chunk, each file
  spooled to a temporary file and refused the moment it passes its limit; a Content-Length that
  already says too much is refused before a byte is read. Nothing reads an unbounded body whole.
- **Zip containers** (`check_zip`; every .xlsx is one): the number of members and the size of the
  central directory first (from the end record, before Python parses the directory), then each
  member's declared size, the total, the compression ratio and the compression method; then —
  while actually expanding every member, never trusting its header — the real size and ratio.
  Ingest's reader (bidui.connectors.readers) uses the same checks with its own limits and words.
- **A worker process** (`in_worker`): what parses a file (calamine) runs in a process of its own
  with an address-space limit, a timeout and a cap on how many run at once, so a file that still
  gets through takes down that process, never the web server and the other users' requests.
  It dies with the server (bidui.workers.die_with_parent).

Messages are in Chinese, name the user's own file (`shown_name`) and say what to do.

This module is also the worker's entry point (`python -m bidui.uploads`): it imports only what a
worker needs, so that a worker starts in a fraction of a second."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import weakref
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

MAX_NAME = 100  # characters of a user's file name shown back


def shown_name(filename: str | None, fallback: str) -> str:
    """The user's file name as they know it: without any folder (a browser may send
    C:\\Users\\…), without control characters, at most MAX_NAME characters (the end kept: it
    holds the extension). Never a path of ours."""
    name = PureWindowsPath(PurePosixPath(filename or "").name).name
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        ext = f".{ext}" if dot and len(ext) <= 8 else ""
        name = (stem if ext else name)[: MAX_NAME - len(ext)] + ext
    return name or fallback


# ---- the body as it streams in ------------------------------------------------------------------

SPOOL_IN_MEMORY = 1024 * 1024  # a file's first MB stays in memory; the rest goes to a temporary file


class UploadRefused(Exception):  # noqa: N818 - a message for the user, not a fault
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Received:
    """One file of a form, as it came (spooled: in memory up to SPOOL_IN_MEMORY, then on disk)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.size = 0
        self._file: BinaryIO = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by close()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def read(self) -> bytes:
        self._file.seek(0)
        return self._file.read()

    def save(self, path: Path) -> Path:
        self._file.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(self._file, out)
        return path

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class FormLimits:
    """What a form may carry, and what its user is told when it carries more."""

    max_file_bytes: int
    max_files: int
    too_big: Callable[[str], str]  # a file over the limit, by its shown name
    too_much: str  # the Content-Length already says more than the form may carry
    too_many: str  # more files than max_files
    wrong_form: str  # not a multipart form, or fields that our forms do not have
    incomplete: str  # the body ended in the middle
    fallback_name: str = "上传的文件"
    max_field: int = 4096  # bytes of a field that is not a file (the CSRF token)
    max_fields: int = 10
    overhead: int = 64 * 1024  # part headers and boundaries, generously


async def read_form(headers: Mapping[str, str], stream: AsyncIterator[bytes], limits: FormLimits,
                    on_field: Callable[[str, str], None]) -> list[Received]:
    """The files of a multipart form, each read chunk by chunk and refused the moment it passes
    its limit (a 100 MB file costs the limit's worth of reading, not 100 MB); fields are handed to
    `on_field` as soon as they end (our forms put the CSRF token before the files, so a forged
    form is refused before a file is read). The caller closes what it gets."""
    from python_multipart import MultipartParser
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import parse_options_header

    ctype, params = parse_options_header(headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRefused(limits.wrong_form)
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > limits.max_files * limits.max_file_bytes + limits.overhead:
        raise UploadRefused(limits.too_much, 413)

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
            if sum(1 for f in files if f.filename) > limits.max_files:
                raise UploadRefused(limits.too_many)
        else:
            fields += 1
            if fields > limits.max_fields:
                raise UploadRefused(limits.wrong_form)
            part["file"], part["text"] = None, bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        received: Received | None = part.get("file")
        if received is None:
            part["text"] += data[start:end]
            if len(part["text"]) > limits.max_field:
                raise UploadRefused(limits.wrong_form)
            return
        if received.size + (end - start) > limits.max_file_bytes:
            raise UploadRefused(limits.too_big(shown_name(received.filename, limits.fallback_name)), 413)
        received.write(data[start:end])

    def on_part_end() -> None:
        if part.get("file") is None and "text" in part:
            on_field(part["field"], part["text"].decode("utf-8", "replace"))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished})
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        _close(files)
        raise UploadRefused(limits.incomplete) from e
    except BaseException:
        _close(files)
        raise
    # A file input left empty still sends a part with no name and no bytes.
    kept = [f for f in files if f.filename or f.size]
    _close([f for f in files if f not in kept])
    return kept


def _close(files: list[Received]) -> None:
    for f in files:
        f.close()


# ---- zip containers -----------------------------------------------------------------------------

STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED  # all Excel and WPS ever write
HEAD_BYTES = 65_536  # of a sheet, for its declared range
CHUNK = 1024 * 1024
_EOCD, _EOCD64_LOCATOR = b"PK\x05\x06", b"PK\x06\x07"
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)?(\d+)?(?::([A-Z]+)(\d+))?"')
# Bytes of central directory per member the check allows before Python parses the directory
# (a fixed 46, the name, an extra field): a directory far larger than its members need is a trick.
DIRECTORY_PER_MEMBER = 1024


@dataclass(frozen=True)
class ZipLimits:
    max_expanded: int  # all members together
    max_ratio: float  # expanded ÷ compressed, per member …
    ratio_floor: int = CHUNK  # … once it has expanded past this (small XML parts compress well)
    max_members: int | None = None
    max_rows: int | None = None  # a sheet's declared rows
    max_cells: int | None = None  # a sheet's declared rows × columns (calamine allocates the whole range)


class ZipRefused(ValueError):  # noqa: N818 - a reason to refuse, not a fault
    """What is wrong with a zip container; each caller words it for its reader.
    kind: not_zip | damaged | members | method | expanded | ratio | rows | cells."""

    def __init__(self, kind: str, member: str = "", size: int = 0, ratio: float = 0.0, rows: int = 0,
                 cols: int = 0) -> None:
        super().__init__(kind)
        self.kind, self.member, self.size, self.ratio, self.rows, self.cols = kind, member, size, ratio, rows, cols


def _directory(f: BinaryIO) -> tuple[int, int]:
    """(members, bytes of the central directory) from the end record (zip64 too), or ZipRefused."""
    size = f.seek(0, 2)
    f.seek(max(0, size - 65_557))  # the end record (22 bytes) and its comment (at most 65,535)
    tail = f.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise ZipRefused("damaged")
    members, directory = struct.unpack("<HI", tail[at + 10:at + 16])
    if members == 0xFFFF or directory == 0xFFFFFFFF:
        locator = tail.rfind(_EOCD64_LOCATOR, 0, at)
        if locator < 0:
            raise ZipRefused("damaged")
        (offset,) = struct.unpack("<Q", tail[locator + 8:locator + 16])
        f.seek(offset)
        record = f.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            raise ZipRefused("damaged")
        members, directory = struct.unpack("<QQ", record[32:48])
    return members, directory


def _column_number(letters: str) -> int:
    n = 0
    for c in letters:
        n = n * 26 + ord(c) - 64
    return n


def declared_range(head: bytes) -> tuple[int, int] | None:
    """(rows, columns) a sheet's <dimension> declares in the first bytes of its XML, or None."""
    m = _DIMENSION.search(head)
    if not (m and m.group(4)):
        return None
    rows = int(m.group(4)) - int(m.group(2) or 1) + 1
    cols = _column_number(m.group(3).decode()) - _column_number((m.group(1) or b"A").decode()) + 1
    return rows, cols


def _is_sheet(member: str) -> bool:
    return member.startswith("xl/worksheets/") and member.endswith(".xml")


def _data_start(f: BinaryIO, info: zipfile.ZipInfo) -> None:
    """Seek to the member's compressed bytes, where the directory places them (as any reader does)."""
    f.seek(info.header_offset)
    local = f.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ZipRefused("damaged", info.filename)
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    f.seek(info.header_offset + 30 + name_len + extra_len)


def _head(f: BinaryIO, info: zipfile.ZipInfo) -> bytes:
    """A member's first HEAD_BYTES, expanded from its raw bytes (zipfile would stop at the size its
    header claims, and call a lying header a bad CRC)."""
    _data_start(f, info)
    raw = f.read(min(info.compress_size, HEAD_BYTES))
    if info.compress_type != DEFLATED:
        return raw
    try:
        return zlib.decompressobj(-15).decompress(raw, HEAD_BYTES)
    except zlib.error as e:
        raise ZipRefused("damaged", info.filename) from e


def _expanded(f: BinaryIO, info: zipfile.ZipInfo, budget: int, limits: ZipLimits) -> int:
    """Bytes the member really expands to, counted while expanding it in chunks (never held):
    from its compressed bytes as the directory places them, as any reader would read them, not
    from the size its headers claim. ZipRefused once past `budget` or the ratio."""
    _data_start(f, info)
    left, out, fed, rows = info.compress_size, 0, 0, 0
    inflate = zlib.decompressobj(-15) if info.compress_type == DEFLATED else None
    # A sheet's rows as they go by (a sheet need not declare its range, or may declare it falsely):
    # a million rows are refused here, not after calamine has built them.
    sheet = limits.max_rows is not None and _is_sheet(info.filename)

    def count(piece: bytes) -> None:
        nonlocal out, rows
        out += len(piece)
        if sheet:
            rows += piece.count(b"<row")  # a tag cut by a chunk's end is missed: a cap, not a census
            if rows > limits.max_rows:  # type: ignore[operator]
                raise ZipRefused("rows", info.filename)  # rows=0: more than the cap, how many is unknown
        if out > budget:
            raise ZipRefused("expanded", info.filename, out)
        # The ratio so far (output ÷ the compressed bytes it came from): a bomb shows itself in
        # its first megabytes, whatever its header says.
        if out > limits.ratio_floor and out / max(fed, 1) > limits.max_ratio:
            raise ZipRefused("ratio", info.filename, out, out / max(fed, 1))

    try:
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                raise ZipRefused("damaged", info.filename)
            left -= len(data)
            if inflate is None:
                fed += len(data)
                count(data)
                continue
            while data and not inflate.eof:
                before = len(data)
                piece = inflate.decompress(data, CHUNK)  # at most a chunk of output at a time
                data = inflate.unconsumed_tail
                fed += before - len(data)
                count(piece)
        while inflate is not None and not inflate.eof:
            piece = inflate.decompress(b"", CHUNK)
            if not piece:
                break
            count(piece)
    except zlib.error as e:
        raise ZipRefused("damaged", info.filename) from e
    return out


def check_zip(path: Path, limits: ZipLimits, expand: bool = False, sheets: bool = True) -> None:
    """Refuse a zip container before anything parses it, or return. Always: the member count and
    the directory's size (before the directory is parsed), each member's compression method,
    declared size and ratio, and their total. `expand`: each member really expanded and counted
    (a header that lies about its size does not help). `sheets`: each worksheet's declared range
    against max_rows and max_cells (calamine allocates the whole range)."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise ZipRefused("not_zip")
            members, directory = _directory(f)
            if limits.max_members is not None and (members > limits.max_members
                                                   or directory > limits.max_members * DIRECTORY_PER_MEMBER):
                raise ZipRefused("members", size=members)
            with zipfile.ZipFile(f) as z:
                infos = z.infolist()
                if limits.max_members is not None and len(infos) > limits.max_members:
                    raise ZipRefused("members", size=len(infos))
                total = 0
                for i in infos:
                    if i.compress_type not in (STORED, DEFLATED) or i.flag_bits & 0x1:  # 0x1: encrypted
                        raise ZipRefused("method", i.filename)
                    total += i.file_size
                    if total > limits.max_expanded:
                        raise ZipRefused("expanded", i.filename, total)
                    ratio = i.file_size / max(i.compress_size, 1)
                    if i.file_size > limits.ratio_floor and ratio > limits.max_ratio:
                        raise ZipRefused("ratio", i.filename, i.file_size, ratio)
                if sheets and (limits.max_rows or limits.max_cells):
                    for i in infos:
                        if not _is_sheet(i.filename):
                            continue
                        declared = declared_range(_head(f, i))
                        if declared is None:
                            continue
                        rows, cols = declared
                        if limits.max_rows is not None and rows > limits.max_rows:
                            raise ZipRefused("rows", i.filename, rows=rows, cols=cols)
                        if limits.max_cells is not None and rows * cols > limits.max_cells:
                            raise ZipRefused("cells", i.filename, rows=rows, cols=cols)
                if expand:
                    total = 0
                    for i in infos:
                        total += _expanded(f, i, limits.max_expanded - total, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, struct.error, NotImplementedError) as e:
        raise ZipRefused("damaged") from e


def zip_message(e: ZipRefused, name: str, limits: ZipLimits, unreadable: str) -> str:
    """A zip refusal as its user reads it: their file, what is wrong, what to do. `unreadable`:
    what to do with a file that is not the kind asked for (or is damaged)."""
    if e.kind in ("not_zip", "damaged", "method"):
        return f"{name}: {unreadable}"
    if e.kind in ("rows", "cells"):
        return rows_message(name, e.rows - 1 if e.rows else None, (limits.max_rows or 1) - 1)  # the header is not a row
    if e.kind == "members":
        return f"{name}: 文件内部结构异常（部件过多），不是本系统导出的文件，已拒收。请重新下载填写后再上传"
    return (f"{name}: 文件解压后超过 {limits.max_expanded // (1024 * 1024)} MB（或压缩比异常），可能是恶意构造的文件，"
            "已拒收。请上传从本系统下载、在 Excel 或 WPS 中填写保存的文件")


def rows_message(name: str, rows: int | None, max_rows: int) -> str:
    """A sheet with more rows than a file of ours can have (declared, or counted until the cap)."""
    many = f"有 {rows:,} 行，" if rows else ""
    return (f"{name}: 工作表{many}超过 {max_rows:,} 行的上限，不是本系统导出的文件（每条线索一行）。"
            "请重新下载填写后再上传")


def workbook_zip_limits(max_expanded: int, max_ratio: float, max_members: int, max_rows: int) -> ZipLimits:
    """A township's workbook: a few MB of XML in a dozen parts; one row per clue plus the header."""
    return ZipLimits(max_expanded=max_expanded, max_ratio=max_ratio, max_members=max_members, max_rows=max_rows + 1)


# ---- the worker process -------------------------------------------------------------------------

# What a worker may be asked to do: a name, not an import path from the request.
TASKS = {"workbook": "bidui.clues.workbook_check:read_upload"}


class WorkerFailed(Exception):  # noqa: N818 - a reason, not a fault of ours
    """kind: timeout (the worker ran past its time and was killed) | died (killed: memory,
    a crash in the parser) | busy (no worker free in time)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _slot(workers: int) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(workers)
    return _slots[loop]


async def in_worker(task: str, job: dict[str, Any], memory_bytes: int, seconds: float, workers: int) -> Any:
    """Run a task in a worker process of its own and return what it returns (JSON, never a
    pickle: what comes back from a process that read a hostile file is only data). Started from
    the event loop's thread, so it dies with the server (PR_SET_PDEATHSIG follows that thread);
    at most `workers` at once; killed after `seconds` (the wait for a free slot counts)."""
    if task not in TASKS:
        raise ValueError(f"no upload task {task!r}")
    deadline = asyncio.get_running_loop().time() + seconds
    slot = _slot(workers)
    try:
        await asyncio.wait_for(slot.acquire(), seconds)
    except TimeoutError:
        raise WorkerFailed("busy") from None
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bidui.uploads", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        request = json.dumps({"task": task, "job": job, "memory": memory_bytes, "parent": os.getpid()}).encode()
        try:
            out, _ = await asyncio.wait_for(proc.communicate(request),
                                            max(deadline - asyncio.get_running_loop().time(), 0.1))
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise WorkerFailed("timeout") from None
        except BaseException:
            if proc.returncode is None:  # the request was cancelled (the user went away): so is the worker
                proc.kill()
                await proc.wait()
            raise
    finally:
        slot.release()
    if proc.returncode != 0 or not out:
        raise WorkerFailed("died")
    try:
        result = json.loads(out)
    except ValueError:
        raise WorkerFailed("died") from None
    if isinstance(result, dict) and result.get("failed"):  # a MemoryError in the worker
        raise WorkerFailed("died")
    return result


def worker_message(e: WorkerFailed, name: str) -> str:
    if e.kind == "busy":
        return f"{name}: 系统正忙（同时上传的文件较多），请稍后再上传"
    if e.kind == "timeout":
        return f"{name}: 文件读取超时，已停止读取。请确认上传的是本系统下载、填写保存的核实工作簿，稍后再试"
    return (f"{name}: 文件过大或内部结构异常，无法读取，已拒收。请上传从本系统下载、在 Excel 或 WPS 中填写保存的核实工作簿")


def _worker_main() -> None:
    """`python -m bidui.uploads`: one task from stdin (JSON), its result to stdout (JSON). The
    memory limit comes first: everything after it, the parse included, lives within it. A
    MemoryError is an answer; an allocation failure in the parser's native code kills only this
    process (the server then says the file is too large)."""
    import resource

    from bidui.workers import die_with_parent

    request = json.loads(sys.stdin.buffer.read())
    memory = int(request["memory"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    die_with_parent(int(request["parent"]))
    module, _, function = TASKS[request["task"]].partition(":")
    try:
        result = getattr(importlib.import_module(module), function)(**request["job"])
    except MemoryError:
        result = {"failed": "memory"}
    sys.stdout.write(json.dumps(result, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    _worker_main()
