"""Train an :class:`~jepa_wm.plugins.object_reader.reader.ObjectReader` on cached latents labelled by the true object
or grip-site position (``experiments/train_object_reader.py``), and ask whether a predictor moves the object where
the true next frame does (:func:`evaluate_object_motion`, ``experiments/eval_predictor.py object_reader=...``).

>>> frames = load_object_frames(episodes, caches, frame_stride=2)
>>> reader, metrics = train_object_reader(frames)
>>> reader.save("runs/object_reader/push.pt", {"encoder_fingerprint": encoder.fingerprint(), **metrics})
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from jepa_wm.data.clips import EpisodeRef
from jepa_wm.data.hdf5 import DATA
from jepa_wm.encoders.latent_cache import LATENTS
from jepa_wm.plugins.object_reader.reader import (
    OBJECT_KEY,
    STATE_KEY,
    TABLE_XY,
    TABLE_Z,
    TARGETS,
    ObjectReader,
)
from jepa_wm.predictor_training import batch_to_device
from jepa_wm.training.loop import optimizer_step
from jepa_wm.world_model import WorldModel

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class ObjectFrames:
    """Cached latents of some episodes' frames with the object's true position there.

    Attributes:
        latents: float16 ``(n, N, D)``.
        positions: float64 ``(n, 3)`` object xyz (metres).
        episodes: int ``(n,)`` index of each frame's episode (held-out episodes are whole).
    """

    latents: Tensor
    positions: np.ndarray
    episodes: np.ndarray


def on_table(positions: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the positions ``(n, 3)`` on the table (not fallen off: :data:`TABLE_XY`, :data:`TABLE_Z`)."""
    positions = np.asarray(positions, dtype=float)
    return ((np.abs(positions[:, :2]) <= TABLE_XY).all(1) & (positions[:, 2] >= TABLE_Z[0])
            & (positions[:, 2] <= TABLE_Z[1]))


