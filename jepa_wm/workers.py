"""Worker processes that never outlive the process that started them.

A pool's workers are children of the main process. When the main process ends without shutting
the pool down (SIGKILL, or SIGTERM with Python's default handler), its workers are reparented to
init and would keep running their queued tasks, and their memory, for good. :func:`exit_with_parent`,
called in each worker's initializer, starts a daemon thread that ends the worker (``os._exit``) as
soon as its parent is gone, whatever the signal that ended the parent. :func:`exit_on_sigterm` makes
the main process stop on SIGTERM as on Ctrl-C (``finally`` blocks run, pools are shut down).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType

POLL_S = 0.2  # how often a worker checks its parent


def exit_with_parent(parent_pid: int | None = None) -> None:
    """End this process as soon as ``parent_pid`` (default: the current parent) is no longer its parent.

    Call it once, first thing in a pool worker's initializer.
    """
    parent = os.getppid() if parent_pid is None else parent_pid
    if os.getppid() != parent:  # the parent died before the worker got here
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="exit-with-parent", daemon=True).start()


def parent_alive(parent_pid: int) -> bool:
    """Whether ``parent_pid`` is still this process's parent."""
    return os.getppid() == parent_pid


def _watch(parent: int) -> None:
    while parent_alive(parent):
        time.sleep(POLL_S)
    os._exit(1)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)`` in the main thread, so the run stops cleanly.

    Python's default SIGTERM ends the process at once, skipping ``finally`` blocks and leaving worker
    processes and half-written files behind.
    """
    signal.signal(signal.SIGTERM, _raise_exit)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    sys.exit(128 + signum)
