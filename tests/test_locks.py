"""jepa_wm.locks: a second process is refused while the first lives, and the lock dies with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jepa_wm.locks import LockedError, RunDir, hold, write_text_atomic

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


def test_run_dir_refuses_another_runs_results_and_removes_itself_when_unused(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "a"
    with pytest.raises(RuntimeError, match="boom"), RunDir(out, "results.json"):
        raise RuntimeError("boom")
    assert not out.exists()  # failed before writing anything: nothing left behind
    with RunDir(out, "results.json") as held:
        assert held == out and (out / ".lock").exists()
        with pytest.raises(LockedError, match=f"run dir {out} is in use"):
            with RunDir(out, "results.json"):
                pass
        write_text_atomic(out / "results.json", "{}")
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]  # the lock file went with the run
    with pytest.raises(FileExistsError, match="already holds results.json of an earlier run"):
        with RunDir(out, "results.json"):
            pass
    assert (out / "results.json").read_text() == "{}"


def test_run_dir_keeps_a_folder_it_did_not_create_and_refuses_a_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), RunDir(tmp_path, "results.json"):
        raise RuntimeError
    assert tmp_path.is_dir()
    (tmp_path / "f").write_text("keep")
    with pytest.raises(FileExistsError, match="is a file; expected a folder"):
        with RunDir(tmp_path / "f", "results.json"):
            pass
    assert (tmp_path / "f").read_text() == "keep"


def test_write_text_atomic_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["results.json"]
