"""Linear probes: how well do frozen features tell where the gripper and the object are?

A ridge regressor maps the features of single frames to positions (metres), is fitted on the
frames of training episodes and scored by R^2 on held-out episodes:

* gripper: ``obs/state[:, :3]`` (end-effector xyz);
* opening: the gripper opening, state entry 6 (how far apart the fingers are: whether the
  frame shows the gripper open or closed);
* object: ``obs/object[:, :3]`` (robomimic's privileged object state; its first three values
  are the first object's xyz). Frames of episodes without ``obs/object`` are left out of
  this probe (with a warning).

Features of one frame (:func:`encoder_features`): the encoder's layer-normed patch tokens
(the frame repeated to fill a tubelet, as the world model sees it), both mean-pooled
(``D`` values: what is in the scene) and average-pooled to a ``pool_grid x pool_grid`` grid,
flattened (``pool_grid^2 * D`` values: where it is). Positions are spatial, so the pooled
grid matters; mean pooling alone discards most of where things are. Raw pixels
(:func:`pixel_features`) are area-downsampled to ``pixel_size x pixel_size x 3``, a similar
number of values. Features are standardised with training statistics; the ridge penalty is
chosen by cross-validation over training episodes (grouped folds, so frames of one episode
never sit on both sides), then the probe is refitted on all training frames.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from jepa_wm.data.clips import EpisodeRef
from jepa_wm.data.hdf5 import DATA
from jepa_wm.encoders.frozen import FrozenEncoder

logger = logging.getLogger(__name__)

OBJECT_KEY = "object"  # obs/object, robomimic's object-state key
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))  # ridge penalty / n_train


@dataclass(frozen=True)
class ProbeFrames:
    """Frames of some episodes with their true positions.

    Attributes:
        images: uint8 (N, 3, H, W).
        targets: name -> float64 (N, k) values: ``gripper`` (N, 3), ``opening`` (N, 1), and ``object``
            (N, 3) when stored.
        episodes: int (N,) index of each frame's episode (for grouped cross-validation).
    """

    images: Tensor
    targets: dict[str, np.ndarray]
    episodes: np.ndarray


def load_probe_frames(episodes: Sequence[EpisodeRef], frame_stride: int = 1) -> ProbeFrames:
    """Every ``frame_stride``-th observation of each episode, with gripper xyz and opening (and object xyz).

    Episodes without ``obs/object`` (e.g. ``reach``) get NaN object positions; the object
    probe then uses only the frames that have one. No ``object`` target at all when no
    episode stores it.
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    if not episodes:
        raise ValueError("need at least one episode")
    images, gripper, openings, objects, owner = [], [], [], [], []
    without_object = 0
    handles: dict[str, h5py.File] = {}
    try:
        for index, ref in enumerate(tqdm(episodes, desc="read frames", leave=False)):
            if ref.path not in handles:
                handles[ref.path] = h5py.File(ref.path, "r")
            obs = handles[ref.path][DATA][ref.demo]["obs"]
            fmt = ref.format
            images.append(obs[fmt.image_key][::frame_stride])  # (n, H, W, 3)
            state = fmt.build_state({key: obs[key][::frame_stride] for key, _ in fmt.state_keys})
            gripper.append(state[:, :3])
            openings.append(state[:, 6:7])
            owner.append(np.full(len(state), index))
            if OBJECT_KEY in obs:
                objects.append(obs[OBJECT_KEY][::frame_stride, :3])
            else:
                objects.append(np.full((len(state), 3), np.nan))
                without_object += 1
    finally:
        for handle in handles.values():
            handle.close()
    targets = {"gripper": np.concatenate(gripper).astype(np.float64),
               "opening": np.concatenate(openings).astype(np.float64)}
    if without_object:
        logger.warning("%d of %d episodes have no obs/%s: the object probe leaves them out",
                       without_object, len(episodes), OBJECT_KEY)
    if without_object < len(episodes):
        targets["object"] = np.concatenate(objects).astype(np.float64)
    frames = torch.from_numpy(np.ascontiguousarray(np.concatenate(images).transpose(0, 3, 1, 2)))
    return ProbeFrames(images=frames, targets=targets, episodes=np.concatenate(owner))


