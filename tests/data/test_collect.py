"""Collection with the real ``reach`` task: parallel workers, settings checks, interrupt + resume."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import envs
from jepa_wm.data import CollectionConfig, EpisodeRunner, collect, read_demo, validate_file
from jepa_wm.data.formats import DatasetFormatError

REPO = Path(__file__).resolve().parents[2]
STEPS = 12  # short reach episodes keep these tests quick


def _config(tmp_path: Path, **overrides) -> CollectionConfig:
    settings = dict(task="reach", episodes=4, out=tmp_path / "reach.hdf5", workers=2, max_episode_steps=STEPS)
    return CollectionConfig(**{**settings, **overrides})


def test_collect_reach_with_two_workers(tmp_path):
    config = _config(tmp_path)
    summary = collect(config, progress=False)
    assert (summary.episodes, summary.samples, summary.format) == (4, 4 * STEPS, "jepa_wm")
    assert summary.image_shape == (64, 64, 3) and 0 <= summary.successes <= 4
    assert summary.env_args["env_kwargs"]["max_episode_steps"] == STEPS
    assert summary.meta["task"] == "reach" and summary.meta["noise"] == [0.05, 0.3]
    assert not config.parts_dir.exists()
    with h5py.File(config.out, "r") as file:
        data = file["data"]
        assert sorted(data) == ["demo_0", "demo_1", "demo_2", "demo_3"]
        episodes = [read_demo(data, f"demo_{i}") for i in range(4)]
    for i, episode in enumerate(episodes):
        assert episode.seed == i and episode.instruction
        assert episode.noise == pytest.approx(config.episode_noise(i))
        assert 0.05 <= episode.noise <= 0.3
        assert episode.dones.tolist() == [False] * (STEPS - 1) + [True]  # runs to the time limit
        assert np.all(np.abs(episode.actions) <= 1.0)
        assert episode.objects.shape == (STEPS + 1, 3)  # reach's marker, from info["object_pos"]
        assert episode.images.std() > 0 and not np.array_equal(episode.images[0], episode.images[-1])
    assert not np.array_equal(episodes[0].images[0], episodes[1].images[0])  # seeds differ
    # a worker process recorded exactly what this process replays from the same seed
    runner = EpisodeRunner(config)
    again = runner.run(2)
    runner.close()
    np.testing.assert_array_equal(again.images, episodes[2].images)
    np.testing.assert_array_equal(again.sim_states, episodes[2].sim_states)


def test_resume_with_other_settings_is_refused(tmp_path):
    config = _config(tmp_path, episodes=1, workers=1)
    collect(config, progress=False)
    with pytest.raises(ValueError, match=r"image_size: file has 64, this run asks for 32"):
        collect(_config(tmp_path, episodes=2, workers=1, image_size=32), progress=False)
    with pytest.raises(ValueError, match=r"seed: file has 0, this run asks for 5"):
        collect(_config(tmp_path, episodes=2, workers=1, seed=5), progress=False)


def _command(out: Path, episodes: int, steps: int) -> list[str]:
    return [
        sys.executable,
        str(REPO / "experiments" / "collect.py"),
        "task=reach",
        f"episodes={episodes}",
        "workers=2",
        f"out={out}",
        f"task.max_episode_steps={steps}",
        "progress=false",
    ]


def _indices(paths) -> set[int]:
    return {int(re.search(r"(\d+)", p).group(1)) for p in paths}


def _wait_for_parts(parts: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while len(list(parts.glob("ep_*.hdf5"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "collection made no progress"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_then_resume(tmp_path, signum):
    # Enough work that the run is unlikely to finish between seeing 3 parts and the signal
    # taking effect (a SIGKILL can take most of a second on a busy machine, while workers
    # finish ~20 reach episodes a second); the checks below hold either way.
    episodes, steps = 60, 40
    out, parts = tmp_path / "reach.hdf5", tmp_path / "reach.hdf5.parts"
    command = _command(out, episodes, steps)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    _wait_for_parts(parts, 3, first)
    first.send_signal(signum)
    # returns once every process holding the output pipe is gone: workers included, which
    # must exit by themselves when the main process is killed
    log, _ = first.communicate(timeout=60)
    if signum == signal.SIGINT:
        assert first.returncode == 128 + signal.SIGINT, log
        assert "run the same command again to resume" in log
    else:
        assert first.returncode == -signal.SIGKILL
    finished = _indices(p.name for p in parts.glob("ep_*.hdf5"))
    assert len(finished) >= 3
    try:
        summary = validate_file(out)
    except DatasetFormatError:
        # HDF5 writes are not transactional: a SIGKILL inside a merge can leave the file for
        # the store to repair when the run resumes (below); a clean stop never does
        assert signum == signal.SIGKILL
    else:
        saved = _indices(summary.demo_lengths)
        assert saved <= finished
        if signum == signal.SIGINT:
            assert saved == finished  # every finished episode is in the file
        with h5py.File(out, "r") as file:
            assert all(file["data"][f"demo_{i}"].attrs["seed"] == i for i in saved)

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    collected = int(re.search(r"collecting (\d+) with", second.stdout).group(1))
    assert collected == episodes - len(finished)  # finished episodes are not collected again
    summary = validate_file(out)
    assert summary.episodes == episodes and summary.samples == episodes * steps
    with h5py.File(out, "r") as file:
        seeds = sorted(int(file["data"][name].attrs["seed"]) for name in file["data"])
    assert seeds == list(range(episodes))
    assert not parts.exists()


def test_task_configs_match_the_registry():
    names = sorted(path.stem for path in (REPO / "configs" / "task").glob("*.yaml"))
    assert names == envs.registered_tasks()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        for name in names:
            cfg = compose("collect", overrides=[f"task={name}", "noise=0.1"])
            assert cfg.task.name == name and cfg.out == f"data/{name}.hdf5"
            config = CollectionConfig(task=cfg.task.name, episodes=cfg.episodes, out=cfg.out, noise=cfg.noise)
            assert config.noise == (0.1, 0.1)


def test_task_scene_settings_reach_the_env_and_the_header(tmp_path) -> None:
    """pick_place_multi's scene settings (the language scene) are collected and recorded; a file of the
    default scene refuses them, and the default scene's header is what it always was."""
    from jepa_wm.data.hdf5 import read_header

    options = {"palette": "lang"}
    config = CollectionConfig(task="pick_place_multi", episodes=1, out=tmp_path / "lang.hdf5", image_size=16,
                              noise=0.0, env_options=options)
    collect(config, progress=False)
    with h5py.File(config.out, "r") as file:
        header = read_header(file)
        assert header["env_args"]["env_kwargs"]["palette"] == "lang"
    default = CollectionConfig(task="pick_place_multi", episodes=1, out=tmp_path / "default.hdf5", image_size=16,
                               noise=0.0)
    collect(default, progress=False)
    with h5py.File(default.out, "r") as file:
        assert set(read_header(file)["env_args"]["env_kwargs"]) == {"image_size", "camera", "max_episode_steps"}
    with pytest.raises(ValueError, match="palette"):
        collect(CollectionConfig(task="pick_place_multi", episodes=2, out=default.out, image_size=16, noise=0.0,
                                 env_options=options), progress=False)
    with pytest.raises(ValueError, match="env_options must map"):
        CollectionConfig(task="pick_place_multi", episodes=1, out=tmp_path / "x.hdf5", env_options=["lang"])
