"""Malformed input at every public entry point: a clear one-line error each time, and no file that
existed before the call changed (or moved, or vanished).

Entry points: the env API, the world model (encode, encode_goal, rollout), the planners, the agent,
the datasets, the checkpoint loaders, and the scripts' settings. Each case is ``(call, exception,
message)``; the message is a regex the one-line error must match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import envs
from jepa_wm.data import ClipDataset
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint, save_encoder_checkpoint
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.world_model import read_predictor_checkpoint
from planners import ActionSpace, make_planner
from tests.data.conftest import write_synthetic_file
from tests.helpers import ROOT, run_script, tiny_world_model

IMG = 16
GOOD_OBS = {"image": np.zeros((IMG, IMG, 3), np.uint8), "state": np.zeros(7, np.float32)}


def _snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``roots``: size and sha256."""
    files = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            files[str(path)] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return files


@pytest.fixture
def untouched(tmp_path: Path) -> Path:
    """A folder for the case's input files; :func:`_fails` checks that the call leaves them as they were."""
    return tmp_path


def _fails(call: Callable[[], object], exception: type[BaseException] | tuple, message: str,
           *roots: Path) -> None:
    """``call()`` raises ``exception`` with a one-line message matching ``message``; no file under
    ``roots`` (and the shipped checkpoints) changed."""
    watched = (*roots, ROOT / "jepa_wm" / "checkpoints")
    before = _snapshot(*watched)
    with pytest.raises(exception, match=message) as error:
        call()
    text = str(error.value)
    assert text and "\n" not in text.strip(), f"not one line: {text!r}"
    assert _snapshot(*watched) == before, "a file that existed before the call changed"


# ---------------------------------------------------------------- env API
@pytest.fixture(scope="module")
def env() -> Iterator:
    made = envs.make("reach", image_size=IMG)
    yield made
    made.close()


@pytest.mark.parametrize(("call", "exception", "message"), [
    (lambda e: e.step(np.zeros(6, np.float32)), ValueError, r"action must be a finite array of shape \(7,\)"),
    (lambda e: e.step(np.full(7, np.nan, np.float32)), ValueError, "action must be a finite array"),
    (lambda e: e.step("left"), ValueError, "action must be a finite array"),
    (lambda e: e.reset(seed=-1), Exception, "Seed must be greater or equal to zero"),
    (lambda e: e.reset(options={"bogus": 1}), ValueError, r"reach takes no reset options, got \['bogus'\]"),
])
def test_env_api(env, call, exception, message) -> None:
    env.reset(seed=0)
    _fails(lambda: call(env), exception, message)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "nosuch"}, "unknown task 'nosuch'"),
    ({"name": "reach", "camera": "nosuch"}, "unknown camera 'nosuch'"),
    ({"name": "reach", "image_size": 0}, "image_size"),
    ({"name": "reach", "image_size": "big"}, "image_size"),
])
def test_env_construction(kwargs, message) -> None:
    _fails(lambda: envs.make(**kwargs), (ValueError, TypeError, KeyError), message)


# ---------------------------------------------------------------- world model
@pytest.fixture(scope="module")
def model() -> LatentModel:
    return LatentModel(tiny_world_model(IMG))


def _obs(**changes) -> dict:
    return {**GOOD_OBS, **changes}


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.encode({"image": GOOD_OBS["image"]}), "an observation must be a mapping with 'image' and 'state'"),
    (lambda m: m.encode(np.zeros((IMG, IMG, 3), np.uint8)), "an observation must be a mapping"),
    (lambda m: m.encode(_obs(image=np.zeros((IMG, IMG, 3), np.float32))), "observation image must be a uint8"),
    (lambda m: m.encode(_obs(image=np.zeros((8, 8, 3), np.uint8))), r"uint8 numpy array \(16, 16, 3\)"),
    (lambda m: m.encode(_obs(image=np.zeros((IMG, IMG), np.uint8))), "observation image must be a uint8"),
    (lambda m: m.encode(_obs(state=np.full(7, np.nan))), "observation state must be finite"),
    (lambda m: m.encode(_obs(state=np.zeros((1, 7)))), "observation state must be a 1-D numeric array"),
    (lambda m: m.encode(_obs(state=np.array(["a"] * 7))), "observation state must be a 1-D numeric array"),
    (lambda m: m.encode_goal([np.zeros((8, 8, 3), np.uint8)]), r"goal image 0 must be uint8 \(16, 16, 3\)"),
    (lambda m: m.rollout(GOOD_OBS, torch.full((2, 1, 7), float("nan"))), "candidate actions must be finite"),
    (lambda m: m.rollout(GOOD_OBS, torch.zeros(2, 7)), r"candidate actions must be a float tensor \(B, H, A\)"),
    (lambda m: m.rollout(GOOD_OBS, torch.zeros(2, 1, 7, dtype=torch.int64)), "must be a float tensor"),
    (lambda m: m.rollout(GOOD_OBS, np.zeros((2, 1, 7))), "must be a float tensor"),
    (lambda m: m.rollout(_obs(state=np.array([np.inf] + [0.0] * 6)), torch.zeros(2, 1, 7)),
     "observation state must be finite"),
])
def test_world_model(model, call, message) -> None:
    model.reset()
    _fails(lambda: call(model), ValueError, message)


def test_world_model_takes_a_float64_state(model) -> None:
    model.reset()
    predicted = model.rollout(_obs(state=np.zeros(7, np.float64)), torch.zeros(2, 1, 7))
    assert predicted.shape[:2] == (2, 1) and torch.isfinite(predicted).all()


# ---------------------------------------------------------------- planners
SPACE = ActionSpace(dim=3)


