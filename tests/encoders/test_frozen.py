"""The frozen per-frame encoder wrapper."""

import copy

import pytest
import torch
import torch.nn.functional as F

from jepa_wm.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrozenEncoder,
    VisionTransformer,
    vit_config,
)


@pytest.fixture(scope="module")
def encoder() -> FrozenEncoder:
    torch.manual_seed(0)
    return FrozenEncoder(VisionTransformer(vit_config("tiny")), chunk_size=4)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(
        0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8, generator=gen
    )  # (B, T, 3, H, W)


def test_shapes_and_sizing_attributes(encoder, frames):
    z = encoder.encode(frames)
    assert z.shape == (2, 3, 64, 192)
    assert (encoder.embed_dim, encoder.num_patches, encoder.grid_hw, encoder.img_hw) == (
        192,
        64,
        (8, 8),
        (64, 64),
    )


def test_tokens_are_layer_normed_without_affine(encoder, frames):
    z = encoder.encode(frames)
    torch.testing.assert_close(z.mean(-1), torch.zeros(z.shape[:-1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        z.var(-1, unbiased=False), torch.ones(z.shape[:-1]), atol=1e-3, rtol=0
    )


def test_matches_repeated_frame_reference(encoder, frames):
    """Each frame fills one tubelet by repetition, as V-JEPA 2-AC encodes frames."""
    image = frames[1, 2].float() / 255.0  # (3, H, W)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    clip = ((image - mean) / std)[:, None].repeat(1, 2, 1, 1)[None]  # (1, 3, 2, H, W)
    with torch.no_grad():
        expected = F.layer_norm(encoder.vit(clip), (192,))[0]
    torch.testing.assert_close(encoder.encode(frames)[1, 2], expected, rtol=1e-4, atol=1e-4)


def test_frozen_deterministic_and_chunk_invariant(encoder, frames):
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.vit.training  # stays in eval mode
    z = encoder.encode(frames)
    assert not z.requires_grad
    torch.testing.assert_close(encoder.encode(frames), z, rtol=0, atol=0)
    one_by_one = FrozenEncoder(encoder.vit, chunk_size=1).encode(frames)
    torch.testing.assert_close(one_by_one, z, rtol=1e-5, atol=1e-5)


def test_float_input_equals_uint8(encoder, frames):
    torch.testing.assert_close(
        encoder.encode(frames.float() / 255.0), encoder.encode(frames), rtol=1e-5, atol=1e-5
    )


def test_size_mismatch_and_resize(encoder):
    small = torch.zeros(1, 2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"expects \(64, 64\).*resize=True"):
        encoder.encode(small)
    resized = FrozenEncoder(encoder.vit, resize=True).encode(small)
    assert resized.shape == (1, 2, 64, 192)


def test_bad_inputs_raise(encoder):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoder.encode(torch.full((1, 1, 3, 64, 64), 255.0))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        encoder.encode(torch.zeros(1, 1, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        encoder.encode(torch.zeros(1, 1, 3, 64, 64, dtype=torch.int64))
    with pytest.raises(ValueError, match="chunk_size"):
        FrozenEncoder(encoder.vit, chunk_size=0)


def test_fingerprint_tracks_weights_and_preprocessing(encoder):
    twin = FrozenEncoder(copy.deepcopy(encoder.vit))
    assert twin.fingerprint() == FrozenEncoder(encoder.vit).fingerprint()
    assert FrozenEncoder(encoder.vit, resize=True).fingerprint() != twin.fingerprint()
    with torch.no_grad():
        twin.vit.norm.bias[0] += 1e-3
    assert twin.fingerprint() != FrozenEncoder(encoder.vit).fingerprint()


def test_low_precision_encoder_returns_float32(encoder, frames):
    half = FrozenEncoder(copy.deepcopy(encoder.vit).to(torch.bfloat16))
    z = half.encode(frames[:1, :1])
    assert z.dtype == torch.float32
    reference = encoder.encode(frames[:1, :1])
    assert torch.nn.functional.cosine_similarity(z, reference, dim=-1).min() > 0.95


def test_pooled_tokens_average_the_grid_then_layer_norm(encoder, frames):
    pooled = FrozenEncoder(encoder.vit, pool=2)
    assert (pooled.grid_hw, pooled.num_patches, pooled.embed_dim) == ((4, 4), 16, 192)
    z = pooled.encode(frames)  # (B, T, 16, D)
    assert z.shape == (2, 3, 16, 192)
    clip = pooled.preprocess(frames[0, 1:2]).unsqueeze(2).repeat(1, 1, 2, 1, 1)  # (1, 3, 2, H, W)
    with torch.no_grad():
        grid = encoder.vit(clip)[0].view(8, 8, 192)  # raw tokens (h, w, D)
    top_left = grid[:2, :2].reshape(4, 192).mean(0)  # pooled token 0 covers rows 0-1, cols 0-1
    bottom_right = grid[6:, 6:].reshape(4, 192).mean(0)  # pooled token 15
    torch.testing.assert_close(z[0, 1, 0], F.layer_norm(top_left, (192,)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z[0, 1, 15], F.layer_norm(bottom_right, (192,)), rtol=1e-4, atol=1e-4)
    assert pooled.fingerprint() != FrozenEncoder(encoder.vit).fingerprint()


def test_pool_must_divide_the_grid(encoder):
    for pool in (0, 3, 2.0):
        with pytest.raises(ValueError, match="pool must be a positive int dividing the 8x8"):
            FrozenEncoder(encoder.vit, pool=pool)
