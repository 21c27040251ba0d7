"""One live process per output: an advisory lock the kernel releases when its holder dies.

:func:`hold` takes an exclusive ``flock`` on a lock file (``<run_dir>/.lock``, ``<out>.lock``) and
keeps it until the ``with`` block ends. A second process asking for the same lock gets a
:class:`LockedError` at once, naming the output and the holder's pid, instead of writing into the
same files. Because the kernel drops the lock when the process exits (also on SIGKILL), a crashed
run never leaves a stale lock behind; the lock file itself stays (it is empty but for the pid).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class LockedError(RuntimeError):
    """Another live process holds the lock of this output."""


@contextlib.contextmanager
def hold(lock_file: str | Path, what: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``lock_file`` (created if missing) for the ``with`` block.

    Args:
        lock_file: the lock file; its folder must exist.
        what: the output it protects, for the error message (``"run dir runs/x"``).

    Raises:
        LockedError: another live process holds it.
    """
    lock_file = Path(lock_file)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(f"{what} is in use by another running process (pid {holder}); wait for it to "
                              f"end or pick another output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_file
    finally:
        os.close(fd)  # closing the descriptor releases the lock
