"""Official V-JEPA 2 checkpoint loading, on state dicts laid out as the release files are."""

import pytest
import torch

from jepa_wm.encoders import (
    VisionTransformer,
    check_state_dict,
    load_vjepa2_encoder,
    vit_config,
    vit_from_state_dict,
    vjepa2_encoder_state_dict,
)

# A few keys and shapes of the published ViT-g release (vitg.pt / vjepa2-ac-vitg.pt), spelled
# out so that a drift in our names or shapes shows up even if the test helpers drift with them.
PUBLISHED_GIANT = {
    "module.backbone.patch_embed.proj.weight": (1408, 3, 2, 16, 16),
    "module.backbone.patch_embed.proj.bias": (1408,),
    "module.backbone.blocks.0.norm1.weight": (1408,),
    "module.backbone.blocks.0.attn.qkv.weight": (3 * 1408, 1408),
    "module.backbone.blocks.0.attn.qkv.bias": (3 * 1408,),
    "module.backbone.blocks.0.attn.proj.weight": (1408, 1408),
    "module.backbone.blocks.39.mlp.fc1.weight": (6144, 1408),
    "module.backbone.blocks.39.mlp.fc2.weight": (1408, 6144),
    "module.backbone.norm.bias": (1408,),
}


def release_layout(state_dict: dict, *, pos_embed: bool = True) -> dict:
    """Our state dict as a release file stores one encoder branch."""
    out = {f"module.backbone.{k}": v for k, v in state_dict.items()}
    if pos_embed:
        width = state_dict["norm.weight"].shape[0]
        out["module.backbone.pos_embed"] = torch.zeros(1, 4, width)
    return out


def meta_model(size: str, **overrides) -> VisionTransformer:
    with torch.device("meta"):
        return VisionTransformer(vit_config(size, **overrides))


@pytest.mark.parametrize("size", ["large", "giant"])
def test_every_published_key_maps(size):
    model = meta_model(size)
    checkpoint = {"target_encoder": release_layout(model.state_dict()), "predictor": {}}
    state_dict = vjepa2_encoder_state_dict(checkpoint)
    check_state_dict(model, state_dict)  # raises on any missing, unexpected or mis-shaped key
    assert len(state_dict) == len(model.state_dict())


def test_hard_coded_published_giant_keys():
    expected = meta_model("giant").state_dict()
    for key, shape in PUBLISHED_GIANT.items():
        ours = vjepa2_encoder_state_dict({"encoder": {key: torch.empty(0)}})
        (name,) = ours
        assert tuple(expected[name].shape) == shape, key


@pytest.fixture
def tiny_release(tmp_path):
    """A release-style file with distinct encoder / target_encoder weights, plus two sources."""
    torch.manual_seed(0)
    online, target = VisionTransformer(vit_config("tiny")), VisionTransformer(vit_config("tiny"))
    path = tmp_path / "tiny.pt"
    torch.save(
        {
            "encoder": release_layout(online.state_dict()),
            "target_encoder": release_layout(target.state_dict()),
            "predictor": {"module.backbone.predictor_embed.weight": torch.zeros(2, 2)},
            "epoch": 10,
        },
        path,
    )
    return path, online.eval(), target.eval()


def test_load_release_file_defaults_to_target_encoder(tiny_release):
    path, online, target = tiny_release
    video = torch.randn(1, 3, 2, 64, 64)
    with torch.no_grad():
        loaded = load_vjepa2_encoder(path, "tiny").eval()
        torch.testing.assert_close(loaded(video), target(video))
        torch.testing.assert_close(
            load_vjepa2_encoder(path, "tiny", branch="encoder")(video), online(video)
        )


def test_ac_release_without_target_encoder_loads_encoder(tmp_path):
    torch.manual_seed(1)
    source = VisionTransformer(vit_config("tiny")).eval()
    path = tmp_path / "ac.pt"
    torch.save(
        {"encoder": release_layout(source.state_dict(), pos_embed=False), "predictor": {}}, path
    )
    video = torch.randn(1, 3, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(load_vjepa2_encoder(path, "tiny")(video), source(video))


def test_corrupted_state_dicts_fail_loudly():
    model = meta_model("tiny")
    good = dict(model.state_dict())
    missing = {k: v for k, v in good.items() if k != "blocks.3.attn.proj.bias"}
    with pytest.raises(ValueError, match=r"missing keys \(1\): blocks\.3\.attn\.proj\.bias"):
        check_state_dict(model, missing)
    extra = {**good, "blocks.0.attn.q_norm.weight": torch.empty(64)}
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): blocks\.0\.attn\.q_norm\.weight"):
        check_state_dict(model, extra)
    wrong = {**good, "blocks.1.mlp.fc1.weight": torch.empty(768, 100)}
    with pytest.raises(
        ValueError,
        match=r"blocks\.1\.mlp\.fc1\.weight: checkpoint \(768, 100\) vs model \(768, 192\)",
    ):
        vit_from_state_dict(vit_config("tiny"), wrong)


def test_wrong_size_for_file_fails_with_key_names(tiny_release):
    path, _, _ = tiny_release
    with pytest.raises(
        ValueError,
        match=r"missing keys.*blocks\.6\..*shape mismatches.*width 192 and depth 6; "
        r"the config asks for width 384 and depth 12",
    ):
        load_vjepa2_encoder(path, "small")


def test_missing_branch_and_file(tiny_release, tmp_path):
    path, _, _ = tiny_release
    with pytest.raises(ValueError, match=r"no branch 'ema_encoder'.*'target_encoder'"):
        load_vjepa2_encoder(path, "tiny", branch="ema_encoder")
    with pytest.raises(ValueError, match="none of the encoder branches"):
        vjepa2_encoder_state_dict({"predictor": {}})
    with pytest.raises(FileNotFoundError):
        load_vjepa2_encoder(tmp_path / "absent.pt", "tiny")
