"""Read from a goal image whether its gripper is open or closed: gripper targets for planning.

The latent energy sees the fingers only a little and the predictor barely (experiments/README.md:
predicted open-vs-closed energy differences 5-15x smaller than the true frames'); a linear probe
of the encoder's latents does not read the opening at all (held-out R² 0.000). Yet with the
gripper known at each goal image the shipped predictor places the cube in 11 of 50 pick_place
episodes (0 without). :class:`GripperReader` is a small CNN on the goal image's pixels, trained
on collected episodes' frames labelled by their true gripper opening (closed: below
``CLOSED_FRACTION`` of fully open, i.e. shut or closed on a cube). At planning time it reads each
goal image once; ``objective.gripper_weight`` then charges plans that command the other gripper
(``subgoals.gripper_goals=reader``). Nothing privileged: it sees only the goal images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from jepa_wm.training.checkpoint import atomic_torch_save, load_tagged
from jepa_wm.world_model import image_tensor

logger = logging.getLogger(__name__)

CLOSED_FRACTION = 0.8  # an opening below this fraction of the fully open one counts as closed
READER_FORMAT = "jepa_wm.gripper_reader/1"


def closed_labels(openings: np.ndarray, gripper_open: float) -> np.ndarray:
    """``(n,)`` bool: the openings (metres) that count as closed (below ``CLOSED_FRACTION * gripper_open``)."""
    return np.asarray(openings, dtype=float).ravel() < CLOSED_FRACTION * gripper_open


class GripperReader(nn.Module):
    """A small CNN: uint8 images ``(B, 3, H, W)`` -> logits ``(B,)`` of "the gripper is closed".

    Three 3x3 convolutions (32, 64, 64 channels; 2x2 max-pooling after the first two), a global
    max-pool (the fingers are small and anywhere in the picture) and a linear layer.

    Args:
        image_hw: the images' ``(height, width)`` (checked when reading).
    """

    def __init__(self, image_hw: Sequence[int]) -> None:
        super().__init__()
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
            nn.Flatten(), nn.Linear(64, 1),
        )

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B,)`` for uint8 (or [0, 1] float) images ``(B, 3, H, W)``."""
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, *self.image_hw):
            raise ValueError(f"the gripper reader takes images (B, 3, {self.image_hw[0]}, {self.image_hw[1]}), "
                             f"got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return self.net(x)[:, 0]

    @torch.no_grad()
    def targets(self, images: Sequence[np.ndarray]) -> list[float]:
        """Gripper commands (+1 closed, -1 open) that uint8 ``(H, W, 3)`` images show."""
        batch = torch.stack([image_tensor(image) for image in images])  # (B, 3, H, W)
        return [1.0 if logit > 0 else -1.0 for logit in self.eval()(batch).tolist()]

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write the weights, image size and ``meta`` (how it was trained) to ``path``."""
        return atomic_torch_save({"format": READER_FORMAT, "image_hw": list(self.image_hw),
                                  "state_dict": self.state_dict(), "meta": meta or {}}, path)

    @classmethod
    def load(cls, path: str | Path) -> tuple[GripperReader, dict[str, Any]]:
        """The reader at ``path`` and its ``meta``.

        Raises:
            FileNotFoundError: no file (the message says how to train one).
            ValueError: the file is not a gripper reader.
        """
        state = load_tagged(path, READER_FORMAT, "gripper reader",
                            f"python experiments/train_gripper_reader.py data.paths=[<episodes.hdf5>] out={path}")
        reader = cls(state["image_hw"])
        reader.load_state_dict(state["state_dict"])
        return reader.eval(), dict(state.get("meta") or {})


def train_gripper_reader(images: Tensor, closed: np.ndarray, episodes: np.ndarray, *, epochs: int = 15,
                         batch_size: int = 64, lr: float = 1e-3, held_out: float = 0.2, seed: int = 0,
                         progress: bool = True) -> tuple[GripperReader, dict[str, Any]]:
    """Train a reader on frames ``images`` uint8 ``(n, 3, H, W)`` labelled ``closed`` ``(n,)``.

    A fraction ``held_out`` of the episodes (``episodes`` ``(n,)``: each frame's) is held out and
    scored after training (accuracy, and the share of closed frames there: the majority baseline).
    The reader is trained on the other episodes only, so the score is honest.
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
    for _ in tqdm(range(epochs), desc="gripper reader epochs", disable=not progress):
        order = train_rows[torch.randperm(len(train_rows), generator=generator)]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = F.binary_cross_entropy_with_logits(reader(images[rows]), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
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
    had the gripper there (:func:`closed_labels` of the expert's opening at the image, as
    :func:`jepa_wm.planning.demo_gripper_targets`), and ``"all"``: the fraction of episodes with
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
