"""A tiny video dataset (a square moving across 16x16 frames) and a micro ViT for fast tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from jepa_wm.data.hdf5 import Episode, demo_name, init_data_group, write_demo
from jepa_wm.encoders import ViTConfig
from jepa_wm.pretrain import BlockMaskSpec, PredictorConfig

ENV_ARGS = {"env_name": "jepa_wm/moving_square-v0", "type": 2, "env_kwargs": {"image_size": 16}}
META = {"task": "moving_square", "seed": 0, "noise": [0.0, 0.0], "version": "test"}
MICRO_VIT = ViTConfig(img_size=16, patch_size=4, tubelet_size=2, num_frames=4, embed_dim=48, depth=2, num_heads=2)
MICRO_PREDICTOR = PredictorConfig(embed_dim=48, predictor_dim=24, depth=1, num_heads=2, num_mask_tokens=2)
MICRO_MASKS = (
    BlockMaskSpec(spatial_scale=(0.15, 0.15), num_blocks=4),
    BlockMaskSpec(spatial_scale=(0.4, 0.4), num_blocks=2),
)


def moving_square_episode(n: int, seed: int, size: int = 16) -> Episode:
    """A 4x4 square drifting over a noisy background; ``state[:3]`` is its (x, y, 0) position."""
    rng = np.random.default_rng(seed)
    pos = np.clip(rng.integers(0, size - 4, 2) + np.cumsum(rng.integers(-1, 2, (n + 1, 2)), axis=0), 0, size - 4)
    images = rng.integers(0, 60, size=(n + 1, size, size, 3), dtype=np.uint8)
    for k, (y, x) in enumerate(pos):
        images[k, y : y + 4, x : x + 4] = (220, 40 + 20 * seed % 200, 40)
    states = np.zeros((n + 1, 7), dtype=np.float32)
    states[:, :2] = pos
    return Episode(
        images=images,
        robot_states=states,
        actions=rng.uniform(-1, 1, size=(n, 7)).astype(np.float32),
        rewards=np.zeros(n),
        dones=np.arange(n) == n - 1,
        success=np.zeros(n, dtype=bool),
        sim_states=np.zeros((n, 3)),
        seed=seed,
        noise=0.0,
        instruction="follow the square",
    )


def write_video_file(path: Path, episodes: int = 6, steps: int = 12) -> Path:
    with h5py.File(path, "w") as file:
        data = init_data_group(file, ENV_ARGS, META)
        for i in range(episodes):
            write_demo(data, demo_name(i), moving_square_episode(steps, seed=i))
    return path


@pytest.fixture
def micro_vit() -> ViTConfig:
    """A 48-wide, 2-deep ViT for 16x16 clips of 4 frames: a (2, 4, 4) token grid."""
    return MICRO_VIT


@pytest.fixture
def micro_predictor() -> PredictorConfig:
    return MICRO_PREDICTOR


@pytest.fixture
def micro_masks() -> tuple[BlockMaskSpec, ...]:
    return MICRO_MASKS


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six episodes of 12 steps (13 frames of 16x16)."""
    return write_video_file(tmp_path_factory.mktemp("videos") / "squares.hdf5")
