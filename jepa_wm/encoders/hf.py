"""Optional: V-JEPA 2 encoders through Hugging Face ``transformers`` (``pip install jepa-wm[hf]``).

``transformers``' ``VJEPA2Model`` keeps the same architecture under other names and splits the
fused qkv projection in three. Its encoder keys map to ours as::

    encoder.embeddings.patch_embeddings.proj.*     -> patch_embed.proj.*
    encoder.layer.{i}.norm1.* / norm2.*            -> blocks.{i}.norm1.* / norm2.*
    encoder.layer.{i}.attention.{query,key,value}.* -> blocks.{i}.attn.qkv.* (concatenated q, k, v)
    encoder.layer.{i}.attention.proj.*             -> blocks.{i}.attn.proj.*
    encoder.layer.{i}.mlp.fc1.* / fc2.*            -> blocks.{i}.mlp.fc1.* / fc2.*
    encoder.layernorm.*                            -> norm.*

Keys under ``predictor.`` (the JEPA predictor) are not part of the encoder and are skipped; a
``vjepa2.`` prefix (``VJEPA2ForVideoClassification``) is stripped and its pooler/classifier
skipped. Its RoPE uses the same (published) frequency layout as ours with ``rope_layout="vjepa2"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from jepa_wm.encoders.vit import VisionTransformer, ViTConfig
from jepa_wm.encoders.vjepa2_weights import vit_from_state_dict

_RENAMES = (
    (re.compile(r"^encoder\.embeddings\.patch_embeddings\.proj\."), "patch_embed.proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.proj\."), r"blocks.\1.attn.proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\."), r"blocks.\1.\2."),
    (re.compile(r"^encoder\.layernorm\."), "norm."),
)
_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.(query|key|value)\.(weight|bias)$")
_NOT_ENCODER = ("predictor.", "pooler.", "classifier.")


def hf_to_vjepa2_state_dict(hf_state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a ``VJEPA2Model`` state dict to our encoder key names (see module doc).

    Raises:
        ValueError: naming encoder keys that have no counterpart, or layers whose query, key
            and value projections are incomplete.
    """
    out: dict[str, Tensor] = {}
    qkv_parts: dict[tuple[str, str], dict[str, Tensor]] = {}
    unknown: list[str] = []
    for key, value in hf_state_dict.items():
        name = key.removeprefix("vjepa2.")
        if name.startswith(_NOT_ENCODER):
            continue
        match = _QKV.match(name)
        if match:
            layer, part, kind = match.groups()
            qkv_parts.setdefault((layer, kind), {})[part] = value
            continue
        for pattern, replacement in _RENAMES:
            if pattern.match(name):
                out[pattern.sub(replacement, name)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"Hugging Face keys with no encoder counterpart: {sorted(unknown)}")
    for (layer, kind), parts in sorted(qkv_parts.items()):
        absent = [p for p in ("query", "key", "value") if p not in parts]
        if absent:
            raise ValueError(f"encoder.layer.{layer}.attention is missing {absent} {kind}")
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    return out


def vit_config_from_hf(hf_config: Any, **overrides: Any) -> ViTConfig:
    """Our ViTConfig from a ``transformers.VJEPA2Config`` (or any object with its attributes)."""
    if getattr(hf_config, "hidden_act", "gelu") != "gelu":
        raise ValueError(
            f"only GELU encoders are supported, got hidden_act={hf_config.hidden_act!r}"
        )
    fields = {
        "img_size": hf_config.crop_size,
        "patch_size": hf_config.patch_size,
        "tubelet_size": hf_config.tubelet_size,
        "num_frames": hf_config.tubelet_size,
        "in_chans": hf_config.in_chans,
        "embed_dim": hf_config.hidden_size,
        "depth": hf_config.num_hidden_layers,
        "num_heads": hf_config.num_attention_heads,
        "mlp_ratio": float(hf_config.mlp_ratio),
        "qkv_bias": bool(hf_config.qkv_bias),
        "norm_eps": float(hf_config.layer_norm_eps),
        "rope_layout": "vjepa2",
    }
    return ViTConfig(**{**fields, **overrides})


def vit_from_hf_model(hf_model: Any, *, dtype: torch.dtype = torch.float32) -> VisionTransformer:
    """Our ViT with the encoder weights of an instantiated ``VJEPA2Model`` (strict)."""
    state_dict = hf_to_vjepa2_state_dict(hf_model.state_dict())
    return vit_from_state_dict(vit_config_from_hf(hf_model.config), state_dict, dtype=dtype)


def load_hf_vjepa2_encoder(name_or_path: str, **from_pretrained_kwargs: Any) -> VisionTransformer:
    """Load ``VJEPA2Model.from_pretrained(name_or_path)`` and convert its encoder to our ViT.

    Needs the optional ``transformers`` dependency; ``name_or_path`` is a local directory or a
    hub id (e.g. ``facebook/vjepa2-vitg-fpc64-256``) that ``transformers`` can reach.
    """
    try:
        from transformers import VJEPA2Model
    except ImportError as err:
        raise ImportError(
            "loading V-JEPA 2 through Hugging Face needs transformers>=4.53: "
            "pip install 'jepa-wm[hf]'"
        ) from err
    return vit_from_hf_model(VJEPA2Model.from_pretrained(name_or_path, **from_pretrained_kwargs))
