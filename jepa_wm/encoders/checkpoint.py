"""Our own encoder checkpoints: a pretrained ViT with the config and data that made it.

The file written by :func:`save_encoder_checkpoint` (the final artefact of
``experiments/pretrain_encoder.py``) holds plain data and tensors only::

    {
        "kind": "jepa_wm.encoder", "version": 1,
        "vit_config": {...},      # ViTConfig fields
        "state_dict": {...},      # VisionTransformer weights (the EMA target encoder)
        "step": int,              # pretraining steps behind the weights
        "data": {...},            # summary of the pretraining data
        "config": {...},          # the pretraining configuration
    }

:func:`load_encoder_checkpoint` turns it into a :class:`~jepa_wm.encoders.frozen.FrozenEncoder`
and rejects any other file (an official V-JEPA 2 release file, a training checkpoint) with a
ValueError that says what the file is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.encoders.vit import VisionTransformer, ViTConfig
from jepa_wm.encoders.vjepa2_weights import vit_from_state_dict
from jepa_wm.training.checkpoint import (
    CHECKPOINT_KIND,
    atomic_torch_save,
    torch_load_plain,
)

logger = logging.getLogger(__name__)

ENCODER_KIND = "jepa_wm.encoder"
ENCODER_VERSION = 1


def save_encoder_checkpoint(
    path: str | Path,
    vit: VisionTransformer,
    *,
    step: int,
    data: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``vit`` (weights and config) with its provenance, atomically.

    Args:
        path: the ``.pt`` file to write.
        vit: the encoder to keep (for JEPA pretraining, the EMA target encoder).
        step: pretraining steps behind these weights.
        data: summary of the training data (plain data).
        config: the training configuration (plain data).
    """
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"vit must be a VisionTransformer, got {type(vit).__name__}")
    payload = {
        "kind": ENCODER_KIND,
        "version": ENCODER_VERSION,
        "vit_config": asdict(vit.config),
        "state_dict": {k: v.detach().cpu() for k, v in vit.state_dict().items()},
        "step": int(step),
        "data": dict(data or {}),
        "config": dict(config or {}),
    }
    path = atomic_torch_save(payload, path)
    logger.info("saved encoder checkpoint %s (step %d)", path, step)
    return path


def read_encoder_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checked contents of an encoder checkpoint (see the module docstring)."""
    payload = torch_load_plain(path)  # FileNotFoundError / CheckpointError (a ValueError)
    if not isinstance(payload, Mapping) or payload.get("kind") != ENCODER_KIND:
        if isinstance(payload, Mapping) and payload.get("kind") == CHECKPOINT_KIND:
            hint = "a training checkpoint; use the run's encoder.pt (written at the end of pretraining)"
        elif isinstance(payload, Mapping):
            hint = f"a dict with keys {sorted(map(str, payload))[:8]}"
            if "target_encoder" in payload or "encoder" in payload:
                hint += " (an official V-JEPA 2 file? use load_vjepa2_encoder)"
        else:
            hint = f"a {type(payload).__name__}"
        raise ValueError(f"{path} is not a {ENCODER_KIND} checkpoint: it holds {hint}")
    if payload.get("version") != ENCODER_VERSION:
        raise ValueError(
            f"{path}: encoder checkpoint version {payload.get('version')!r}, "
            f"this code reads version {ENCODER_VERSION}"
        )
    known = {f.name for f in fields(ViTConfig)}
    unknown = sorted(set(payload["vit_config"]) - known)
    if unknown:
        raise ValueError(f"{path}: vit_config has fields this ViTConfig lacks: {unknown}")
    return dict(payload)


def load_encoder_checkpoint(
    path: str | Path, *, dtype: torch.dtype = torch.float32, **frozen_kwargs: Any
) -> FrozenEncoder:
    """Load a pretrained encoder written by :func:`save_encoder_checkpoint` as a FrozenEncoder.

    Args:
        path: the encoder ``.pt`` file.
        dtype: parameter dtype.
        frozen_kwargs: passed to :class:`FrozenEncoder` (``chunk_size``, ``resize``, ``pool``).

    Raises:
        ValueError: the file is not an encoder checkpoint, or its weights do not fit its config.
    """
    payload = read_encoder_checkpoint(path)
    config = ViTConfig(**payload["vit_config"])
    vit = vit_from_state_dict(config, payload["state_dict"], dtype=dtype)
    logger.info("loaded encoder %s (step %s)", path, payload["step"])
    return FrozenEncoder(vit, **frozen_kwargs)
