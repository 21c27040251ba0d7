"""Energy-landscape diagnostic: rank correlation of goal energy with true distance."""

from __future__ import annotations

import json

import pytest
import torch

import envs
from jepa_wm.evaluation.energy_landscape import energy_distance_correlation, pixel_features
from tests.helpers import run_script, write_tiny_world_model


def test_pixel_energy_tracks_reach_distance_and_noise_does_not():
    env = envs.make("reach", image_size=32)
    noise = lambda images: torch.rand(len(images), 8, generator=torch.Generator().manual_seed(len(images)))  # noqa: E731
    result = energy_distance_correlation(env, {"pixels": pixel_features, "noise": noise}, episodes=3, steps=20,
                                         progress=False)
    env.close()
    assert result.episodes == 3 and result.frames == 60 and len(result.per_episode["pixels"]) == 3
    assert result.mean["pixels"] > 0.25  # the gripper image moving toward the goal pose
    assert abs(result.mean["noise"]) < 0.15, result.mean
    assert "pixels" in result.table()
    with pytest.raises(ValueError, match="at least one"):
        energy_distance_correlation(env, {})


def test_script_writes_json(tmp_path, monkeypatch):
    encoder, _ = write_tiny_world_model(tmp_path / "wm", img_size=16)
    out = tmp_path / "landscape.json"
    run_script("energy_landscape.py", "task=reach", f"encoder={encoder}", "pool=1", "episodes=2", "steps=5",
               "progress=false", f"out={out}", "smoothing=[3]", monkeypatch=monkeypatch)
    record = json.loads(out.read_text())
    assert set(record["mean"]) == {"pretrained", "random_init", "pixels", "pretrained_blur3"} and record["frames"] == 10
