"""Fixtures for the shared layers' tests."""

from collections.abc import Callable

import pytest
import torch


def _published_axis_rotation(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The published V-JEPA 2 rotation of one axis chunk, written channel by channel.

    Channel c uses frequency omega[c mod d/2] (the frequency vector is repeated, not
    interleaved); pairs (2i, 2i+1) are mixed as x_2i cos - x_2i+1 sin and x_2i+1 cos + x_2i sin.
    """
    d = x.shape[-1]
    half = d // 2
    omega = 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    angle = pos.double()[..., None] * omega[torch.arange(d) % half]  # (..., N, d)
    x = x.double()
    out = torch.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * angle[..., 0::2].cos() - x[..., 1::2] * angle[..., 0::2].sin()
    out[..., 1::2] = x[..., 1::2] * angle[..., 1::2].cos() + x[..., 0::2] * angle[..., 1::2].sin()
    return out.float()


@pytest.fixture
def published_axis_rotation() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x (..., N, d), pos (N,)) -> x rotated as the published V-JEPA 2 code does for one axis."""
    return _published_axis_rotation
