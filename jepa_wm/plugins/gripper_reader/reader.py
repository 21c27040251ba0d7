"""Read from a goal image whether its gripper is open or closed: gripper targets for planning.

The latent energy sees the fingers only a little (docs/research/pick_place.md).
:class:`GripperReader` is a small CNN on the goal image's pixels, trained on collected episodes'
frames labelled by their true gripper opening (closed: below ``CLOSED_FRACTION`` of fully open,
i.e. shut or closed on a cube; :mod:`jepa_wm.plugins.gripper_reader.train`). At planning time it
reads each goal image once and the gripper-target term (:mod:`jepa_wm.plugins.gripper_reader.cost`)
charges plans that command the other gripper. Nothing privileged: it sees only the goal images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jepa_wm.training.checkpoint import atomic_torch_save, load_tagged
from jepa_wm.world_model import image_tensor

logger = logging.getLogger(__name__)

CLOSED_FRACTION = 0.8  # an opening below this fraction of the fully open one counts as closed
READER_FORMAT = "jepa_wm.gripper_reader/1"  # the file format's name since its first release


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
