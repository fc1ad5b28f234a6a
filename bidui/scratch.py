"""A private in-memory DuckDB for work on frames (hashing, joining fingerprints): one database per
process, a connection of its own for each use.

Starting a DuckDB database costs 25–35 ms (its built-in extensions load); a tiny night started
about twenty for a few milliseconds of work each. A cursor of one database costs microseconds and
keeps its registered frames and temp objects to itself, so uses in threads do not see each other's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_lock = threading.Lock()
_base: tuple[int, duckdb.DuckDBPyConnection] | None = None
_forked_from: list[duckdb.DuckDBPyConnection] = []


@contextlib.contextmanager
def scratch() -> Iterator[duckdb.DuckDBPyConnection]:
    """A new connection to this process's in-memory database, closed on leaving (with what was
    registered on it)."""
    import duckdb  # here, as where it was used before: importing a connector does not load DuckDB

    global _base
    with _lock:
        # A forked child must not use its parent's database (its threads did not come along), nor
        # destroy it (that would wait for those threads): it is kept, unused, and a new one made.
        if _base is None or _base[0] != os.getpid():
            if _base is not None:
                _forked_from.append(_base[1])
            _base = (os.getpid(), duckdb.connect())
            atexit.register(_close)
        con = _base[1].cursor()
    try:
        yield con
    finally:
        con.close()


def _close() -> None:
    """Closed before the interpreter ends: a database still open then is reported by DuckDB's
    bindings as leaked, on stderr, after the run's last line."""
    global _base
    with _lock:
        if _base is not None and _base[0] == os.getpid():
            _base[1].close()
        _base = None
