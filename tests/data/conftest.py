"""Synthetic episodes whose arrays encode their own indices (for alignment checks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from jepa_wm.data.hdf5 import META_ATTR, Episode, demo_name, init_data_group, write_demo

ENV_ARGS = {"env_name": "jepa_wm/synthetic-v0", "type": 2, "env_kwargs": {"image_size": 16}}
META = {"task": "synthetic", "seed": 0, "noise": [0.0, 0.0], "version": "test"}


def synthetic_episode(n: int, seed: int, size: int = 16) -> Episode:
    """``n`` steps; frame k has pixel value ``k`` at (0, 0, 0) and state[0] == k,
    action k is ``[k, ...]`` (deltas), gripper ``seed + k``; other entries random."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n + 1, size, size, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n + 1) % 256
    robot_states = rng.normal(size=(n + 1, 7)).astype(np.float32)
    robot_states[:, 0] = np.arange(n + 1)
    actions = rng.uniform(-1, 1, size=(n, 7)).astype(np.float32)
    actions[:, 0] = np.arange(n)
    actions[:, 6] = seed + np.arange(n)
    return Episode(
        images=images,
        robot_states=robot_states,
        actions=actions,
        rewards=rng.normal(size=n),
        dones=np.arange(n) == n - 1,
        success=np.arange(n) >= n // 2,
        sim_states=rng.normal(size=(n, 11)),
        seed=seed,
        noise=0.1,
        instruction=f"synthetic episode {seed}",
    )


def write_synthetic_file(path: Path, lengths: list[int], size: int = 16) -> list[Episode]:
    """A file with one demo per length; demo i uses seed i."""
    episodes = [synthetic_episode(n, seed=i, size=size) for i, n in enumerate(lengths)]
    with h5py.File(path, "w") as file:
        data = init_data_group(file, ENV_ARGS, META)
        for i, episode in enumerate(episodes):
            write_demo(data, demo_name(i), episode)
    return episodes


@pytest.fixture
def make_episode() -> Callable[..., Episode]:
    """``(n, seed, size=16) -> Episode`` (see :func:`synthetic_episode`)."""
    return synthetic_episode


@pytest.fixture
def header() -> tuple[dict, dict]:
    """``(env_args, jepa_wm meta)`` of the synthetic files."""
    return ENV_ARGS, META


@pytest.fixture
def store_header() -> dict:
    """The synthetic files' header as :class:`~jepa_wm.data.store.EpisodeStore` takes it."""
    return {"env_args": ENV_ARGS, META_ATTR: META}


@pytest.fixture
def write_file() -> Callable[..., list[Episode]]:
    """``(path, lengths, size=16) -> episodes`` (see :func:`write_synthetic_file`)."""
    return write_synthetic_file


@pytest.fixture
def synthetic_file(tmp_path: Path) -> tuple[Path, list[Episode]]:
    """Six demos of 9-15 steps, 16x16 images."""
    path = tmp_path / "synthetic.hdf5"
    return path, write_synthetic_file(path, [12, 9, 15, 10, 11, 13])
