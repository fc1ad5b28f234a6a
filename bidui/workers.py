"""Worker processes that do not outlive the process that started them.

Ingest reads large files in a ProcessPoolExecutor of spawned workers. When the parent is killed
(kill -9, the OOM killer, a scheduler's timeout) nothing tells the workers: each one finishes
reading and normalising its file — hundreds of MB for a minute or more — for a parent that is
gone. `die_with_parent` is the pool's initializer: the kernel sends the worker SIGKILL when its
parent dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl_pdeathsig(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0


def die_with_parent(parent_pid: int | None = None) -> None:
    """ProcessPoolExecutor(initializer=die_with_parent): SIGKILL this worker when its parent dies.
    A plain subprocess (the upload worker, bidui.uploads) passes the pid of the parent it was
    started by.

    Linux only (elsewhere it does nothing). The signal follows the parent *thread* that started
    the worker: ingest_night starts and shuts its pool down in one call, so that thread outlives
    its workers; the web server starts upload workers from its event loop's thread. A parent that
    died before the prctl took effect is caught by comparing the parent pid multiprocessing (or
    the caller) handed us with our actual parent (an orphan is re-parented to init or a subreaper)."""
    if not sys.platform.startswith("linux"):
        return
    if parent_pid is None:
        parent = multiprocessing.parent_process()
        parent_pid = parent.pid if parent is not None else None
    if not _prctl_pdeathsig(signal.SIGKILL):
        return  # no prctl (a very restricted sandbox): the worker still runs, as before
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # already an orphan: no one will collect the result