@torch.no_grad()
def encoder_features(
    encoder: FrozenEncoder, images: Tensor, *, pool_grid: int = 4, batch_size: int = 256
) -> np.ndarray:
    """Mean-pooled tokens and a pooled token grid per frame.

    Args:
        encoder: the frozen encoder.
        images: uint8 (N, 3, H, W) frames.
        pool_grid: side of the average-pooled token grid (adaptive pooling).

    Returns:
        float32 (N, D + pool_grid^2 * D) features.
    """
    out = []
    grid_h, grid_w = encoder.grid_hw
    for start in tqdm(range(0, len(images), batch_size), desc="encode", leave=False):
        tokens = encoder.encode(images[start : start + batch_size].unsqueeze(1))[:, 0]  # (b, N, D)
        grid = tokens.transpose(1, 2).unflatten(2, (grid_h, grid_w))  # (b, D, H', W')
        pooled = F.adaptive_avg_pool2d(grid, pool_grid).flatten(1)  # (b, D * g * g)
        out.append(torch.cat([tokens.mean(dim=1), pooled], dim=1).cpu())  # (b, D + D g g)
    return torch.cat(out).numpy()


def pixel_features(images: Tensor, pixel_size: int = 32) -> np.ndarray:
    """uint8 (N, 3, H, W) -> float32 (N, 3 * pixel_size^2) area-downsampled pixels in [0, 1]."""
    x = images.float() / 255.0
    return F.interpolate(x, size=(pixel_size, pixel_size), mode="area").flatten(1).numpy()


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination per output column, averaged (sklearn's ``uniform_average``)."""
    residual = ((y_true - y_pred) ** 2).sum(axis=0)
    total = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - residual / np.maximum(total, 1e-12)))


def ridge_predictions(
    x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, alphas: Sequence[float]
) -> list[np.ndarray]:
    """Predictions on ``x_eval`` of ridge fits on ``(x_fit, y_fit)``, one per penalty.

    Features are standardised with ``x_fit``'s statistics and targets centred. One symmetric
    eigendecomposition serves every penalty: of the Gram matrix ``X^T X = V diag(l) V^T``
    when ``n >= d`` (weights ``V diag(1 / (l + a)) V^T X^T Y``), else of the kernel
    ``X X^T = U diag(l) U^T`` (weights ``X^T U diag(1 / (l + a)) U^T Y``). Both are much
    faster than an SVD of ``X`` for thousands of frames and features.

    Args:
        x_fit: (n, d) features; y_fit: (n, k) targets; x_eval: (m, d) features.

    Returns:
        One (m, k) prediction per penalty.
    """
    mean, std = x_fit.mean(axis=0), x_fit.std(axis=0) + 1e-6
    xs = ((x_fit - mean) / std).astype(np.float64)  # (n, d)
    xe = ((x_eval - mean) / std).astype(np.float64)  # (m, d)
    y_mean = y_fit.mean(axis=0)
    yc = y_fit - y_mean  # (n, k)
    if xs.shape[0] >= xs.shape[1]:
        eigvals, basis = np.linalg.eigh(xs.T @ xs)  # (d,), (d, d)
        rhs, lhs = basis.T @ (xs.T @ yc), xe @ basis  # (d, k), (m, d)
    else:
        eigvals, basis = np.linalg.eigh(xs @ xs.T)  # (n,), (n, n)
        rhs, lhs = basis.T @ yc, (xe @ xs.T) @ basis  # (n, k), (m, n)
    eigvals = np.clip(eigvals, 0.0, None)
    return [lhs @ (rhs / (eigvals + a)[:, None]) + y_mean for a in alphas]


