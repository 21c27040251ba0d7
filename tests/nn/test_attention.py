"""RoPE attention and pre-norm blocks: published math, masks, positions travelling with tokens."""

import math

import pytest
import torch

from jepa_wm.nn import Block, RopeAttention, grid_positions, rope_axis_dim, rope_table

DIM, HEADS = 96, 2  # head_dim 48: three 16-channel axis chunks, nothing left over


def reference_attention(
    attn: RopeAttention, x: torch.Tensor, pos: torch.Tensor, rotate_axis
) -> torch.Tensor:
    """V-JEPA 2 RoPE attention written out: fused qkv laid out as (3, heads, head_dim), each
    head split into time/height/width chunks rotated by their own coordinate, then
    softmax(q k^T / sqrt(hd)) v and the output projection."""
    b, n, _ = x.shape
    hd = DIM // HEADS
    d = rope_axis_dim(hd)
    qkv = attn.qkv(x).view(b, n, 3, HEADS, hd)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (B, h, N, hd)

    def rotate(t):
        parts = [rotate_axis(t[..., i * d : (i + 1) * d], pos[:, i]) for i in range(3)]
        return torch.cat(parts + [t[..., 3 * d :]], dim=-1)

    weights = torch.softmax(rotate(q) @ rotate(k).transpose(-1, -2) / math.sqrt(hd), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, DIM)
    return attn.proj(out)


def test_attention_matches_reference_math(published_axis_rotation):
    torch.manual_seed(0)
    attn = RopeAttention(DIM, HEADS)
    x = torch.randn(2, 12, DIM)
    pos = grid_positions(3, 2, 2)  # (12, 3)
    got = attn(x, rope=rope_table(pos, DIM // HEADS))
    torch.testing.assert_close(
        got, reference_attention(attn, x, pos, published_axis_rotation), rtol=1e-4, atol=1e-5
    )


def test_positions_travel_with_tokens():
    """Permuting tokens together with their positions permutes the output the same way."""
    torch.manual_seed(1)
    block = Block(DIM, HEADS)
    x = torch.randn(1, 12, DIM)
    pos = grid_positions(3, 2, 2)
    perm = torch.randperm(12)
    full = block(x, rope=rope_table(pos, DIM // HEADS))
    permuted = block(x[:, perm], rope=rope_table(pos[perm], DIM // HEADS))
    torch.testing.assert_close(permuted, full[:, perm], rtol=1e-4, atol=1e-5)


def test_block_causal_mask_hides_the_future():
    """With a block-causal mask (full within a step, causal across steps) step 0 ignores step 1."""
    torch.manual_seed(2)
    block = Block(DIM, HEADS)
    per_step = 4
    step = torch.arange(2 * per_step) // per_step
    mask = step[:, None] >= step[None, :]  # (N, N) True = may attend
    rope = rope_table(grid_positions(2, 2, 2), DIM // HEADS)
    x = torch.randn(1, 2 * per_step, DIM)
    x_changed = x.clone()
    x_changed[:, per_step:] = torch.randn(1, per_step, DIM)  # change the later step only
    masked, masked_changed = block(x, rope, mask), block(x_changed, rope, mask)
    torch.testing.assert_close(masked[:, :per_step], masked_changed[:, :per_step])
    assert not torch.allclose(masked[:, per_step:], masked_changed[:, per_step:])
    unmasked, unmasked_changed = block(x, rope), block(x_changed, rope)
    assert not torch.allclose(unmasked[:, :per_step], unmasked_changed[:, :per_step])


def test_block_parameter_names_follow_vjepa2():
    names = set(Block(DIM, HEADS, mlp_ratio=48 / 11).state_dict())
    assert names == {
        f"{m}.{p}"
        for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
        for p in ("weight", "bias")
    }
    assert Block(1408, 22, mlp_ratio=48 / 11).mlp.fc1.out_features == 6144  # ViT-g


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        RopeAttention(100, 3)
