"""3D rotary embeddings: geometric properties and agreement with the published V-JEPA 2 formula."""

import pytest
import torch

from jepa_wm.nn.rope import grid_positions, rope_axis_dim, rope_table, token_positions

HEAD_DIM = 64  # axis dim 20: 60 rotated channels and 4 left as they are


def random_positions(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 16, (n, 3), generator=generator).float()  # (N, 3)


@pytest.mark.parametrize("layout", ["vjepa2", "standard"])
def test_zero_position_is_identity(layout):
    x = torch.randn(2, 3, 5, HEAD_DIM, generator=torch.Generator().manual_seed(0))
    table = rope_table(torch.zeros(5, 3), HEAD_DIM, layout=layout)
    torch.testing.assert_close(table.rotate(x), x)


def test_vjepa2_layout_matches_published_formula_per_axis(published_axis_rotation):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 7, HEAD_DIM, generator=gen)  # (B, heads, N, hd)
    pos = random_positions(7, gen)
    d = rope_axis_dim(HEAD_DIM)
    expected = torch.cat(
        [published_axis_rotation(x[..., i * d : (i + 1) * d], pos[:, i]) for i in range(3)]
        + [x[..., 3 * d :]],
        dim=-1,
    )
    got = rope_table(pos, HEAD_DIM, layout="vjepa2").rotate(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[..., 3 * d :], x[..., 3 * d :])  # leftover channels untouched


def test_vjepa2_layout_is_not_a_pure_rotation():
    """Guards the published quirk: 'fixing' it would silently break the official weights."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 1, 6, HEAD_DIM, generator=gen)
    pos = random_positions(6, gen) + 1.0
    rotated = rope_table(pos, HEAD_DIM, layout="vjepa2").rotate(x)
    assert not torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), rtol=1e-3)


def test_standard_layout_preserves_norms():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 9, HEAD_DIM, generator=gen)
    rotated = rope_table(random_positions(9, gen), HEAD_DIM, layout="standard").rotate(x)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2, None])
def test_standard_layout_scores_depend_only_on_position_differences(axis):
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(1, 2, 8, HEAD_DIM, generator=gen)
    k = torch.randn(1, 2, 8, HEAD_DIM, generator=gen)
    pos_q, pos_k = random_positions(8, gen), random_positions(8, gen)
    shift = torch.zeros(3)
    shift[slice(None) if axis is None else axis] = 5.0

    def scores(pq, pk):
        table_q = rope_table(pq, HEAD_DIM, layout="standard")
        table_k = rope_table(pk, HEAD_DIM, layout="standard")
        return table_q.rotate(q) @ table_k.rotate(k).transpose(-1, -2)  # (1, 2, 8, 8)

    base = scores(pos_q, pos_k)
    torch.testing.assert_close(scores(pos_q + shift, pos_k + shift), base, rtol=1e-4, atol=1e-4)
    # Moving only the queries changes the differences, and the scores follow.
    assert not torch.allclose(scores(pos_q + shift, pos_k), base, atol=1e-2)


def test_per_sample_positions_match_shared_positions():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 2, 4, HEAD_DIM, generator=gen)
    pos = torch.stack([random_positions(4, gen) for _ in range(3)])  # (B, N, 3)
    batched = rope_table(pos, HEAD_DIM).rotate(x)
    for b in range(3):
        torch.testing.assert_close(batched[b], rope_table(pos[b], HEAD_DIM).rotate(x[b : b + 1])[0])


def test_time_only_token_rotates_only_time_channels():
    """AC predictor's action/state tokens: position (t, 0, 0) leaves h, w channels unrotated."""
    x = torch.randn(1, 1, 1, HEAD_DIM, generator=torch.Generator().manual_seed(6))
    d = rope_axis_dim(HEAD_DIM)
    rotated = rope_table(torch.tensor([[3.0, 0.0, 0.0]]), HEAD_DIM).rotate(x)
    torch.testing.assert_close(rotated[..., d:], x[..., d:])
    assert not torch.allclose(rotated[..., :d], x[..., :d])


def test_token_positions_raster_order():
    pos = grid_positions(2, 3, 4)  # (24, 3)
    assert pos.shape == (24, 3)
    assert pos[17].tolist() == [1.0, 1.0, 1.0]  # 17 = 1 * 12 + 1 * 4 + 1
    assert pos[-1].tolist() == [1.0, 2.0, 3.0]
    torch.testing.assert_close(
        token_positions(torch.tensor([[17, 0]]), (3, 4)), pos[[17, 0]].unsqueeze(0)
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="layout"):
        rope_table(torch.zeros(2, 3), HEAD_DIM, layout="interleaved")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        rope_table(torch.zeros(2, 2), HEAD_DIM)
    with pytest.raises(ValueError, match="at least 6"):
        rope_table(torch.zeros(2, 3), 4)
    with pytest.raises(TypeError, match="integer"):
        token_positions(torch.zeros(3), (2, 2))
    with pytest.raises(ValueError, match="for 3 tokens of head_dim 64"):
        rope_table(torch.zeros(3, 3), HEAD_DIM).rotate(torch.zeros(1, 1, 4, HEAD_DIM))
    with pytest.raises(ValueError, match="for 3 tokens of head_dim 64"):
        rope_table(torch.zeros(3, 3), HEAD_DIM).rotate(torch.zeros(1, 1, 3, 48))
