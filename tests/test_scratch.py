"""The process's one in-memory DuckDB (bidui/scratch.py): each use sees only what it registered,
also from threads at once; it is closed before the interpreter ends; a forked child gets a
database of its own and leaves its parent's alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import polars as pl
import pytest

from bidui.scratch import scratch

ROOT = Path(__file__).resolve().parent.parent


def test_uses_in_threads_see_only_what_they_registered() -> None:
    results: dict[int, list[int]] = {}
    barrier = threading.Barrier(4)

    def use(k: int) -> None:
        with scratch() as con:
            con.register("d", pl.DataFrame({"x": [k] * (k + 1)}).to_arrow())
            con.execute("CREATE TEMP TABLE t AS SELECT * FROM d")
            barrier.wait()  # every thread holds its own "d" and "t" now
            results[k] = [con.execute("SELECT sum(x) FROM d").fetchone()[0], con.execute("SELECT count(*) FROM t").fetchone()[0]]

    threads = [threading.Thread(target=use, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {k: [k * (k + 1), k + 1] for k in range(4)}
    with scratch() as con:  # nothing of theirs is left
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0
        with pytest.raises(Exception, match="d"):
            con.execute("SELECT * FROM d")


def test_it_is_closed_before_the_interpreter_ends() -> None:
    """Left open, DuckDB's bindings report it leaked on stderr after a run's last line (seen under
    Prefect: tests/test_operations.py::test_a_full_disk_under_prefect_prints_no_traceback): the
    exit handlers close it, and the process ends without a word on stderr."""
    code = textwrap.dedent("""
        import atexit
        import polars as pl
        import bidui.scratch as s
        with s.scratch() as con:
            con.register("d", pl.DataFrame({"x": [1, 2]}).to_arrow())
            print(con.execute("SELECT sum(x) FROM d").fetchone()[0])
        kept = s._base[1]
        atexit._run_exitfuncs()
        print(s._base is None)
        try:
            kept.execute("SELECT 1")
        except Exception as e:
            print(type(e).__name__)
        raise SystemExit(3)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (out.returncode, out.stdout.split(), out.stderr) == (3, ["3", "True", "ConnectionException"], "")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_uses_a_database_of_its_own() -> None:
    with scratch() as con:  # a table every use of the parent's database sees (not a temp one)
        con.execute("CREATE OR REPLACE TABLE parents_marker AS SELECT 1 AS x")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own database, then out without Python's shutdown
        try:
            with scratch() as con:
                seen = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'parents_marker'").fetchone()[0]
                os.write(write, f"{seen} {con.execute('SELECT 40 + 2').fetchone()[0]}".encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 16) == b"0 42" and os.waitstatus_to_exitcode(status) == 0
    os.close(read)
    with scratch() as con:  # the parent's database is whole
        assert con.execute("SELECT x FROM parents_marker").fetchone()[0] == 1
        con.execute("DROP TABLE parents_marker")
