"""One bidui run at a time per home: an advisory lock on `<home>/run.lock`.

The warehouse allows one writer, and two nights run together would interleave their ingest,
link, rules and publish; DuckDB's own lock only makes the second one crash midway. So every
command that writes the night's state (run, ingest, link, rules run, publish, and the Prefect
flow of a night) holds this lock for its whole body, and a second one waits for the first.

flock(2), not a pid file: the kernel drops the lock when its holder dies, even on kill -9, so a
crashed run never leaves a stale lock behind. The file carries the holder's pid and start time
only so that the one who waits can say who it is waiting for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

LOCK_NAME = "run.lock"
DEFAULT_WAIT = 600.0  # seconds; [run] lock_wait in bidui.toml, or --wait
POLL = 0.2  # seconds between attempts while waiting


class RunInProgress(Exception):  # noqa: N818 - a state the caller reports, not a programming error
    """Another process held the home's run lock for longer than we were willing to wait."""

    def __init__(self, path: Path, pid: int | None, since: str | None) -> None:
        self.path, self.pid, self.since = path, pid, since
        super().__init__(self.line())

    def line(self) -> str:
        return (f"another bidui run is in progress on this home (pid {self.pid if self.pid else 'unknown'}, "
                f"since {self.since or 'unknown'}); try again later")


@dataclass
class _Held:
    file: IO[str]
    depth: int


# Held by this process, by lock path. flock locks belong to an open file description, so a
# second open() of the same file in the same process would wait for itself forever: `bidui run`
# takes the lock and then calls the Prefect flow, which takes it too.
_held: dict[str, _Held] = {}
_guard = threading.Lock()


def lock_path(home_root: Path) -> Path:
    return home_root / LOCK_NAME


def holder(path: Path) -> tuple[int | None, str | None]:
    """(pid, start time) as the holder wrote them; (None, None) when unreadable or not yet written."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None, None
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    pid = fields.get("pid")
    return (int(pid) if pid and pid.isdigit() else None), fields.get("since", "").replace("T", " ") or None


def _try_lock(f: IO[str]) -> bool:
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def run_lock(home_root: Path, wait: float = DEFAULT_WAIT, command: str = "",
             on_wait: Callable[[int | None, str | None], None] | None = None) -> Iterator[None]:
    """Hold the home's run lock for the body; wait up to `wait` seconds for another holder, then
    raise RunInProgress. Re-entrant within a process. The home folder must exist (the caller
    decides whether a missing home is created or an error)."""
    path = lock_path(home_root)
    key = os.path.realpath(path)
    with _guard:
        mine = _held.get(key)
        if mine is not None:
            mine.depth += 1
    if mine is not None:
        try:
            yield
        finally:
            with _guard:
                mine.depth -= 1
        return
    # "a": never truncate before holding the lock, or the holder's pid and time would be wiped.
    f = path.open("a+", encoding="utf-8")
    try:
        if not _try_lock(f):
            pid, since = holder(path)
            if on_wait is not None:
                on_wait(pid, since)
            deadline = time.monotonic() + max(0.0, wait)
            while not _try_lock(f):
                if time.monotonic() >= deadline:
                    pid, since = holder(path)
                    raise RunInProgress(path, pid, since)
                time.sleep(POLL)
        f.seek(0)
        f.truncate()
        f.write(f"pid={os.getpid()} since={datetime.now().isoformat(timespec='seconds')} command={command or '-'}\n")
        f.flush()
        with _guard:
            _held[key] = _Held(f, 1)
        try:
            yield
        finally:
            with _guard:
                del _held[key]
            # Emptied before unlocking: a waiter must not read our pid after we let go.
            with contextlib.suppress(OSError):
                f.seek(0)
                f.truncate()
                f.flush()
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()


def held_here(home_root: Path) -> bool:
    """Whether this process holds the home's run lock (tests, assertions)."""
    with _guard:
        return os.path.realpath(lock_path(home_root)) in _held


def configured_wait(home_root: Path, given: float | None = None) -> float:
    """--wait if given, else `[run] lock_wait` of the home's bidui.toml, else DEFAULT_WAIT."""
    if given is not None:
        return given
    from bidui import config

    try:
        value = config.load(home_root / "bidui.toml").get("run", {}).get("lock_wait", DEFAULT_WAIT)
        return float(value)
    except (ValueError, TypeError):
        return DEFAULT_WAIT
