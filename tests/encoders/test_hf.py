"""Hugging Face ``VJEPA2Model`` name mapping, on state dicts with HF's key names and shapes."""

import re
import sys
from types import SimpleNamespace

import pytest
import torch

from jepa_wm.encoders import (
    VisionTransformer,
    check_state_dict,
    hf_to_vjepa2_state_dict,
    load_hf_vjepa2_encoder,
    vit_config,
    vit_config_from_hf,
    vit_from_state_dict,
)

# Key names and shapes of transformers' VJEPA2Model (facebook/vjepa2-vitl-fpc64-256), spelled out.
PUBLISHED_HF_LARGE = {
    "encoder.embeddings.patch_embeddings.proj.weight": (1024, 3, 2, 16, 16),
    "encoder.layer.0.norm1.weight": (1024,),
    "encoder.layer.0.attention.query.weight": (1024, 1024),
    "encoder.layer.0.attention.key.bias": (1024,),
    "encoder.layer.0.attention.value.weight": (1024, 1024),
    "encoder.layer.0.attention.proj.weight": (1024, 1024),
    "encoder.layer.23.mlp.fc1.weight": (4096, 1024),
    "encoder.layer.23.mlp.fc2.bias": (1024,),
    "encoder.layernorm.weight": (1024,),
}


def to_hf_names(state_dict: dict) -> dict:
    """Inverse of the mapping under test: our keys -> VJEPA2Model keys (qkv split in three)."""
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"^patch_embed\.", "encoder.embeddings.patch_embeddings.", key)
        key = re.sub(r"^norm\.", "encoder.layernorm.", key)
        key = re.sub(r"^blocks\.(\d+)\.attn\.", r"encoder.layer.\1.attention.", key)
        key = re.sub(r"^blocks\.", "encoder.layer.", key)
        if ".attention.qkv." in key:
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0), strict=True):
                out[key.replace("qkv", name)] = part
        else:
            out[key] = value
    # The JEPA predictor lives in the same model; it is not part of the encoder.
    out["predictor.embeddings.mask_tokens"] = torch.zeros(10, 1, 1, 384)
    out["predictor.layer.0.attention.query.weight"] = torch.zeros(384, 384)
    return out


def test_every_hf_key_of_large_maps():
    with torch.device("meta"):
        model = VisionTransformer(vit_config("large"))
    hf = to_hf_names(model.state_dict())
    for key, shape in PUBLISHED_HF_LARGE.items():
        assert tuple(hf[key].shape) == shape, key
    mapped = hf_to_vjepa2_state_dict(hf)
    check_state_dict(model, mapped)
    assert mapped.keys() == model.state_dict().keys()


def test_round_trip_keeps_outputs():
    torch.manual_seed(0)
    source = VisionTransformer(vit_config("tiny")).eval()
    hf = {
        f"vjepa2.{k}": v for k, v in to_hf_names(source.state_dict()).items()
    }  # classification wrapper
    hf["pooler.query_tokens"] = torch.zeros(1, 1, 192)
    loaded = vit_from_state_dict(source.config, hf_to_vjepa2_state_dict(hf)).eval()
    video = torch.randn(1, 3, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), source(video))


def test_bad_hf_state_dicts_fail_loudly():
    torch.manual_seed(0)
    hf = to_hf_names(VisionTransformer(vit_config("tiny")).state_dict())
    without_value = {k: v for k, v in hf.items() if k != "encoder.layer.2.attention.value.bias"}
    with pytest.raises(
        ValueError, match=r"encoder\.layer\.2\.attention is missing \['value'\] bias"
    ):
        hf_to_vjepa2_state_dict(without_value)
    with pytest.raises(ValueError, match=r"encoder\.embeddings\.position_embeddings"):
        hf_to_vjepa2_state_dict({**hf, "encoder.embeddings.position_embeddings": torch.zeros(1)})
    mapped = hf_to_vjepa2_state_dict(
        {k: v for k, v in hf.items() if not k.startswith("encoder.layer.5.")}
    )
    with pytest.raises(ValueError, match=r"missing keys \(12\): blocks\.5\."):
        vit_from_state_dict(vit_config("tiny"), mapped)


def test_config_from_hf_defaults_is_large():
    hf_config = SimpleNamespace(  # transformers.VJEPA2Config() defaults (vjepa2-vitl-fpc64-256)
        patch_size=16,
        crop_size=256,
        frames_per_clip=64,
        tubelet_size=2,
        hidden_size=1024,
        in_chans=3,
        num_attention_heads=16,
        num_hidden_layers=24,
        mlp_ratio=4.0,
        layer_norm_eps=1e-6,
        qkv_bias=True,
        hidden_act="gelu",
    )
    assert vit_config_from_hf(hf_config) == vit_config("large")
    with pytest.raises(ValueError, match="GELU"):
        vit_config_from_hf(SimpleNamespace(**{**vars(hf_config), "hidden_act": "silu"}))


def test_missing_transformers_says_how_to_install(monkeypatch):
    """Where transformers is not installed (here it is, through the text encoder's wheel: hide it)."""
    for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(ImportError, match=r"jepa-wm\[hf\]"):
        load_hf_vjepa2_encoder("facebook/vjepa2-vitl-fpc64-256")
