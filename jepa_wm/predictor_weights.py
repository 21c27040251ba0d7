"""Load the published V-JEPA 2-AC predictor (the ``predictor`` branch of ``vjepa2-ac-vitg.pt``).

The release's ``VisionTransformerPredictorAC`` (facebookresearch/vjepa2
``src/models/ac_predictor.py``) uses the module names of :class:`~jepa_wm.predictor.ACPredictor`
(``predictor_embed``, ``action_encoder``, ``state_encoder``, ``predictor_blocks``,
``predictor_norm``, ``predictor_proj``) with the training wrappers' key prefixes
(``module.backbone.``). Two differences are bridged here:

* it always owns an ``extrinsics_encoder`` (camera extrinsics, unused by the released model:
  ``use_extrinsics=False``), which is dropped;
* it has no normalisation buffers (V-JEPA 2-AC feeds raw states and actions), so ours are set
  to the identity (mean 0, std 1).

The released model is 1024 wide, 24 blocks, 16 heads over the ViT-g encoder's 16x16 grid of
1408-wide tokens at 256 px, with V-JEPA 2's RoPE layout (``rope_layout="vjepa2"``). Loading is
strict: any other missing or unexpected key, or a shape mismatch, raises a ValueError naming them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from jepa_wm.encoders.vjepa2_weights import (
    check_state_dict,
    read_release_file,
    strip_wrapper_prefixes,
)
from jepa_wm.predictor import ACPredictor, PredictorConfig, predictor_config

logger = logging.getLogger(__name__)

PREDICTOR_BRANCH = "predictor"
UNUSED_PREFIXES = ("extrinsics_encoder.",)
VJEPA2_AC_EMBED_DIM = 1408  # ViT-g
VJEPA2_AC_GRID = (16, 16)  # 256 px / patch 16


def vjepa2_ac_config(**overrides: Any) -> PredictorConfig:
    """The released predictor's configuration (fields overridable, e.g. for smaller test models)."""
    settings = {"embed_dim": VJEPA2_AC_EMBED_DIM, "grid_hw": VJEPA2_AC_GRID, "rope_layout": "vjepa2", **overrides}
    embed_dim, grid_hw = settings.pop("embed_dim"), settings.pop("grid_hw")
    return predictor_config("vjepa2_ac", embed_dim, grid_hw, **settings)


def vjepa2_ac_predictor_state_dict(checkpoint: Mapping[str, Any], config: PredictorConfig) -> dict[str, Tensor]:
    """The release's ``predictor`` branch in our key names, with identity normalisation buffers.

    Args:
        checkpoint: the loaded release dict (``{"encoder": ..., "predictor": ...}``).
        config: the predictor it is loaded into (sizes the buffers).
    """
    if not isinstance(checkpoint, Mapping) or PREDICTOR_BRANCH not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise ValueError(f"expected a V-JEPA 2-AC release dict with a {PREDICTOR_BRANCH!r} branch, got {found}")
    state_dict = strip_wrapper_prefixes(checkpoint[PREDICTOR_BRANCH])
    dropped = sorted(k for k in state_dict if k.startswith(UNUSED_PREFIXES))
    if dropped:
        logger.info("dropping %s (camera extrinsics, unused by the released model)", dropped)
    state_dict = {k: v for k, v in state_dict.items() if k not in dropped}
    for name, size in (("state_mean", config.state_dim), ("action_mean", config.action_dim)):
        state_dict.setdefault(name, torch.zeros(size))
    for name, size in (("state_std", config.state_dim), ("action_std", config.action_dim)):
        state_dict.setdefault(name, torch.ones(size))
    return state_dict


def load_vjepa2_ac_predictor(
    path: str | Path, *, dtype: torch.dtype = torch.float32, **config_overrides: Any
) -> ACPredictor:
    """Load the published V-JEPA 2-AC predictor from a local ``vjepa2-ac-vitg.pt``.

    Args:
        path: the release file (its ``encoder`` branch loads with
            :func:`~jepa_wm.encoders.vjepa2_weights.load_vjepa2_encoder`, size ``giant``).
        dtype: parameter dtype of the returned model.
        config_overrides: :class:`PredictorConfig` fields, for files of other sizes.

    Returns:
        The predictor on the CPU (weights assigned, no random initialisation spent).
    """
    checkpoint = read_release_file(path, "V-JEPA 2-AC")
    config = vjepa2_ac_config(**config_overrides)
    state_dict = vjepa2_ac_predictor_state_dict(checkpoint, config)
    with torch.device("meta"):
        model = ACPredictor(config)
    try:
        check_state_dict(model, state_dict)
    except ValueError as err:
        raise ValueError(f"{path}: {err} (the config asks for width {config.predictor_embed_dim}, depth "
                         f"{config.depth}, encoder width {config.embed_dim})") from err
    model.load_state_dict({k: v.to(dtype) for k, v in state_dict.items()}, strict=True, assign=True)
    logger.info("loaded the V-JEPA 2-AC predictor from %s", path)
    return model
