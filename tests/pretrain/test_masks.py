"""Multi-block masks: partition of the grid, block shapes, ratios, batching, determinism."""

from __future__ import annotations

import pytest
import torch

from jepa_wm.pretrain import LONG_RANGE, SHORT_RANGE, VJEPA2_SPECS, BlockMaskSpec, MultiBlockMasker

GRID = (2, 8, 8)


def test_pairs_have_batch_shapes_and_valid_disjoint_indices() -> None:
    masker = MultiBlockMasker(GRID, VJEPA2_SPECS)
    pairs = masker(6, torch.Generator().manual_seed(0))
    assert len(pairs) == 2
    for pair in pairs:
        assert pair.context.shape[0] == pair.target.shape[0] == 6
        assert pair.context.dtype == pair.target.dtype == torch.int64
        assert pair.context.shape[1] >= 1 and pair.target.shape[1] >= 1
        for ctx, tgt in zip(pair.context, pair.target):
            assert int(ctx.min()) >= 0 and int(tgt.max()) < masker.num_tokens
            assert len(set(ctx.tolist())) == len(ctx) and len(set(tgt.tolist())) == len(tgt)
            assert not set(ctx.tolist()) & set(tgt.tolist())
            assert torch.equal(ctx, ctx.sort().values)


@pytest.mark.parametrize("spec", [SHORT_RANGE, LONG_RANGE])
def test_boolean_masks_partition_the_grid_and_keep_context(spec: BlockMaskSpec) -> None:
    masker = MultiBlockMasker(GRID, [spec])
    masked = masker.sample_masked(spec, 32, torch.Generator().manual_seed(1))
    assert masked.shape == (32, *GRID)
    flat = masked.flatten(1)
    context = [set(torch.nonzero(~row).squeeze(1).tolist()) for row in flat]
    target = [set(torch.nonzero(row).squeeze(1).tolist()) for row in flat]
    for c, t in zip(context, target):
        assert c | t == set(range(masker.num_tokens)) and not c & t and c
    # the batch's index lists are random subsets of these, cut to the smallest size
    pair = masker(32, torch.Generator().manual_seed(1))[0]
    assert pair.context.shape[1] == min(len(c) for c in context)
    assert pair.target.shape[1] == min(len(t) for t in target)
    for row, c in zip(pair.context, context):
        assert set(row.tolist()) <= c


def test_single_block_is_a_rectangle_spanning_all_time_steps() -> None:
    spec = BlockMaskSpec(spatial_scale=(0.2, 0.4), aspect_ratio=(0.5, 2.0), num_blocks=1)
    masker = MultiBlockMasker((3, 8, 8), [spec])
    masked = masker.sample_masked(spec, 20, torch.Generator().manual_seed(2))
    for sample in masked:
        assert torch.equal(sample[0], sample[1]) and torch.equal(sample[0], sample[2])  # all of time
        rows = torch.nonzero(sample[0].any(dim=1)).squeeze(1)
        cols = torch.nonzero(sample[0].any(dim=0)).squeeze(1)
        h, w = len(rows), len(cols)
        assert int(rows[-1] - rows[0]) + 1 == h and int(cols[-1] - cols[0]) + 1 == w  # contiguous
        assert int(sample[0].sum()) == h * w  # a full rectangle
        ratio = h * w / 64
        # block area is the spatial scale up to rounding the two sides (+-0.5 token each)
        assert 0.2 - (h + w) / 2 / 64 <= ratio <= 0.4 + (h + w + 1) / 2 / 64


def test_block_size_respects_the_spec_bounds() -> None:
    masker = MultiBlockMasker((4, 16, 16))
    spec = BlockMaskSpec(spatial_scale=(0.1, 0.3), temporal_scale=(0.5, 1.0), aspect_ratio=(0.75, 1.5))
    generator = torch.Generator().manual_seed(3)
    for _ in range(200):
        t, h, w = masker.block_size(spec, generator)
        assert 2 <= t <= 4
        assert abs(h * w / 256 - 0.2) <= 0.1 + (h + w + 1) / 2 / 256
        assert 0.75 * (w - 1) / (w + 1) <= h / w <= 1.5 * (w + 1) / (w - 1) if w > 1 else True


def test_masks_are_reproducible_from_the_generator_seed() -> None:
    masker = MultiBlockMasker(GRID)
    first = masker(4, torch.Generator().manual_seed(7))
    again = masker(4, torch.Generator().manual_seed(7))
    other = masker(4, torch.Generator().manual_seed(8))
    assert all(torch.equal(a.target, b.target) for a, b in zip(first, again))
    assert not all(torch.equal(a.target, b.target) for a, b in zip(first, other))


def test_invalid_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="spatial_scale"):
        BlockMaskSpec(spatial_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="num_blocks"):
        BlockMaskSpec(num_blocks=0)
    with pytest.raises(ValueError, match="grid"):
        MultiBlockMasker((2, 8))
    full = BlockMaskSpec(spatial_scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0), num_blocks=1)
    with pytest.raises(RuntimeError, match="masks every token"):
        MultiBlockMasker(GRID, [full])(1, torch.Generator().manual_seed(0))