def fit_probes(
    train_x: np.ndarray,
    train_targets: Mapping[str, np.ndarray],
    groups: np.ndarray,
    test_x: np.ndarray,
    *,
    relative_alphas: Sequence[float] = DEFAULT_ALPHAS,
    folds: int = 4,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Ridge probes for several targets; each target's penalty is picked by grouped K-fold R^2.

    Penalties are ``relative_alphas * n`` (standardised features: ``diag(X^T X) = n``). Each
    fold's validation frames are whole episodes (``groups``); the chosen probe is refitted
    on every training frame.

    Returns:
        ``{target: {"test_pred": (m, 3) predictions, "train_pred": (n, 3), "alpha": chosen
        relative penalty, "cv_r2": its mean validation R^2}}``.
    """
    names = list(train_targets)
    y = np.concatenate([train_targets[n] for n in names], axis=1)  # (n, 3 * targets)
    columns = np.split(np.arange(y.shape[1]), np.cumsum([train_targets[n].shape[1] for n in names])[:-1])
    unique = np.unique(groups)
    if len(unique) < folds:
        raise ValueError(f"need at least {folds} episodes for {folds}-fold CV, got {len(unique)}")
    fold_of = dict(zip(np.random.default_rng(seed).permutation(unique), np.arange(len(unique)) % folds))
    fold = np.array([fold_of[g] for g in groups])
    scores = np.zeros((len(names), len(relative_alphas)))
    for k in range(folds):
        fit, val = fold != k, fold == k
        alphas = [r * fit.sum() for r in relative_alphas]
        for j, pred in enumerate(ridge_predictions(train_x[fit], y[fit], train_x[val], alphas)):
            for i, cols in enumerate(columns):
                scores[i, j] += r2_score(y[val][:, cols], pred[:, cols]) / folds
    best = [float(relative_alphas[int(np.argmax(row))]) for row in scores]
    both = np.concatenate([train_x, test_x])
    preds = ridge_predictions(train_x, y, both, [a * len(train_x) for a in best])
    return {
        name: {
            "test_pred": preds[i][len(train_x) :, columns[i]],
            "train_pred": preds[i][: len(train_x), columns[i]],
            "alpha": best[i],
            "cv_r2": float(scores[i].max()),
        }
        for i, name in enumerate(names)
    }


def probe_features(
    train_x: np.ndarray,
    train: ProbeFrames,
    test_x: np.ndarray,
    test: ProbeFrames,
    *,
    folds: int = 4,
) -> dict[str, dict[str, float]]:
    """Fit a ridge probe per target on ``train_x`` and score it on ``test_x``.

    Each target uses the frames where it is known (finite) in both sets.

    Returns:
        ``{target: {"r2": held-out R^2 (mean over x, y, z), "r2_per_axis": [...], "train_r2": ...,
        "alpha": chosen relative penalty, "cv_r2": best cross-validation R^2, "train_frames": ...,
        "test_frames": ...}}``
        for the targets both sets have.
    """
    results = {}
    for name, y_train in train.targets.items():
        if name not in test.targets:
            continue
        fit_rows = np.isfinite(y_train).all(axis=1)
        test_rows = np.isfinite(test.targets[name]).all(axis=1)
        fit = fit_probes(train_x[fit_rows], {name: y_train[fit_rows]}, train.episodes[fit_rows],
                         test_x[test_rows], folds=folds)[name]
        y_test = test.targets[name][test_rows]
        results[name] = {
            "r2": r2_score(y_test, fit["test_pred"]),
            "r2_per_axis": [r2_score(y_test[:, [i]], fit["test_pred"][:, [i]]) for i in range(y_test.shape[1])],
            "train_r2": r2_score(y_train[fit_rows], fit["train_pred"]),
            "alpha": fit["alpha"],
            "cv_r2": fit["cv_r2"],
            "train_frames": int(fit_rows.sum()),
            "test_frames": int(test_rows.sum()),
        }
    return results


def format_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A text table of held-out R^2: one row per feature set, one column per target."""
    targets = sorted({t for per_target in results.values() for t in per_target})
    width = max(len(name) for name in results) + 2
    lines = ["features".ljust(width) + "".join(f"R2 {t}".rjust(14) for t in targets)]
    for name, per_target in results.items():
        cells = "".join(
            (f"{per_target[t]['r2']:.3f}" if t in per_target else "-").rjust(14) for t in targets
        )
        lines.append(name.ljust(width) + cells)
    return "\n".join(lines)
