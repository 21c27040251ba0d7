"""The V-JEPA 2 video ViT: configs, sizes, shapes, token masks."""

import pytest
import torch

from jepa_wm.encoders import VIT_SIZES, VisionTransformer, ViTConfig, vit_config


@pytest.fixture(scope="module")
def tiny() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(vit_config("tiny")).eval()


def test_tiny_shapes(tiny):
    video = torch.randn(2, 3, 4, 64, 64)  # two tubelets
    with torch.no_grad():
        out = tiny(video)
    assert out.shape == (2, 2 * 64, 192)
    assert tiny.config.grid_hw == (8, 8) and tiny.config.tokens_per_frame == 64


def test_full_index_mask_equals_unmasked_forward(tiny):
    video = torch.randn(2, 3, 2, 64, 64)
    with torch.no_grad():
        full = tiny(video)
        ids = torch.arange(64).expand(2, -1)
        torch.testing.assert_close(tiny(video, masks=ids), full)
        # Kept tokens keep their grid positions: a permuted full mask permutes the output.
        perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(
            tiny(video, masks=perm.expand(2, -1)), full[:, perm], rtol=1e-4, atol=1e-4
        )


def test_masked_forward_keeps_only_listed_tokens(tiny):
    video = torch.randn(2, 3, 2, 64, 64)
    keep = torch.stack([torch.arange(0, 64, 4), torch.arange(1, 64, 4)])  # (2, 16)
    other = torch.stack([torch.arange(2, 64, 4), torch.arange(3, 64, 4)])
    with torch.no_grad():
        out = tiny(video, masks=keep)
        both = tiny(video, masks=[keep, other])
        full = tiny(video)
    assert out.shape == (2, 16, 192)
    assert both.shape == (4, 16, 192)  # masks are stacked along the batch, as V-JEPA does
    torch.testing.assert_close(both[:2], out)
    # Dropped tokens are not attended to, so the kept tokens' outputs differ from the full pass.
    assert not torch.allclose(
        out, torch.gather(full, 1, keep.unsqueeze(-1).expand(-1, -1, 192)), atol=1e-3
    )


def test_bad_inputs_raise(tiny):
    with pytest.raises(ValueError, match="tubelet_size"):
        tiny(torch.randn(1, 3, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        tiny(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        tiny(torch.randn(1, 3, 2, 64, 64), masks=torch.tensor([[0, 64]]))
    with pytest.raises(TypeError, match="integer"):
        tiny(torch.randn(1, 3, 2, 64, 64), masks=torch.ones(1, 64, dtype=torch.bool))


def test_config_validation():
    with pytest.raises(ValueError, match="unknown ViT size 'gigantic'.*'giant'"):
        vit_config("gigantic")
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ViTConfig(img_size=60, patch_size=8)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ViTConfig(embed_dim=100, num_heads=3)
    with pytest.raises(ValueError, match="img_size"):
        ViTConfig(img_size=(64,))
    with pytest.raises(ValueError, match="rope_layout"):
        ViTConfig(rope_layout="xy")
    assert ViTConfig(img_size=[64, 96]).grid_hw == (8, 12)  # lists (hydra) become tuples


def test_published_sizes():
    expected = {
        "large": (1024, 24, 16, 4096),
        "huge": (1280, 32, 16, 5120),
        "giant": (1408, 40, 22, 6144),
    }
    for size, (width, depth, heads, hidden) in expected.items():
        cfg = vit_config(size)
        assert (cfg.embed_dim, cfg.depth, cfg.num_heads, int(cfg.embed_dim * cfg.mlp_ratio)) == (
            width,
            depth,
            heads,
            hidden,
        )
        assert (cfg.img_hw, cfg.patch_size, cfg.tubelet_size, cfg.tokens_per_frame) == (
            (256, 256),
            16,
            2,
            256,
        )
    assert set(VIT_SIZES) >= {"tiny", "small", "large", "huge", "giant"}
    with torch.device("meta"):
        params = {
            s: sum(p.numel() for p in VisionTransformer(vit_config(s)).parameters())
            for s in expected
        }
    assert 300e6 < params["large"] < 310e6  # ViT-L: about 300M
    assert 1.0e9 < params["giant"] < 1.02e9  # ViT-g: about 1B


@pytest.mark.slow
def test_large_runs_one_forward():
    torch.manual_seed(0)
    model = VisionTransformer(
        vit_config("large", img_size=32)
    ).eval()  # published width/depth, 2x2 tokens
    with torch.no_grad():
        out = model(torch.randn(1, 3, 2, 32, 32))
    assert out.shape == (1, 4, 1024)
    assert torch.isfinite(out).all()
