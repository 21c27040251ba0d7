"""Linear probe: R^2, ridge recovery of a linear map, frame loading with and without obs/object."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from jepa_wm.data import ClipDataset
from jepa_wm.encoders import FrozenEncoder, VisionTransformer, ViTConfig
from jepa_wm.evaluation.probe import (
    encoder_features,
    fit_probes,
    format_table,
    load_probe_frames,
    pixel_features,
    probe_features,
    r2_score,
    ridge_predictions,
)


def test_r2_hand_computed() -> None:
    y = np.array([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0]])
    assert r2_score(y, y) == 1.0
    assert r2_score(y, np.tile(y.mean(0), (3, 1))) == pytest.approx(0.0)
    # column 0: residual 0.5 of total 2 -> 0.75; column 1 exact -> 1
    assert r2_score(y, y + np.array([[0.5, 0], [-0.5, 0], [0, 0]])) == pytest.approx(0.875)


def test_ridge_recovers_a_linear_map_and_picks_penalties_per_target() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 30))
    linear = x @ rng.normal(size=(30, 3)) + 0.01 * rng.normal(size=(400, 3))
    noise = rng.normal(size=(400, 3))  # unrelated to x
    groups = np.repeat(np.arange(20), 20)
    fits = fit_probes(x[:300], {"linear": linear[:300], "noise": noise[:300]}, groups[:300], x[300:])
    assert r2_score(linear[300:], fits["linear"]["test_pred"]) > 0.99
    assert fits["linear"]["alpha"] <= 1e-2 and fits["linear"]["cv_r2"] > 0.99
    assert fits["noise"]["alpha"] >= 1.0  # nothing to learn: the strongest penalties win
    assert fits["noise"]["test_pred"].shape == (100, 3)

    # the closed form matches the normal equations on standardised features
    alpha = 3.0
    xs = (x[:300] - x[:300].mean(0)) / (x[:300].std(0) + 1e-6)
    coef = np.linalg.solve(xs.T @ xs + alpha * np.eye(30), xs.T @ (linear[:300] - linear[:300].mean(0)))
    expected = (x[300:] - x[:300].mean(0)) / (x[:300].std(0) + 1e-6) @ coef + linear[:300].mean(0)
    assert np.allclose(ridge_predictions(x[:300], linear[:300], x[300:], [alpha])[0], expected)
    # fewer frames than features: the kernel form gives the same ridge solution
    xs = (x[:20] - x[:20].mean(0)) / (x[:20].std(0) + 1e-6)
    coef = np.linalg.solve(xs.T @ xs + alpha * np.eye(30), xs.T @ (linear[:20] - linear[:20].mean(0)))
    expected = (x[300:] - x[:20].mean(0)) / (x[:20].std(0) + 1e-6) @ coef + linear[:20].mean(0)
    assert np.allclose(ridge_predictions(x[:20], linear[:20], x[300:], [alpha])[0], expected)


def _with_object(src: Path, dst: Path) -> Path:
    """A copy whose demos except demo_5 store obs/object (row k = 10k, 10k + 1, ...)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as file:
        for name, demo in file["data"].items():
            n = demo.attrs["num_samples"]
            if name == "demo_5":
                continue
            demo["obs"].create_dataset("object", data=np.arange(n * 10, dtype=np.float64).reshape(n, 10))
    return dst


def test_probe_frames_features_and_results(tmp_path: Path, video_file: Path, micro_vit: ViTConfig) -> None:
    path = _with_object(video_file, tmp_path / "with_object.hdf5")
    episodes = ClipDataset(path, clip_len=2, split="all").episodes
    frames = load_probe_frames(episodes, frame_stride=3)
    assert frames.images.shape == (6 * 4, 3, 16, 16) and frames.images.dtype == torch.uint8
    assert frames.targets["object"][:4, 0].tolist() == [0.0, 30.0, 60.0, 90.0]  # first 3 of obs/object
    assert np.isnan(frames.targets["object"][-4:]).all()  # demo_5 has none
    assert frames.targets["gripper"].shape == (24, 3) and frames.episodes.tolist()[:5] == [0, 0, 0, 0, 1]
    with h5py.File(path, "r") as f:  # the opening is state entry 6 (obs/state's last column here)
        first = f["data"][episodes[0].demo]["obs"]["state"][::3, 6]
    np.testing.assert_allclose(frames.targets["opening"][:4, 0], first)
    without = load_probe_frames(ClipDataset(video_file, clip_len=2, split="all").episodes, frame_stride=3)
    assert sorted(without.targets) == ["gripper", "opening"]

    torch.manual_seed(0)
    encoder = FrozenEncoder(VisionTransformer(micro_vit))
    features = encoder_features(encoder, frames.images, pool_grid=2, batch_size=7)
    assert features.shape == (24, 48 + 4 * 48)
    assert pixel_features(frames.images, pixel_size=8).shape == (24, 3 * 64)

    train = load_probe_frames(episodes[:4], frame_stride=1)
    test = load_probe_frames(episodes[4:], frame_stride=1)
    results = {"pixels": probe_features(pixel_features(train.images, 8), train, pixel_features(test.images, 8), test)}
    assert sorted(results["pixels"]) == ["gripper", "object", "opening"]
    assert results["pixels"]["gripper"]["test_frames"] == 24 and results["pixels"]["object"]["test_frames"] == 12
    for scores in results["pixels"].values():
        assert np.isfinite(scores["r2"]) and scores["r2"] <= 1.0 and scores["train_r2"] >= scores["r2"]
    assert "R2 gripper" in format_table(results)