def _cost(actions: torch.Tensor) -> torch.Tensor:
    return actions.pow(2).sum((1, 2))


@pytest.mark.parametrize("name", ["cem", "icem", "mppi", "gradient"])
@pytest.mark.parametrize(("call", "exception", "message"), [
    (lambda p: p.plan("not a function"), TypeError, "cost_fn must be callable"),
    (lambda p: p.plan(lambda a: a.sum(-1)), ValueError, "cost_fn must return one cost per candidate"),
    (lambda p: p.plan(lambda a: [0.0] * len(a)), TypeError, "cost_fn must return a torch.Tensor"),
    (lambda p: p.plan(_cost, init_mean=torch.zeros(9, 3)), ValueError, r"init_mean must have shape"),
    (lambda p: p.plan(_cost, init_mean=np.zeros((1, 3))), TypeError, "init_mean must be a torch.Tensor"),
])
def test_planners(name, call, exception, message) -> None:
    planner = make_planner(name, SPACE, seed=0)
    _fails(lambda: call(planner), exception, message)


@pytest.mark.parametrize(("name", "settings", "message"), [
    ("cem", {"horizon": 0}, "horizon must be a positive int"),
    ("cem", {"num_samples": -4}, "num_samples must be a positive int"),
    ("cem", {"time_budget_s": 0}, "time_budget_s must be positive or None"),
    ("mppi", {"chunk_size": 0}, "chunk_size must be a positive int"),
    ("gradient", {"horizon": "2"}, "horizon must be a positive int"),
    ("nosuch", {}, "unknown planner 'nosuch'"),
])
def test_planner_settings(name, settings, message) -> None:
    _fails(lambda: make_planner(name, SPACE, **settings), (ValueError, TypeError, KeyError), message)


# ---------------------------------------------------------------- datasets
def _collection(path: Path, nan_at: tuple[int, int] | None = None) -> Path:
    write_synthetic_file(path, [6, 6, 6])
    if nan_at is not None:
        with h5py.File(path, "a") as file:
            actions = file["data/demo_2/actions"][()]
            actions[nan_at] = np.nan
            file["data/demo_2/actions"][...] = actions
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d, "is a directory|not a file|expected"),
    (lambda d: (d / "notes.txt").write_text("keep") and d / "notes.txt", "notes.txt"),
    (lambda d: d / "missing.hdf5", "missing.hdf5"),
    (lambda d: _collection(d / "nan.hdf5", nan_at=(5, 0)),
     r"nan.hdf5: 'data/demo_2/actions': expected finite values, found nan at index \(5, 0\)"),
])
def test_datasets(untouched, make, message) -> None:
    path = make(untouched)
    _fails(lambda: ClipDataset(path, clip_len=2, split="all"), (ValueError, FileNotFoundError, OSError),
           message, untouched)


# ---------------------------------------------------------------- checkpoint loaders
def _nan_encoder(path: Path) -> Path:
    encoder = tiny_world_model(IMG).encoder
    save_encoder_checkpoint(path, encoder.vit, step=1)
    state = torch.load(path, map_location="cpu", weights_only=False)
    tensors = [t for t in _tensors(state) if t.is_floating_point()]
    tensors[0].fill_(float("nan"))
    torch.save(state, path)  # written behind the package's back, as a damaged copy would be
    return path


def _tensors(obj: object) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)


def _truncated(path: Path) -> Path:
    encoder = tiny_world_model(IMG).encoder
    save_encoder_checkpoint(path, encoder.vit, step=1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: (d / "enc.pt").write_text("not weights") and d / "enc.pt", "enc.pt"),
    (lambda d: _truncated(d / "enc.pt"), "enc.pt"),
    (lambda d: _nan_encoder(d / "enc.pt"), r"enc.pt: \d+ of \d+ tensors hold NaN or inf"),
])
@pytest.mark.parametrize("loader", ["encoder", "planning"])
def test_checkpoint_loaders(untouched, make, message, loader) -> None:
    path = make(untouched)
    load = (lambda: load_encoder_checkpoint(path)) if loader == "encoder" else (
        lambda: load_planning_world_model(path, None, image_size=IMG))
    _fails(load, (ValueError, FileNotFoundError), message, untouched)


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "nothing_here", "nothing_here"),
    (lambda d: (d / "predictor.pt").write_text("junk") and d / "predictor.pt", "predictor.pt"),
])
def test_predictor_loader(untouched, make, message) -> None:
    path = make(untouched)
    _fails(lambda: read_predictor_checkpoint(path), (ValueError, FileNotFoundError), message, untouched)


# ---------------------------------------------------------------- scripts' settings
@pytest.mark.parametrize(("script", "overrides", "message"), [
    ("plan.py", ["task=reach", "seed=abc"], r"^error: seed must be an int"),
    ("plan.py", ["task=reach", "device=foo"], r"^error: device must be a torch device"),
    ("plan.py", ["task=reach", "threads=0"], r"^error: threads must be a positive int"),
    ("plan.py", ["task=reach", "workers=0"], r"^error: workers must be a positive int"),
    ("collect.py", ["task=reach", "episodes=abc"], r"^error: episodes must be an integer >= 1, got 'abc'"),
    ("collect.py", ["task=reach", "episodes=-1"], r"^error: episodes must be an integer >= 1, got -1"),
])
def test_script_settings(untouched, monkeypatch, script, overrides, message) -> None:
    out = ([f"run_dir={untouched / 'run'}"] if script == "plan.py" else [f"out={untouched / 'c.hdf5'}"])
    monkeypatch.chdir(ROOT)
    _fails(lambda: run_script(script, *overrides, *out, monkeypatch=monkeypatch), SystemExit, message, untouched)
    assert not any(untouched.iterdir())  # nothing created either