def load_object_frames(episodes: Sequence[EpisodeRef], caches: Mapping[str, str | Path],
                       frame_stride: int = 1, progress: bool = True, target: str = "object") -> ObjectFrames:
    """Every ``frame_stride``-th observation of each episode: its cached latent and the target's xyz.

    Args:
        episodes: the episodes (a :class:`~jepa_wm.data.clips.ClipDataset`'s).
        caches: dataset file -> its latent cache (:func:`jepa_wm.data.latents.usable_caches`).
        frame_stride: keep every this many observations.
        target: ``"object"``, the manipulated object's xyz (``obs/object``; frames whose object fell
            off the table, :func:`on_table`, are left out), or ``"hand"``, the grip site's
            (``obs/state[:3]``, the robot's proprioception; every frame).

    Raises:
        ValueError: an unknown target, an episode without ``obs/object`` (e.g. reach), or no frame left.
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {list(TARGETS)}, got {target!r}")
    key = OBJECT_KEY if target == "object" else STATE_KEY
    latents, positions, owner = [], [], []
    handles: dict[str, h5py.File] = {}
    try:
        for index, ref in enumerate(tqdm(episodes, desc="read latents", leave=False, disable=not progress)):
            for path in (ref.path, str(caches[ref.path])):
                if path not in handles:
                    handles[path] = h5py.File(path, "r")
            obs = handles[ref.path][DATA][ref.demo]["obs"]
            if key not in obs:
                raise ValueError(f"{ref.path} {ref.demo} has no obs/{key}: the object reader needs episodes "
                                 "with an object (push, pick_place, ...)")
            xyz = obs[key][::frame_stride, :3]  # (n, 3)
            z = handles[str(caches[ref.path])][DATA][ref.demo][LATENTS][: ref.num_samples : frame_stride]  # (n, N, D)
            keep = on_table(xyz) if target == "object" else np.ones(len(xyz), dtype=bool)
            latents.append(z[keep])
            positions.append(xyz[keep])
            owner.append(np.full(int(keep.sum()), index))
    finally:
        for handle in handles.values():
            handle.close()
    if not episodes or not sum(len(p) for p in positions):
        raise ValueError(f"no frames with the {target} {'on the table ' if target == 'object' else ''}in "
                         f"{len(episodes)} episodes")
    return ObjectFrames(latents=torch.from_numpy(np.concatenate(latents)),
                        positions=np.concatenate(positions).astype(np.float64), episodes=np.concatenate(owner))


def train_object_reader(frames: ObjectFrames, *, epochs: int = 12, batch_size: int = 256, lr: float = 1e-3,
                        weight_decay: float = 1e-2, width: int = 32, hidden: int = 256, held_out: float = 0.1,
                        seed: int = 0, progress: bool = True) -> tuple[ObjectReader, dict[str, Any]]:
    """Train a reader on ``frames``; score it on a fraction ``held_out`` of the episodes, never trained on.

    The loss is the mean squared error in units of the training positions' standard deviation
    (per axis). Metrics: held-out R² per axis, the xy error's median and 90th percentile (cm),
    and the median xy error of always answering the training mean (the baseline).

    Raises:
        ValueError: mismatched frames, or frames of fewer than 2 episodes.
        NonFiniteLossError: the loss or its gradient turned NaN or infinite; training stops at that
            step (counted from 1 over all epochs), before updating the weights.
    """
    n = len(frames.positions)
    if frames.latents.ndim != 3 or len(frames.latents) != n or len(frames.episodes) != n:
        raise ValueError(f"expected latents (n, N, D), positions (n, 3) and episodes (n,), got "
                         f"{tuple(frames.latents.shape)}, {frames.positions.shape}, {frames.episodes.shape}")
    unique = np.unique(frames.episodes)
    if len(unique) < 2:
        raise ValueError(f"need frames of at least 2 episodes to hold some out, got {len(unique)}")
    rng = np.random.default_rng(seed)
    test = np.isin(frames.episodes, rng.choice(unique, max(1, round(held_out * len(unique))), replace=False))
    torch.manual_seed(seed)
    reader = ObjectReader(*frames.latents.shape[1:], width=width, hidden=hidden)
    targets = torch.as_tensor(frames.positions, dtype=torch.float32)  # (n, 3)
    train_rows = torch.as_tensor(np.flatnonzero(~test))
    reader.mean.copy_(targets[train_rows].mean(0))
    reader.std.copy_(targets[train_rows].std(0).clamp_min(1e-3))
    optimizer = torch.optim.AdamW(reader.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    for _ in tqdm(range(epochs), desc="object reader epochs", disable=not progress):
        order = train_rows[torch.randperm(len(train_rows), generator=generator)]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = F.mse_loss(reader.net(frames.latents[rows].float()), (targets[rows] - reader.mean) / reader.std)
            step += 1
            optimizer_step(loss, optimizer, step=step)
    reader.eval().requires_grad_(False)
    with torch.no_grad():
        predicted = torch.cat([reader(frames.latents[i : i + 1024]) for i in range(0, n, 1024)]).double().numpy()
    truth = frames.positions
    metrics = {
        "held_out_r2": r_squared(predicted[test], truth[test]).tolist(),
        "train_r2": r_squared(predicted[~test], truth[~test]).tolist(),
        **xy_errors_cm(predicted[test], truth[test], "held_out"),
        "held_out_xy_error_cm_median_of_mean": float(np.median(
            np.linalg.norm(truth[test, :2] - truth[~test, :2].mean(0), axis=1)) * 100),
        "held_out_frames": int(test.sum()), "train_frames": int((~test).sum()),
        "held_out_episodes": int(len(np.unique(frames.episodes[test]))), "epochs": epochs,
    }
    logger.info("object reader: held-out R² x/y/z %s, xy error median %.2f cm / p90 %.2f cm (the mean: %.2f cm)",
                np.round(metrics["held_out_r2"], 3).tolist(), metrics["held_out_xy_error_cm_median"],
                metrics["held_out_xy_error_cm_p90"], metrics["held_out_xy_error_cm_median_of_mean"])
    return reader, metrics


def r_squared(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-column R² ``(k,)`` of ``predicted`` against ``truth`` (both ``(n, k)``)."""
    residual = ((predicted - truth) ** 2).sum(0)
    total = ((truth - truth.mean(0)) ** 2).sum(0)
    return 1 - residual / np.maximum(total, 1e-12)


def xy_errors_cm(predicted: np.ndarray, truth: np.ndarray, prefix: str) -> dict[str, float]:
    """The median and 90th percentile of the xy distance (cm) between ``predicted`` and ``truth`` ``(n, 3)``."""
    error = np.linalg.norm(predicted[:, :2] - truth[:, :2], axis=1) * 100
    return {f"{prefix}_xy_error_cm_median": float(np.median(error)),
            f"{prefix}_xy_error_cm_p90": float(np.percentile(error, 90))}


MOVED = 0.005  # metres: a step moved the object when its xy changed by more than this


