"""The V-JEPA 2-AC release's predictor branch loads into ACPredictor (checked on release-shaped state dicts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jepa_wm.predictor import ACPredictor
from jepa_wm.predictor_weights import load_vjepa2_ac_predictor, vjepa2_ac_config

SMALL = dict(embed_dim=32, grid_hw=(4, 4), predictor_embed_dim=48, depth=2, num_heads=4)  # released: 1408, 16x16, 1024/24/16


def release_file(tmp_path: Path, source: ACPredictor, **changes: torch.Tensor) -> Path:
    """A file laid out like vjepa2-ac-vitg.pt: wrapper prefixes, an extrinsics encoder, no normalisation buffers."""
    width = source.config.predictor_embed_dim
    predictor = {f"module.backbone.{k}": v for k, v in source.state_dict().items() if not k.endswith(("_mean", "_std"))}
    predictor["module.backbone.extrinsics_encoder.weight"] = torch.randn(width, 6)
    predictor["module.backbone.extrinsics_encoder.bias"] = torch.randn(width)
    predictor.update(changes)
    path = tmp_path / "vjepa2-ac-vitg.pt"
    torch.save({"encoder": {"module.backbone.norm.weight": torch.ones(32)}, "predictor": predictor}, path)
    return path


def test_release_layout_loads_and_predicts_like_the_source(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = ACPredictor(vjepa2_ac_config(**SMALL)).eval()
    loaded = load_vjepa2_ac_predictor(release_file(tmp_path, source), **SMALL).eval()
    assert loaded.config.rope_layout == "vjepa2" and loaded.config.depth == 2
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    z, actions, states = torch.randn(2, 3, 16, 32), torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    torch.testing.assert_close(loaded(z, actions, states), source(z, actions, states))


def test_the_released_size_is_the_papers() -> None:
    config = vjepa2_ac_config()
    assert (config.embed_dim, config.grid_hw, config.predictor_embed_dim, config.depth, config.num_heads) == (
        1408, (16, 16), 1024, 24, 16)


def test_bad_files_name_what_is_wrong(tmp_path: Path) -> None:
    source = ACPredictor(vjepa2_ac_config(**SMALL))
    with pytest.raises(FileNotFoundError, match="no V-JEPA 2-AC checkpoint"):
        load_vjepa2_ac_predictor(tmp_path / "absent.pt", **SMALL)
    wrong = release_file(tmp_path, source, **{"module.backbone.predictor_proj.weight": torch.zeros(32, 40)})
    with pytest.raises(ValueError, match=r"predictor_proj.weight: checkpoint \(32, 40\) vs model \(32, 48\)"):
        load_vjepa2_ac_predictor(wrong, **SMALL)
    with pytest.raises(ValueError, match="missing keys.*predictor_blocks.2"):
        load_vjepa2_ac_predictor(release_file(tmp_path, source), **{**SMALL, "depth": 3})
    torch.save({"encoder": {}}, tmp_path / "encoder_only.pt")
    with pytest.raises(ValueError, match="with a 'predictor' branch, got \\['encoder'\\]"):
        load_vjepa2_ac_predictor(tmp_path / "encoder_only.pt", **SMALL)


def test_a_release_file_with_nan_or_inf_is_refused(tmp_path: Path) -> None:
    source = ACPredictor(vjepa2_ac_config(**SMALL))
    weight = source.state_dict()["predictor_proj.weight"].clone()
    weight[3, 1] = float("inf")
    path = release_file(tmp_path, source, **{"module.backbone.predictor_proj.weight": weight})
    with pytest.raises(ValueError, match=rf"^{path}: 1 of \d+ tensors hold NaN or inf .*"
                                         r"\(first: predictor\.module\.backbone\.predictor_proj\.weight\)$"):
        load_vjepa2_ac_predictor(path, **SMALL)
