"""Train a :class:`~jepa_wm.plugins.gripper_reader.reader.GripperReader` on collected frames and check it on goal images
(``experiments/train_gripper_reader.py``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from jepa_wm.plugins.gripper_reader.reader import GripperReader, closed_labels
from jepa_wm.training.loop import optimizer_step

logger = logging.getLogger(__name__)

def train_gripper_reader(images: Tensor, closed: np.ndarray, episodes: np.ndarray, *, epochs: int = 15,
                         batch_size: int = 64, lr: float = 1e-3, held_out: float = 0.2, seed: int = 0,
                         progress: bool = True) -> tuple[GripperReader, dict[str, Any]]:
    """Train a reader on frames ``images`` uint8 ``(n, 3, H, W)`` labelled ``closed`` ``(n,)``.

    A fraction ``held_out`` of the episodes (``episodes`` ``(n,)``: each frame's) is held out and
    scored after training (accuracy, and the share of closed frames there: the majority baseline).
    The reader is trained on the other episodes only, so the score is honest.

    Raises:
        ValueError: mismatched inputs, or frames of fewer than 2 episodes.
        NonFiniteLossError: the loss or its gradient turned NaN or infinite; training stops at that
            step (counted from 1 over all epochs), before updating the weights.
    """
    closed = np.asarray(closed, dtype=bool)
    if images.ndim != 4 or len(images) != len(closed) or len(closed) != len(episodes):
        raise ValueError(f"expected images (n, 3, H, W), closed (n,) and episodes (n,), got {tuple(images.shape)}, "
                         f"{closed.shape}, {np.shape(episodes)}")
    unique = np.unique(episodes)
    if len(unique) < 2:
        raise ValueError(f"need frames of at least 2 episodes to hold some out, got {len(unique)}")
    rng = np.random.default_rng(seed)
    test = np.isin(episodes, rng.choice(unique, max(1, round(held_out * len(unique))), replace=False))
    torch.manual_seed(seed)
    reader = GripperReader(images.shape[-2:])
    optimizer = torch.optim.Adam(reader.parameters(), lr=lr, weight_decay=1e-4)
    labels = torch.as_tensor(closed, dtype=torch.float32)
    train_rows = torch.as_tensor(np.flatnonzero(~test))
    generator = torch.Generator().manual_seed(seed)
    step = 0
    for _ in tqdm(range(epochs), desc="gripper reader epochs", disable=not progress):
        order = train_rows[torch.randperm(len(train_rows), generator=generator)]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = F.binary_cross_entropy_with_logits(reader(images[rows]), labels[rows])
            step += 1
            optimizer_step(loss, optimizer, step=step)
    reader.eval()
    with torch.no_grad():
        predicted = np.concatenate([(reader(images[i : i + 512]) > 0).numpy()
                                    for i in range(0, len(images), 512)])
    metrics = {"held_out_accuracy": float(np.mean(predicted[test] == closed[test])),
               "held_out_closed_fraction": float(np.mean(closed[test])),
               "train_accuracy": float(np.mean(predicted[~test] == closed[~test])),
               "held_out_frames": int(test.sum()), "train_frames": int((~test).sum()), "epochs": epochs}
    logger.info("gripper reader: held-out accuracy %.3f (closed %.2f of those frames), train %.3f",
                metrics["held_out_accuracy"], metrics["held_out_closed_fraction"], metrics["train_accuracy"])
    return reader, metrics


def goal_agreement(reader: GripperReader, env: Any, seeds: Sequence[int], gripper_open: float) -> dict[str, float]:
    """Per goal name, the fraction of ``seeds`` whose goal image the reader reads as the expert
    had the gripper there (:func:`closed_labels` of the expert's opening at the image), and ``"all"``: the fraction of episodes with
    every goal read right. ``env``: the task, rendering the reader's image size."""
    if not seeds:
        raise ValueError("goal_agreement needs at least one seed")
    rows = []
    for seed in seeds:
        env.reset(seed=int(seed))
        goals = env.unwrapped.goal_images()
        truth = np.where(closed_labels(np.asarray(goals.states, dtype=float)[:, 6], gripper_open), 1.0, -1.0)
        rows.append((goals.names, np.asarray(reader.targets(goals.images)) == truth))
    names = rows[0][0]
    right = np.stack([r for _, r in rows])  # (seeds, goals)
    return {**{name: float(right[:, i].mean()) for i, name in enumerate(names)}, "all": float(right.all(1).mean())}
