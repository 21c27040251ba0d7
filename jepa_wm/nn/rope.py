"""3D rotary position embeddings (time, height, width), as in V-JEPA 2.

V-JEPA 2 splits each attention head into three equal chunks of ``2 * ((head_dim // 3) // 2)``
channels, rotated by a token's time (depth), height and width positions respectively; the
remaining ``head_dim - 3 * axis_dim`` channels are left unrotated. Each chunk uses the
frequencies ``1 / 10000 ** (j / (axis_dim / 2))`` for ``j < axis_dim / 2``.

Two frequency layouts are offered:

- ``"vjepa2"``: exactly what the published code (and Hugging Face's port) computes. The
  frequency vector is *concatenated* with itself (``repeat``) instead of interleaved, so the
  two channels of a rotated pair get different frequencies. It is not a true rotation (norms
  and relative-position invariance hold only approximately), but the official weights were
  trained with it, so it is required to reproduce them.
- ``"standard"``: the textbook RoPE (``repeat_interleave``): both channels of a pair share one
  frequency, so each pair is a 2D rotation, norms are preserved and ``q . k`` depends only on
  position differences along each axis.

A token that only has a time position (an action or proprioception token in V-JEPA 2-AC) is
given height = width = 0: a rotation by angle 0 is the identity, which is exactly how V-JEPA
2-AC leaves the spatial channels of its action tokens unrotated.

Positions are floats, so fractional grid positions (e.g. rescaled to another grid) work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

RopeLayout = Literal["vjepa2", "standard"]
ROPE_LAYOUTS: tuple[str, ...] = get_args(RopeLayout)


def rope_axis_dim(head_dim: int) -> int:
    """Channels per axis (time, height, width) of one head, as V-JEPA 2 computes them."""
    return 2 * ((head_dim // 3) // 2)


@dataclass(frozen=True)
class RopeTable:
    """Cosines and sines for one set of token positions, shared by every attention layer.

    ``cos`` and ``sin`` have shape ``(N, R)`` (same positions for the whole batch) or
    ``(B, 1, N, R)`` (per-sample positions), where ``R = 3 * rope_axis_dim(head_dim)`` is the
    number of rotated channels at the start of each head.
    """

    cos: Tensor  # (N, R) or (B, 1, N, R)
    sin: Tensor  # (N, R) or (B, 1, N, R)
    head_dim: int

    @property
    def rotated_dim(self) -> int:
        return self.cos.shape[-1]

    def rotate(self, x: Tensor) -> Tensor:
        """Rotate the first ``R`` channels of each head of ``x`` (B, heads, N, head_dim)."""
        r = self.rotated_dim
        if x.shape[-1] != self.head_dim or x.shape[-2] != self.cos.shape[-2]:
            raise ValueError(
                f"RoPE table is for {self.cos.shape[-2]} tokens of head_dim {self.head_dim}, "
                f"got input of shape {tuple(x.shape)}"
            )
        x_rot, x_pass = x[..., :r], x[..., r:]  # (B, h, N, R), (B, h, N, hd - R)
        pairs = x_rot.unflatten(-1, (-1, 2))  # (B, h, N, R/2, 2)
        swapped = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (B, h, N, R)
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        return torch.cat((x_rot * cos + swapped * sin, x_pass), dim=-1)


def rope_table(
    positions: Tensor,
    head_dim: int,
    *,
    layout: RopeLayout = "vjepa2",
    base: float = 10000.0,
) -> RopeTable:
    """Build the rotation table for token positions.

    Args:
        positions: (N, 3) or (B, N, 3) float (time, height, width) position of each token.
        head_dim: channels per attention head.
        layout: ``"vjepa2"`` (published V-JEPA 2 weights) or ``"standard"`` (see module doc).
        base: frequency base (10000 in V-JEPA 2).
    """
    if layout not in ROPE_LAYOUTS:
        raise ValueError(f"layout must be one of {ROPE_LAYOUTS}, got {layout!r}")
    if positions.ndim not in (2, 3) or positions.shape[-1] != 3:
        raise ValueError(
            f"positions must have shape (N, 3) or (B, N, 3), got {tuple(positions.shape)}"
        )
    axis_dim = rope_axis_dim(head_dim)
    if axis_dim == 0:
        raise ValueError(f"head_dim must be at least 6 for 3D RoPE, got {head_dim}")
    half = axis_dim // 2
    omega = 1.0 / base ** (
        torch.arange(half, dtype=torch.float32, device=positions.device) / half
    )  # (R/6,)
    angles = positions.float().unsqueeze(-1) * omega  # (..., N, 3, R/6)
    if layout == "vjepa2":
        angles = torch.cat((angles, angles), dim=-1)  # (..., N, 3, R/3): frequencies repeated
    else:
        angles = angles.repeat_interleave(2, dim=-1)  # (..., N, 3, R/3): one frequency per pair
    angles = angles.flatten(-2)  # (..., N, R), chunks ordered time, height, width
    if angles.ndim == 3:
        angles = angles.unsqueeze(1)  # (B, 1, N, R): broadcast over heads
    return RopeTable(cos=angles.cos(), sin=angles.sin(), head_dim=head_dim)


def grid_positions(
    num_frames: int, height: int, width: int, *, device: torch.device | str | None = None
) -> Tensor:
    """(t, h, w) positions of a raster-ordered token grid: (num_frames * height * width, 3)."""
    ids = torch.arange(num_frames * height * width, device=device)
    return token_positions(ids, (height, width))


def token_positions(ids: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """Positions of tokens given their raster indices in a (T, H, W) grid.

    Args:
        ids: (...,) integer token indices (``t * H * W + h * W + w``), e.g. a kept-token mask.
        grid_hw: (H, W) tokens per frame along height and width.

    Returns:
        (..., 3) float positions (t, h, w).
    """
    if ids.dtype.is_floating_point:
        raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
    height, width = grid_hw
    per_frame = height * width
    t = ids // per_frame
    rest = ids - t * per_frame
    h = rest // width
    w = rest - h * width
    return torch.stack((t, h, w), dim=-1).float()  # (..., 3)