def object_position(demo: h5py.Group, frame: int) -> np.ndarray:
    """The object's xyz ``(3,)`` at observation ``frame`` of a demo (frame ``N``: from ``next_obs``)."""
    rows = demo["obs"][OBJECT_KEY]
    if frame < len(rows):
        return np.asarray(rows[frame, :3], dtype=np.float64)
    return np.asarray(demo["next_obs"][OBJECT_KEY][frame - 1, :3], dtype=np.float64)


@torch.no_grad()
def evaluate_object_motion(world_model: WorldModel, reader: ObjectReader, batches: Iterable[Mapping[str, Any]],
                           episodes: Sequence[EpisodeRef], frame_skip: int = 1, *, device: torch.device,
                           max_batches: int | None = None) -> dict[str, Any]:
    """Does the predictor move the object? One predicted step per clip, read by ``reader``.

    For each clip (``batches`` of a :class:`~jepa_wm.data.clips.ClipDataset`'s items over
    ``episodes``, with ``latents`` or ``frames``; episodes without ``obs/object`` are skipped)
    whose object moved more than :data:`MOVED` in xy between its first two frames (``frame_skip``
    recorded steps apart) and stayed on the table, compares the true xy move with the move the reader sees from the first frame's latent to
    (a) the true next frame's latent and (b) the predictor's prediction of it after the recorded
    action. Returns, for each of ``"next_frame"`` and ``"predicted"``: the correlation of the read
    and true moves per axis (x, y), the median cosine between them and the median read move (cm);
    and ``moving_clips``, ``clips`` and the median true move (cm).
    """
    true_moves, read = [], {"next_frame": [], "predicted": []}
    clips = 0
    handles: dict[str, h5py.File] = {}
    try:
        for i, batch in enumerate(tqdm(batches, desc="object motion", unit="batch", total=max_batches)):
            if max_batches is not None and i >= max_batches:
                break
            z, actions, states = batch_to_device(batch, device, world_model.encoder)  # (B, T, N, D), ...
            clips += len(z)
            rows = []
            for row, (episode, start) in enumerate(zip(batch["episode"].tolist(), batch["start"].tolist())):
                ref = episodes[episode]
                if ref.path not in handles:
                    handles[ref.path] = h5py.File(ref.path, "r")
                demo = handles[ref.path][DATA][ref.demo]
                if OBJECT_KEY not in demo["obs"]:  # e.g. reach: no object to follow
                    continue
                before, after = object_position(demo, start), object_position(demo, start + frame_skip)
                if np.linalg.norm(after[:2] - before[:2]) > MOVED and on_table(np.stack([before, after])).all():
                    rows.append(row)
                    true_moves.append(after[:2] - before[:2])
            if not rows:
                continue
            predicted = world_model.rollout(z[rows, :1], states[rows, :1], actions[rows, :1])[:, 0]  # (M, N, D)
            now, nxt, pred = (reader(latents)[:, :2].double().cpu() for latents in (z[rows, 0], z[rows, 1], predicted))
            read["next_frame"].extend((nxt - now).numpy())
            read["predicted"].extend((pred - now).numpy())
    finally:
        for handle in handles.values():
            handle.close()
    if len(true_moves) < 2:
        raise ValueError(f"{len(true_moves)} of {clips} clips moved the object more than {MOVED * 100:.1f} cm: "
                         "need at least 2 (episodes where the object is pushed or carried)")
    truth = np.stack(true_moves)  # (M, 2)
    result: dict[str, Any] = {"clips": clips, "moving_clips": len(truth),
                              "true_move_cm_median": float(np.median(np.linalg.norm(truth, axis=1)) * 100)}
    for name, moves in read.items():
        seen = np.stack(moves)  # (M, 2)
        cosine = (seen * truth).sum(1) / np.maximum(np.linalg.norm(seen, axis=1) * np.linalg.norm(truth, axis=1),
                                                    1e-12)
        result[name] = {"correlation_xy": [correlation(truth[:, a], seen[:, a]) for a in (0, 1)],
                        "cosine_median": float(np.median(cosine)),
                        "read_move_cm_median": float(np.median(np.linalg.norm(seen, axis=1)) * 100)}
    logger.info("object motion over %d moving clips: %s", len(truth), result)
    return result


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two ``(n,)`` arrays; 0 when either is constant (nothing moves with the other)."""
    a, b = a - a.mean(), b - b.mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale > 0 else 0.0
