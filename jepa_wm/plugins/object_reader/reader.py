"""Read where the object (or the hand) is from a latent.

The latent energy weighs every token alike, and the arm fills far more of the picture than a 5 cm
cube. :class:`ObjectReader`, a small network over all tokens of one frame's latent, reads the
object's xyz (metres) from it, or the grip site's (``target="hand"``). Trained on collected
episodes' latents labelled by the true positions (:mod:`jepa_wm.plugins.object_reader.train`), it
reads goal latents and observations at planning time: the hand-pull term
(:mod:`jepa_wm.plugins.object_reader.cost`) and push's object model
(:mod:`jepa_wm.plugins.object_model.model`) use it. Nothing privileged at planning time: it sees only
latents of images.

>>> reader, meta = ObjectReader.load("jepa_wm/checkpoints/hand_reader_tiny_2cam.pt", target="hand")
>>> positions = reader(latents)   # (B, N, D) -> (B, 3) metres
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from jepa_wm.training.checkpoint import atomic_torch_save, load_tagged

logger = logging.getLogger(__name__)

READER_FORMAT = "jepa_wm.object_reader/1"  # the file format's name since its first release
OBJECT_KEY = "object"  # obs/object: the manipulated object's xyz first
STATE_KEY = "state"  # obs/state: the robot's proprioception, the grip site's xyz first
TARGETS = ("object", "hand")  # what a reader reads: the object (obs/object) or the grip site (obs/state)
TABLE_XY = 0.5  # metres: frames whose object is farther from the table's centre fell off it ...
TABLE_Z = (0.0, 0.2)  # ... or lie outside these heights; they are left out of training


class ObjectReader(nn.Module):
    """Latents ``(B, N, D)`` -> the object's xyz ``(B, 3)`` in metres.

    Each token is layer-normed and projected to ``width`` channels (one linear map shared by all
    tokens), the ``N * width`` values are flattened (where each token sits matters) and an MLP
    with one hidden layer of ``hidden`` units reads the position, in units of the training
    targets' standard deviation around their mean (both stored as buffers).

    Args:
        tokens: tokens per latent ``N`` (checked when reading).
        dim: channels per token ``D``.
        width: channels per token after the shared projection.
        hidden: hidden units of the MLP.
    """

    def __init__(self, tokens: int, dim: int, width: int = 32, hidden: int = 256) -> None:
        super().__init__()
        self.shape = (int(tokens), int(dim))
        self.width, self.hidden = int(width), int(hidden)
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, width), nn.GELU(), nn.Flatten(),
            nn.Linear(tokens * width, hidden), nn.GELU(), nn.Linear(hidden, 3),
        )
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))

    def forward(self, latents: Tensor) -> Tensor:
        """Object xyz ``(B, 3)`` (metres) of latents ``(B, N, D)``."""
        if latents.ndim != 3 or tuple(latents.shape[1:]) != self.shape:
            raise ValueError(f"the object reader takes latents (B, {self.shape[0]}, {self.shape[1]}), "
                             f"got {tuple(latents.shape)}")
        return self.net(latents.float()) * self.std + self.mean

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write the weights, sizes and ``meta`` (how it was trained, the encoder's fingerprint) to ``path``."""
        return atomic_torch_save({"format": READER_FORMAT, "tokens": self.shape[0], "dim": self.shape[1],
                                  "width": self.width, "hidden": self.hidden, "state_dict": self.state_dict(),
                                  "meta": meta or {}}, path)

    @classmethod
    def load(cls, path: str | Path, encoder_fingerprint: str | None = None,
             target: str | None = None) -> tuple[ObjectReader, dict[str, Any]]:
        """The reader at ``path`` and its ``meta``; with ``encoder_fingerprint``, checked to read that encoder's
        latents; with ``target`` (one of :data:`TARGETS`), checked to read that (files without a recorded target
        read the object).

        Raises:
            FileNotFoundError: no file (the message says how to train one).
            ValueError: the file is not an object reader, was trained on another encoder's latents, or reads
                another target.
        """
        hint = "" if target in (None, "object") else f" target={target}"
        state = load_tagged(path, READER_FORMAT, "object reader", f"python experiments/train_object_reader.py{hint} "
                            f"data.paths=[<episodes.hdf5>] encoder=<encoder.pt> out={path}")
        meta = dict(state.get("meta") or {})
        trained_on = meta.get("encoder_fingerprint")
        if encoder_fingerprint is not None and trained_on != encoder_fingerprint:
            raise ValueError(f"the object reader {path} was trained on the latents of encoder {trained_on}, the world "
                             f"model's encoder is {encoder_fingerprint}: train one on this encoder's latents")
        read = meta.get("target", "object")
        if target is not None and read != target:
            raise ValueError(f"the reader {path} reads the {read}, not the {target}: train one with "
                             f"experiments/train_object_reader.py target={target}")
        reader = cls(state["tokens"], state["dim"], state["width"], state["hidden"])
        reader.load_state_dict(state["state_dict"])
        return reader.eval().requires_grad_(False), meta
