"""Outputs a run owns: one live process per output, written whole or not at all.

:func:`hold` takes an exclusive ``flock`` on a lock file (``<run_dir>/.lock``, ``<out>.lock``) and
keeps it until the ``with`` block ends. A second process asking for the same lock gets a
:class:`LockedError` at once, naming the output and the holder's pid, instead of writing into the
same files. Because the kernel drops the lock when the process exits (also on SIGKILL), a crashed
run never leaves a stale lock behind (its lock file may stay, holding the pid, and is simply taken over).

:class:`RunDir` is a run's output folder held that way: refused when another run's results are in
it, removed again when the run fails before writing anything. :func:`write_text_atomic` replaces a
file in one step, so a reader (or a crash) never sees it half written (:func:`write_bytes_atomic` for bytes).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)


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
    fd = _locked_descriptor(lock_file, what)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_file
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _locked_descriptor(lock_file: Path, what: str) -> int:
    """An open descriptor of ``lock_file`` holding its flock; the file is the one at the path now.

    A holder may unlink the lock file as it finishes (:class:`RunDir`, the collection store): a process
    that opened the old file just before then holds a lock on a file nobody else will open, so the lock
    counts only while the path still names the locked file; otherwise open the new one and try again.
    """
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise LockedError(f"{what} is in use by another running process (pid {holder}); wait for it to "
                              f"end or pick another output") from None
        try:
            same = os.stat(lock_file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


class RunDir:
    """A run's output folder, held for the ``with`` block (``with RunDir(path, "results.json") as out``).

    On entry the folder is created if needed and locked (:func:`hold` on ``<path>/.lock``); it is refused
    when it already holds one of ``outputs`` (another run's results: nothing is ever overwritten) or
    another live run holds it. On exit the lock file is removed; when the run created the folder and
    left nothing in it (it failed before its first result), the folder is removed too.

    Raises:
        FileExistsError: ``path`` is a file, or holds one of ``outputs`` already.
        LockedError: another live process holds ``path``.
    """

    def __init__(self, path: str | Path, *outputs: str) -> None:
        self.path, self.outputs = Path(path), outputs
        self._created = False
        self._lock: contextlib.ExitStack | None = None

    def __enter__(self) -> Path:
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(f"run_dir {self.path} is a file; expected a folder for the run's outputs")
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = contextlib.ExitStack()
        try:
            self._lock.enter_context(hold(self.path / ".lock", f"run dir {self.path}"))
        except BaseException:
            self._remove_if_unused()
            raise
        taken = [name for name in self.outputs if (self.path / name).exists()]
        if taken:
            self.__exit__(None, None, None)
            raise FileExistsError(f"run dir {self.path} already holds {', '.join(taken)} of an earlier run; "
                                  f"pick another run_dir (the default one is new for every run)")
        return self.path

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        assert self._lock is not None
        (self.path / ".lock").unlink(missing_ok=True)  # ours: we hold it
        self._lock.close()
        self._remove_if_unused()

    def _remove_if_unused(self) -> None:
        if self._created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
            logger.debug("removed the empty run dir %s", self.path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``: the file
    is whole or absent, and a failed write (a full disk) leaves no temporary file behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`write_bytes_atomic`, UTF-8)."""
    return write_bytes_atomic(path, text.encode())
