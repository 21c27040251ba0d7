"""Load the official V-JEPA 2 encoder checkpoints (the torch.hub ``.pt`` release files).

A release file is a dict of state dicts. The V-JEPA 2 pretraining files (``vitl.pt``,
``vith.pt``, ``vitg.pt``, ``vitg-384.pt``) hold ``encoder``, ``predictor`` and
``target_encoder``; the hub loader (``src/hub/backbones.py``) takes ``target_encoder`` (the EMA
encoder). The action-conditioned file ``vjepa2-ac-vitg.pt`` holds ``encoder`` and ``predictor``,
and the hub loads its ``encoder``. Keys carry the training wrappers' prefixes
(``module.backbone.blocks.0.attn.qkv.weight``), which the hub strips; older files also carry
a ``pos_embed`` that RoPE models do not use.

Sizes: ``vitl`` -> ``large``, ``vith`` -> ``huge``, ``vitg`` and ``vjepa2-ac-vitg`` -> ``giant``
(256 px), ``vitg-384`` -> ``giant`` with ``img_size=384``.

Loading is strict: any missing key, unexpected key or shape mismatch raises a ValueError that
names the keys.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from jepa_wm.encoders.vit import VisionTransformer, ViTConfig, vit_config
from jepa_wm.training.checkpoint import torch_load_plain

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "backbone.")
IGNORED_KEYS = frozenset({"pos_embed"})
ENCODER_BRANCHES = ("target_encoder", "encoder")


def read_release_file(path: str | Path, what: str) -> Any:
    """Load a release ``.pt`` file of ``what`` (e.g. ``"V-JEPA 2"``) weights-only on the CPU.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a weights-only torch checkpoint, or its tensors hold NaN or inf
            (:func:`~jepa_wm.training.checkpoint.torch_load_plain`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} checkpoint at {path}")
    return torch_load_plain(path)


def strip_wrapper_prefixes(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove leading ``module.`` / ``backbone.`` (DDP and multi-clip wrappers) from every key."""
    cleaned: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        new_key = key
        while new_key.startswith(WRAPPER_PREFIXES):
            new_key = new_key.split(".", 1)[1]
        if new_key in cleaned:
            raise ValueError(
                f"keys {key!r} and another key both map to {new_key!r} after prefix stripping"
            )
        cleaned[new_key] = value
    return cleaned


def vjepa2_encoder_state_dict(
    checkpoint: Mapping[str, Any], branch: str | None = None
) -> dict[str, Tensor]:
    """Pick an encoder branch of a release checkpoint and clean its keys to our names.

    Args:
        checkpoint: the loaded ``.pt`` dict.
        branch: ``"target_encoder"`` or ``"encoder"``; None takes ``target_encoder`` when
            present (the hub default) and ``encoder`` otherwise (the AC release).
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f"checkpoint must be a dict of state dicts, got {type(checkpoint).__name__}"
        )
    if branch is None:
        branch = next((b for b in ENCODER_BRANCHES if b in checkpoint), None)
        if branch is None:
            raise ValueError(
                f"checkpoint has none of the encoder branches {ENCODER_BRANCHES}; "
                f"keys: {sorted(checkpoint)}"
            )
    elif branch not in checkpoint:
        raise ValueError(f"checkpoint has no branch {branch!r}; keys: {sorted(checkpoint)}")
    state_dict = strip_wrapper_prefixes(checkpoint[branch])
    ignored = sorted(IGNORED_KEYS & state_dict.keys())
    if ignored:
        logger.info("ignoring %s from the %s branch (unused with RoPE)", ignored, branch)
    return {k: v for k, v in state_dict.items() if k not in IGNORED_KEYS}


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raise a ValueError naming every missing key, unexpected key and shape mismatch."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(expected.keys() & state_dict.keys())
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_preview(mismatched)}")
    if problems:
        raise ValueError("state dict does not fit the model: " + "; ".join(problems))


def _preview(items: list[str], limit: int = 10) -> str:
    """The first ``limit`` items in natural order (blocks.2 before blocks.10)."""
    items = sorted(
        items, key=lambda s: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]
    )
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _describe(state_dict: Mapping[str, Tensor]) -> str:
    """Width and depth a ViT state dict was saved from, to hint at a wrong size name."""
    depth = len({k.split(".")[1] for k in state_dict if k.startswith("blocks.")})
    norm = state_dict.get("norm.weight")
    width = tuple(norm.shape)[0] if norm is not None and norm.ndim == 1 else "?"
    return f"the state dict holds a ViT of width {width} and depth {depth}"


def vit_from_state_dict(
    config: ViTConfig, state_dict: Mapping[str, Tensor], *, dtype: torch.dtype = torch.float32
) -> VisionTransformer:
    """Build a ViT from a state dict in our key names (strict: :func:`check_state_dict`).

    The model is built on the meta device and the tensors are assigned, so no memory or time
    is spent on a random initialisation that would be overwritten.
    """
    with torch.device("meta"):
        model = VisionTransformer(config)
    try:
        check_state_dict(model, state_dict)
    except ValueError as err:
        raise ValueError(
            f"{err} ({_describe(state_dict)}; the config asks for width {config.embed_dim} "
            f"and depth {config.depth})"
        ) from err
    model.load_state_dict({k: v.to(dtype) for k, v in state_dict.items()}, strict=True, assign=True)
    return model


def load_vjepa2_encoder(
    path: str | Path,
    size: str,
    *,
    branch: str | None = None,
    dtype: torch.dtype = torch.float32,
    **config_overrides: Any,
) -> VisionTransformer:
    """Load an official V-JEPA 2 encoder from a local release file.

    Args:
        path: the ``.pt`` file (e.g. ``vitg.pt`` or ``vjepa2-ac-vitg.pt``).
        size: our size name matching the file (``large``, ``huge``, ``giant``).
        branch: checkpoint branch, see :func:`vjepa2_encoder_state_dict`.
        dtype: parameter dtype of the returned model.
        config_overrides: ViTConfig fields, e.g. ``img_size=384`` for ``vitg-384.pt``.

    Returns:
        the ViT on the CPU; wrap it in :class:`~jepa_wm.encoders.frozen.FrozenEncoder`.
    """
    checkpoint = read_release_file(path, "V-JEPA 2")
    config = vit_config(size, **config_overrides)
    model = vit_from_state_dict(config, vjepa2_encoder_state_dict(checkpoint, branch), dtype=dtype)
    logger.info("loaded V-JEPA 2 %s encoder from %s", size, path)
    return model
