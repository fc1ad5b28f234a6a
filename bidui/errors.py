"""Failures a scheduler can act on: exit codes, and one plain line instead of a traceback.

A night run fails for reasons an operator fixes outside bidui — another process holds the
warehouse, the home is read-only, the disk is full, the home is not where --home says, another
run is in progress. Each gets its own exit code and one line naming the cause and the path; the
traceback goes to `<home>/logs/bidui.log` for whoever debugs it. The line is built from the cause
and the path only, never from the exception's text: a database error can quote the row it was
writing, ID numbers included.

Exit codes (`bidui`):
  0  done; every file accepted (or a duplicate, or no file for a dataset)
  1  nothing to do or bad input (no warehouse yet, unknown user, a broken rule file, …); so do
     the command line's usage errors (a missing option, a bad value, a night folder that does not
     exist), with click's message (bidui.clitools.Group: click's own code for them is 2)
  2  a file was refused or held (ingest, run); a rule failed (rules run)
  3  another bidui run held the home's run lock for longer than --wait
  4  the warehouse (or the SQLite ledger) is locked by another process
  5  the home, or a file in it, cannot be written (read-only file system, permission denied)
  6  the disk is full
  7  the home does not exist (commands that read one)
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from bidui.runlock import RunInProgress

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FILES = 2
EXIT_BUSY = 3
EXIT_LOCKED = 4
EXIT_READ_ONLY = 5
EXIT_DISK_FULL = 6
EXIT_NO_HOME = 7

# As connectors.ingest.OK_STATUSES (kept here so that deciding a night's exit code does not
# import the ingest machinery): anything else means the night's data is not all in.
OK_FILE_STATUSES = ("accepted", "forced", "duplicate", "missing")

LOG_NAME = "logs/bidui.log"


class BadInput(ValueError):  # noqa: N818 - a state the caller reports
    """Input an operator fixes by hand, such as a rule file of the home that cannot be read as one
    (bidui.rules.engine.RuleError): its text is the one line to print (built by bidui from the file's
    name and header, never from data), exit 1."""


class HomeMissing(Exception):  # noqa: N818 - a state the caller reports
    def __init__(self, root: Path) -> None:
        self.root = root
        super().__init__(f"no bidui home at {root}")


def not_ok_files(files: list[dict]) -> list[dict]:
    """The files of a night report that were refused or held (not in the night's data)."""
    return [f for f in files if f.get("status") not in OK_FILE_STATUSES]


def night_exit_code(files: list[dict]) -> int:
    return EXIT_FILES if not_ok_files(files) else EXIT_OK


def require_home(root: Path) -> None:
    if not root.is_dir():
        raise HomeMissing(root)


@dataclass(frozen=True)
class Failure:
    code: int
    line: str
    traceback_wanted: bool = True  # a busy home or a wrong --home needs no traceback to debug
    cause: BaseException | None = field(default=None, compare=False)  # the exception in the chain that told


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it, outermost first: a failed ROLLBACK can hide the disk
    that filled up under the COMMIT before it."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


# DuckDB quotes the file it failed on; inside its JSON-shaped errors (an async write's) as \"…\".
_QUOTED = re.compile(r'\\?"(/[^"]+?)\\?"')
_PID = re.compile(r"\(PID (\d+)\)")


def _path_in(e: BaseException) -> str | None:
    if isinstance(e, OSError) and e.filename:
        return str(e.filename)
    m = _QUOTED.search(str(e))
    return m.group(1) if m else None


def _is_duckdb(e: BaseException) -> bool:
    return type(e).__module__.split(".")[0] in ("duckdb", "_duckdb")


# How polars ends an error that wraps a failed system call (its Parquet writer on a full disk:
# "… underlying IO error: No space left on device (os error 28)").
_POLARS_IO = re.compile(r"IO error: [^\n\"\]]* \(os error (\d+)\)$")


def _polars_io_errno(e: BaseException) -> int | None:
    """The errno of a polars error that wraps a system I/O error, which it gives only in its text;
    None for any other, notably one about a file's content, which may quote that content (a quoted
    value ends in its quote or bracket, not in the system's "(os error N)")."""
    if type(e).__module__.split(".")[0] != "polars":
        return None
    found = _POLARS_IO.search(str(e))
    return int(found.group(1)) if found else None


def _is_sqlite(e: BaseException) -> bool:
    return type(e).__module__ == "sqlite3"


def _read_only_fs(home: Path) -> bool:
    try:
        return bool(os.statvfs(home).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _one(e: BaseException, home: Path) -> Failure | None:
    if isinstance(e, RunInProgress):
        return Failure(EXIT_BUSY, e.line(), traceback_wanted=False)
    if isinstance(e, HomeMissing):
        return Failure(EXIT_NO_HOME, f"no bidui home at {e.root}: check --home (or BIDUI_HOME), or create it with "
                                     "bidui ingest or bidui run", traceback_wanted=False)
    # An OSError without errno (polars' and Arrow's writers) says what happened only in its text.
    text = str(e) if (_is_duckdb(e) or _is_sqlite(e) or (isinstance(e, OSError) and e.errno is None)) else ""
    code = e.errno if isinstance(e, OSError) else _polars_io_errno(e)
    path = _path_in(e)
    if getattr(e, "sqlstate", None) == "53100":  # PostgreSQL's disk_full: the ledger's server, not this home
        return Failure(EXIT_DISK_FULL, "the disk of the ledger's PostgreSQL server is full (no space left on device): "
                                       "free some space there and run again")
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in text or "database or disk is full" in text:
        where = path or (str(home / "ledger.sqlite") if _is_sqlite(e) else str(home))
        return Failure(EXIT_DISK_FULL, f"the disk holding {where} is full (no space left on device): free some space "
                                       "and run again")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "Read-only file system" in text or "Permission denied" in text \
            or "readonly database" in text:
        where = path or (str(home / "ledger.sqlite") if _is_sqlite(e) else str(home))
        cause = ("the file system is read-only" if code == errno.EROFS or "Read-only" in text or "readonly" in text
                 else "permission denied")
        return Failure(EXIT_READ_ONLY, f"cannot write {where}: {cause}; bidui needs a writable home")
    if ("unable to open database file" in text or "Cannot open file" in text) and _read_only_fs(home):
        return Failure(EXIT_READ_ONLY, f"cannot write {path or home}: the file system is read-only; bidui needs a "
                                       "writable home")
    if _is_duckdb(e) and "Could not set lock on file" in text:
        pid = _PID.search(text)
        by = f" (pid {pid.group(1)})" if pid else ""
        return Failure(EXIT_LOCKED, f"the warehouse {path or home / 'warehouse.duckdb'} is locked by another "
                                    f"process{by}: wait until it is done, or stop it, and try again")
    if _is_sqlite(e) and "database is locked" in text:
        return Failure(EXIT_LOCKED, f"the ledger {home / 'ledger.sqlite'} is locked by another process: try again "
                                    "when it is done")
    return None


def classify(exc: BaseException, home: Path) -> Failure | None:
    """The failure an operator can act on, or None for anything else (a bug: let it show)."""
    # Only when it is what failed: one met while handling another error must not hide that error.
    if isinstance(exc, BadInput):
        return Failure(EXIT_ERROR, str(exc), traceback_wanted=False, cause=exc)
    for e in _chain(exc):
        found = _one(e, home)
        if found is not None:
            return replace(found, cause=e)
    return None


def _displayed(exc: BaseException) -> list[BaseException]:
    """The exceptions a printed traceback shows (`raise … from None` hides the one before)."""
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not o for o in out):
        out.append(e)
        e = e.__cause__ if e.__cause__ is not None else (None if e.__suppress_context__ else e.__context__)
    return out


def is_operational(exc: BaseException) -> bool:
    """For code that turns broad errors into a file's outcome (ingest's per-file store): a full
    disk, a read-only home or a locked database is not the file's fault, and should end the run
    with its exit code rather than refuse the file."""
    found = classify(exc, Path("."))
    return found is not None and found.code in (EXIT_DISK_FULL, EXIT_READ_ONLY, EXIT_LOCKED)


# SQLAlchemy appends the bound parameters of the failed statement: names and IDs.
_PARAMETERS = re.compile(r"\[parameters: [^\n]*")


def scrub(text: str) -> str:
    """A traceback as it may be logged: an exception's text can quote the value it choked on."""
    from bidui.privacy import mask_text

    return mask_text(_PARAMETERS.sub("[parameters: not logged]", text))


def write_log(home: Path, exc: BaseException, failure: Failure, command: str | None) -> str:
    """Append the traceback to <home>/logs/bidui.log; return how the screen line should end.
    A missing home is not created for a log, and a home that cannot be written gets none."""
    log = home / LOG_NAME
    if not home.is_dir():
        return "no log written (the home does not exist)"
    try:
        log.parent.mkdir(exist_ok=True)
        tb = "".join(traceback.format_exception(exc))
        if failure.cause is not None and all(failure.cause is not e for e in _displayed(exc)):
            tb += "The cause, hidden by the error above:\n" + "".join(traceback.format_exception(failure.cause,
                                                                                               chain=False))
        with log.open("a", encoding="utf-8") as f:
            f.write(f"{datetime.now().isoformat(timespec='seconds')} bidui {command or ''}: {failure.line}\n"
                    f"{scrub(tb)}\n")
    except OSError as e:
        why = {errno.ENOSPC: "the disk is full", errno.EROFS: "the home is read-only",
               errno.EACCES: "permission denied"}.get(e.errno or 0, e.strerror or "could not write it")
        return f"no log written ({why})"
    return f"details in {log}"


def report_failure(exc: BaseException, home: Path, command: str | None = None) -> int | None:
    """Print the one line for a failure an operator can act on and return its exit code; None
    when the exception is not one of them (the caller re-raises it)."""
    failure = classify(exc, home)
    if failure is None:
        return None
    line = failure.line
    if failure.traceback_wanted:
        line += "; " + write_log(home, exc, failure, command)
    print(line, file=sys.stderr, flush=True)
    return failure.code
