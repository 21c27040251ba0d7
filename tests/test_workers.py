"""jepa_wm.workers: pool workers end with their parent, whatever ended it; SIGTERM stops like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

_PARENT = """
import multiprocessing, sys, time
from jepa_wm.workers import exit_with_parent

def sleep(_):
    time.sleep(120)

if __name__ == "__main__":
    pool = multiprocessing.get_context("spawn").Pool(2, initializer=exit_with_parent)
    pool.map_async(sleep, range(2))
    time.sleep(1.0)  # the workers are up
    print(" ".join(str(p.pid) for p in pool._pool), flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie (exited, not yet reaped by init) is gone too
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_end_when_their_parent_is_killed(tmp_path, sig) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    parent.send_signal(sig)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def test_sigterm_runs_finally_blocks(tmp_path) -> None:
    marker = tmp_path / "cleaned"
    code = ("import os, signal, time\nfrom jepa_wm.workers import exit_on_sigterm\nexit_on_sigterm()\n"
            f"try:\n    print('up', flush=True)\n    time.sleep(60)\nfinally:\n    open({str(marker)!r}, 'w').close()\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "up"
    child.terminate()
    assert child.wait(timeout=30) == 143 and marker.exists()
