"""Frozen video encoders: the V-JEPA 2 ViT, official-weight loaders, the per-frame wrapper."""

from jepa_wm.encoders.checkpoint import (
    load_encoder_checkpoint,
    read_encoder_checkpoint,
    save_encoder_checkpoint,
)
from jepa_wm.encoders.frozen import IMAGENET_MEAN, IMAGENET_STD, FrozenEncoder
from jepa_wm.encoders.hf import (
    hf_to_vjepa2_state_dict,
    load_hf_vjepa2_encoder,
    vit_config_from_hf,
)
from jepa_wm.encoders.vit import (
    VIT_SIZES,
    PatchEmbed3D,
    VisionTransformer,
    ViTConfig,
    apply_masks,
    vit_config,
)
from jepa_wm.encoders.vjepa2_weights import (
    check_state_dict,
    load_vjepa2_encoder,
    vit_from_state_dict,
    vjepa2_encoder_state_dict,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VIT_SIZES",
    "FrozenEncoder",
    "PatchEmbed3D",
    "ViTConfig",
    "VisionTransformer",
    "apply_masks",
    "check_state_dict",
    "hf_to_vjepa2_state_dict",
    "load_encoder_checkpoint",
    "load_hf_vjepa2_encoder",
    "load_vjepa2_encoder",
    "read_encoder_checkpoint",
    "save_encoder_checkpoint",
    "vit_config",
    "vit_config_from_hf",
    "vit_from_state_dict",
    "vjepa2_encoder_state_dict",
]
