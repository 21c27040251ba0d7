"""jepa_wm.locks: a second process is refused while the first lives, and the lock dies with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jepa_wm.locks import LockedError, hold

_TAKE = "import sys; from jepa_wm.locks import hold\nwith hold(sys.argv[1], 'run dir x'): print('got it')"


def _take_in_child(lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _TAKE, str(lock)], capture_output=True, text=True, timeout=60)


def test_second_holder_is_refused_while_first_holds(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with hold(lock, "run dir x"):
        child = _take_in_child(lock)
        assert child.returncode != 0
        assert "run dir x is in use by another running process" in child.stderr
        with pytest.raises(LockedError, match="run dir x"):  # a second descriptor in this process too
            with hold(lock, "run dir x"):
                pass
    assert _take_in_child(lock).stdout.strip() == "got it"


def test_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", _TAKE.replace("print('got it')", "import time; print('in', flush=True); time.sleep(60)"), str(lock)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "in"
    holder.kill()
    holder.wait()
    assert _take_in_child(lock).stdout.strip() == "got it"
