"""``experiments/collect.py`` stops with one line, changing nothing it did not create, on bad
settings, an output that is not a collection, an output another run holds, and a full disk
(which keeps every finished episode and resumes)."""

from __future__ import annotations

import errno
import re
from importlib import import_module
from pathlib import Path

import h5py
import pytest

from jepa_wm.data import CollectionConfig, validate_file
from jepa_wm.data.hdf5 import DATA
from jepa_wm.locks import hold
from tests.data.test_store import _snapshot
from tests.helpers import run_script

# the modules (jepa_wm.data.collect is also the name of the function jepa_wm.data exports)
collect_module, store_module = import_module("jepa_wm.data.collect"), import_module("jepa_wm.data.store")

STEPS = 4  # reach episodes of 4 steps: a collection takes a fraction of a second


def _collect(monkeypatch, out: Path, *overrides: str) -> None:
    run_script("collect.py", "task=reach", "episodes=3", f"out={out}", f"task.max_episode_steps={STEPS}",
               "progress=false", *overrides, monkeypatch=monkeypatch)


def _one_line_error(monkeypatch, out: Path, *overrides: str) -> str:
    with pytest.raises(SystemExit) as stop:
        _collect(monkeypatch, out, *overrides)
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.mark.parametrize(("setting", "expected"), [
    ({"episodes": "abc"}, "episodes must be an integer >= 1, got 'abc'"),
    ({"episodes": -2}, "episodes must be an integer >= 1, got -2"),
    ({"episodes": 2.5}, "episodes must be an integer >= 1, got 2.5"),
    ({"episodes": True}, "episodes must be an integer >= 1, got True"),
    ({"workers": 0}, "workers must be an integer >= 1, got 0"),
    ({"seed": "x"}, "seed must be an integer >= 0, got 'x'"),
    ({"noise": (0.3, "abc")}, "noise must be a level >= 0 or (low, high) with low <= high, got (0.3, 'abc')"),
    ({"noise": float("nan")}, "noise must be a level >= 0 or (low, high) with low <= high, got nan"),
    ({"max_episode_steps": "ten"}, "max_episode_steps must be an integer >= 1, got 'ten'"),
    ({"out": None}, "out must be the path of an .hdf5 collection file, got None"),
])
def test_bad_settings_are_refused(tmp_path, setting, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        CollectionConfig(**{"task": "reach", "episodes": 3, "out": tmp_path / "reach.hdf5", **setting})


def test_a_bad_setting_stops_the_script_with_one_line(tmp_path, monkeypatch):
    message = _one_line_error(monkeypatch, tmp_path / "reach.hdf5", "episodes=abc")
    assert message == "error: episodes must be an integer >= 1, got 'abc'"
    assert not any(tmp_path.iterdir())


def test_a_directory_out_is_refused_untouched(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("keep")
    before = _snapshot(tmp_path)
    message = _one_line_error(monkeypatch, data)
    assert "expected the path of an .hdf5 collection file, got the directory" in message
    assert _snapshot(tmp_path) == before


def test_an_out_another_run_holds_is_refused_untouched(tmp_path, monkeypatch):
    out = tmp_path / "reach.hdf5"
    _collect(monkeypatch, out, "episodes=1")
    parts = tmp_path / "reach.hdf5.parts"
    parts.mkdir()
    (parts / "ep_000001.hdf5.tmp-99").write_bytes(b"the running collection's episode")
    with hold(store_module.lock_path(out), "test"):  # a running collection holds it
        before = _snapshot(tmp_path)
        message = _one_line_error(monkeypatch, out)
        assert _snapshot(tmp_path) == before
    assert "reach.hdf5 is in use by another running process" in message


# The second write fails. Writing a part (a worker's job) gets ENOSPC as an OSError: one episode is
# kept. Appending a part to ``out`` gets HDF5's RuntimeError, which names errno 28 only in its
# message: two are kept (the second in its part).
DISK_FULL = {
    "part": (collect_module, "write_part", OSError(errno.ENOSPC, "No space left on device"), 1),
    "append": (store_module, "append_demo", RuntimeError(
        "Object copy failed (file write failed: time = Mon\n, errno = 28, "
        "error message = 'No space left on device')"), 2),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The collection of these settings, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "reach.hdf5"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _collect(monkeypatch, out)
    return out


@pytest.mark.parametrize("fault", list(DISK_FULL))
def test_a_full_disk_keeps_what_was_collected_and_resumes(tmp_path, monkeypatch, reference, fault):
    module, name, error, kept = DISK_FULL[fault]
    out, real, calls = tmp_path / "reach.hdf5", getattr(module, name), []

    def fill_up(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fill_up)
    message = _one_line_error(monkeypatch, out)
    assert "the disk is full" in message and "run the same command again to resume" in message
    assert f"{kept}/3 episodes are kept in" in message
    monkeypatch.setattr(module, name, real)
    _collect(monkeypatch, out)  # resumes
    assert validate_file(out).episodes == 3
    with h5py.File(out, "r") as file, h5py.File(reference, "r") as expected:
        for demo in expected[DATA]:  # identical to an uninterrupted run
            for key in ("actions", "states", "obs/state"):
                assert (file[DATA][demo][key][()] == expected[DATA][demo][key][()]).all(), (demo, key)
