"""Multi-block spatio-temporal masks of V-JEPA (``src/masks/multiseq_multiblock3d.py``).

Tokens form a ``(T', H', W')`` grid (tubelets x patch rows x patch columns), indexed in
raster order ``t * H' * W' + h * W' + w`` like the encoder's tokens. For one
:class:`BlockMaskSpec`:

1. one block size ``(t, h, w)`` is drawn per batch: ``t = max(1, int(T' * temporal_scale))``,
   a spatial area ``int(H' * W' * spatial_scale)`` shaped by an aspect ratio ``h / w``;
2. for every sample, ``num_blocks`` blocks of that size are placed uniformly at random
   (they may overlap); a block is contiguous in height and width and covers ``t``
   consecutive tubelets (all of them with the V-JEPA 2 default ``temporal_scale = 1``);
3. the union of the blocks is the *target* (masked) set, its complement the *context*
   (visible) set; samples whose context would be empty are redrawn.

The per-sample boolean masks partition the grid exactly. To stack a batch, every sample's
context and target index lists are cut to the smallest size in the batch. V-JEPA keeps the
first indices, which always drops the last tubelets' tokens; here a uniformly random subset
is kept (sorted), so no time step is favoured. Everything is drawn from one explicit
``torch.Generator``, so masks depend only on its seed (reproducible across resumption).

V-JEPA 2 pretrains with two specs per batch: 8 blocks of 15% ("short range") and 2 blocks
of 70% ("long range"), aspect ratio in [0.75, 1.5], full temporal extent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

_MAX_REDRAWS = 100


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low < value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} < min <= max <= {high}, got {value}")


@dataclass(frozen=True)
class BlockMaskSpec:
    """One family of block masks.

    Args:
        spatial_scale: (min, max) fraction of a frame's tokens covered by ONE block.
        temporal_scale: (min, max) fraction of the tubelets a block spans.
        aspect_ratio: (min, max) block height / width.
        num_blocks: blocks per sample; their union is masked.
    """

    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    num_blocks: int = 8

    def __post_init__(self) -> None:
        for name in ("spatial_scale", "temporal_scale", "aspect_ratio"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        _check_range("spatial_scale", self.spatial_scale, 0.0, 1.0)
        _check_range("temporal_scale", self.temporal_scale, 0.0, 1.0)
        _check_range("aspect_ratio", self.aspect_ratio, 0.0, math.inf)
        if not isinstance(self.num_blocks, int) or self.num_blocks < 1:
            raise ValueError(f"num_blocks must be an int >= 1, got {self.num_blocks!r}")


SHORT_RANGE = BlockMaskSpec(spatial_scale=(0.15, 0.15), num_blocks=8)
LONG_RANGE = BlockMaskSpec(spatial_scale=(0.7, 0.7), num_blocks=2)
VJEPA2_SPECS: tuple[BlockMaskSpec, ...] = (SHORT_RANGE, LONG_RANGE)


@dataclass(frozen=True)
class MaskPair:
    """Token indices of one spec for a batch: ``context`` (B, Kc) visible, ``target`` (B, Kt) masked."""

    context: Tensor  # (B, Kc) int64, sorted per row
    target: Tensor  # (B, Kt) int64, sorted per row

    def to(self, device: torch.device | str) -> MaskPair:
        """The pair on ``device``."""
        return MaskPair(self.context.to(device), self.target.to(device))


def _uniform(generator: torch.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return low + float(torch.rand(1, generator=generator)) * (high - low)


def _randint(generator: torch.Generator, high: int) -> int:
    """Uniform integer in ``[0, high)``."""
    return int(torch.randint(high, (1,), generator=generator))


class MultiBlockMasker:
    """Draws V-JEPA multi-block masks for a token grid.

    Args:
        grid: ``(T', H', W')`` tokens along time (tubelets), height and width.
        specs: one :class:`BlockMaskSpec` per (context, target) pair drawn for each batch.
    """

    def __init__(self, grid: tuple[int, int, int], specs: Sequence[BlockMaskSpec] = VJEPA2_SPECS) -> None:
        if len(grid) != 3 or not all(isinstance(g, int) and g > 0 for g in grid):
            raise ValueError(f"grid must be three positive ints (T', H', W'), got {grid!r}")
        if not specs or not all(isinstance(s, BlockMaskSpec) for s in specs):
            raise TypeError(f"specs must be a non-empty sequence of BlockMaskSpec, got {specs!r}")
        self.grid = tuple(grid)
        self.specs = tuple(specs)

    @property
    def num_tokens(self) -> int:
        duration, height, width = self.grid
        return duration * height * width

    def block_size(self, spec: BlockMaskSpec, generator: torch.Generator) -> tuple[int, int, int]:
        """Draw one block size ``(t, h, w)`` for ``spec`` (as V-JEPA's ``_sample_block_size``)."""
        duration, height, width = self.grid
        t = max(1, int(duration * _uniform(generator, spec.temporal_scale)))
        area = height * width * _uniform(generator, spec.spatial_scale)
        ratio = _uniform(generator, spec.aspect_ratio)
        h = min(height, max(1, round(math.sqrt(area * ratio))))
        w = min(width, max(1, round(math.sqrt(area / ratio))))
        return t, h, w

    def sample_masked(self, spec: BlockMaskSpec, batch_size: int, generator: torch.Generator) -> Tensor:
        """Boolean masks of one spec: (B, T', H', W'), True = masked (target) token.

        Every sample has at least one visible token.
        """
        duration, height, width = self.grid
        t, h, w = self.block_size(spec, generator)
        masked = torch.zeros(batch_size, duration, height, width, dtype=torch.bool)
        for i in range(batch_size):
            for _ in range(_MAX_REDRAWS):
                masked[i] = False
                for _ in range(spec.num_blocks):
                    t0 = _randint(generator, duration - t + 1)
                    h0 = _randint(generator, height - h + 1)
                    w0 = _randint(generator, width - w + 1)
                    masked[i, t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
                if not bool(masked[i].all()):
                    break
            else:
                raise RuntimeError(
                    f"{spec} masks every token of a {self.grid} grid {_MAX_REDRAWS} times in a row; "
                    "lower spatial_scale, temporal_scale or num_blocks"
                )
        return masked

    def _stack(self, rows: list[Tensor], generator: torch.Generator) -> Tensor:
        """Cut each index row to the shortest row's length (random kept subset), stack: (B, K)."""
        keep = min(len(r) for r in rows)
        kept = [
            r if len(r) == keep else r[torch.randperm(len(r), generator=generator)[:keep]].sort().values
            for r in rows
        ]
        return torch.stack(kept)

    def __call__(self, batch_size: int, generator: torch.Generator) -> list[MaskPair]:
        """One :class:`MaskPair` per spec for a batch of ``batch_size`` clips."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pairs = []
        for spec in self.specs:
            masked = self.sample_masked(spec, batch_size, generator).flatten(1)  # (B, N)
            context = [torch.nonzero(~row).squeeze(1) for row in masked]
            target = [torch.nonzero(row).squeeze(1) for row in masked]
            pairs.append(MaskPair(self._stack(context, generator), self._stack(target, generator)))
        return pairs
