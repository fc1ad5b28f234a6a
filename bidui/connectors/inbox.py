"""What a night folder holds: the delivered files, what is refused before it is opened, and the
evidence that a file is whole.

A night folder is written by other people's systems: a file may still be arriving, be a symbolic
link (to another night's file, to /etc/passwd), a FIFO that would block a reader forever, or carry a
name in GBK bytes (a zip made on Windows). Nothing here opens a file that is not a regular file.

Completeness evidence, strongest first: a checksum file beside the file (`<file>.sha256` or
`<file>.md5`, as `sha256sum` writes it) that matches; the department's marker for the whole night
(`_SUCCESS` in the folder); else the file has not changed for `settle_seconds`. Whatever the
evidence, a file that changes while it is read is not taken.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

NIGHT_MARKER = "_SUCCESS"
CHECKSUM_SUFFIXES = (".sha256", ".md5")
# What transfer tools name a file until it is complete (WinSCP, FileZilla, curl, browsers, rsync's
# own dot-files are hidden anyway): the file is still arriving.
TRANSFER_SUFFIXES = (".part", ".filepart", ".partial", ".tmp", ".crdownload", ".download", ".!ut")


@dataclass(frozen=True)
class Entry:
    """One name in the night folder."""

    path: Path  # as on disk (an undecodable name keeps its bytes, escaped)
    name: str  # as shown to people and stored in the load log: decoded or escaped, never raw bytes
    refused: str | None = None  # why it is not read at all
    arriving: bool = False  # a transfer tool's temporary name: held as still being written


@dataclass(frozen=True)
class Seen:
    """A file's size and modification time: equal before and after reading, or it changed."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Seen:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns)


def shown_name(name: str) -> str:
    """A file name as people read it. Python hands over undecodable bytes as lone surrogates,
    which no database or terminal takes: such a name is decoded as GB18030 (what Windows zips
    write) or, failing that, shown with its bytes escaped."""
    try:
        name.encode("utf-8")
        shown = name
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "surrogateescape")
        try:
            shown = raw.decode("gb18030")
        except UnicodeDecodeError:
            shown = raw.decode("utf-8", "backslashreplace")
    # A newline or an escape sequence in a name must not reach a terminal or a log line as such.
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in shown)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a plain file"


def is_marker(name: str) -> bool:
    return name == NIGHT_MARKER or name.lower().endswith(CHECKSUM_SUFFIXES)


def aside(name: str) -> bool:
    """Hidden files and Office lock files (`~$…`): in a night folder, but no deliveries and no part
    of what the folder holds (`folder_state`)."""
    return name.startswith((".", "~$"))


def folder_state(folder: Path) -> dict[str, list[int]]:
    """What a night folder holds: each name (as shown: `shown_name`) with its size and its
    modification and change times (ns). A file copied back with its old modification time (WinSCP,
    `rsync -a` and unzip keep it) or renamed has a new change time, which nothing can set back."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if not aside(name):
            st = (folder / name).lstat()
            out[shown_name(name)] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    return out


def entries(folder: Path) -> list[Entry]:
    """The night's deliveries, in name order: data files to read, and names refused unread
    (symbolic links, folders, FIFOs, devices). Hidden files, Office lock files (`~$…`) and the
    completion markers are not deliveries."""
    out = []
    for name in sorted(os.listdir(folder)):
        if aside(name) or is_marker(name):
            continue
        path = folder / name
        shown = shown_name(name)
        mode = path.lstat().st_mode  # the link itself: following it is what must not happen
        if stat.S_ISLNK(mode):
            out.append(Entry(path, shown, f"{shown}: a symbolic link, not a file; deliver the file itself"))
        elif not stat.S_ISREG(mode):
            out.append(Entry(path, shown, f"{shown}: not a regular file ({_kind(mode)}); deliver a file"))
        else:
            out.append(Entry(path, shown, arriving=name.lower().endswith(TRANSFER_SUFFIXES)))
    return out


def night_marker(folder: Path) -> bool:
    marker = folder / NIGHT_MARKER
    return marker.is_file() and not marker.is_symlink()


def checksum_file(path: Path) -> tuple[str, Path] | None:
    """The checksum file delivered beside a file, as (algorithm, path)."""
    for suffix in CHECKSUM_SUFFIXES:
        side = path.with_name(path.name + suffix)
        if side.is_file() and not side.is_symlink():
            return suffix[1:], side
    return None


def expected_digest(side: Path) -> str | None:
    """The hex digest in a checksum file (`<hex>` or `<hex>  <name>` as sha256sum/md5sum write)."""
    try:
        with side.open("rb") as f:  # (a checksum file of gigabytes is not read whole)
            text = f.read(4096).decode("ascii", "replace").strip()
    except OSError:
        return None
    word = text.split()[0].lower() if text.split() else ""
    return word if word and all(c in "0123456789abcdef" for c in word) else None


def digests_of(data: bytes, md5: bool = False) -> tuple[str, str | None]:
    """`digests` of bytes already read."""
    return (hashlib.sha256(data).hexdigest(),
            hashlib.md5(data, usedforsecurity=False).hexdigest() if md5 else None)


def digests(path: Path, md5: bool = False) -> tuple[str, str | None]:
    """(sha256, md5 or None) in one pass over the bytes."""
    sha, m = hashlib.sha256(), hashlib.md5(usedforsecurity=False) if md5 else None
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            if m is not None:
                m.update(block)
    return sha.hexdigest(), (m.hexdigest() if m is not None else None)
