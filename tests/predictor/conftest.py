"""Tiny predictors and clips for the predictor tests (CPU, milliseconds each)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from jepa_wm.predictor import ACPredictor, PredictorConfig

EMBED_DIM = 16
GRID_HW = (2, 3)  # 6 patch tokens per frame

Clip = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _tiny_config(**overrides) -> PredictorConfig:
    settings = dict(embed_dim=EMBED_DIM, grid_hw=GRID_HW, predictor_embed_dim=24, depth=2, num_heads=2)
    return PredictorConfig(**{**settings, **overrides})


def _random_clip(batch: int, frames: int, seed: int = 0) -> Clip:
    generator = torch.Generator().manual_seed(seed)
    n = GRID_HW[0] * GRID_HW[1]
    z = torch.randn(batch, frames, n, EMBED_DIM, generator=generator)
    actions = torch.rand(batch, frames, 7, generator=generator) * 2 - 1
    states = torch.randn(batch, frames, 7, generator=generator) * 0.1
    return z, actions, states


@pytest.fixture
def tiny_config() -> Callable[..., PredictorConfig]:
    """``(**overrides) -> PredictorConfig``: 16-wide encoder tokens on a 2x3 grid, width 24, depth 2."""
    return _tiny_config


@pytest.fixture
def random_clip() -> Callable[..., Clip]:
    """``(batch, frames, seed=0) -> (z (B, T, 6, 16), actions (B, T, 7), states (B, T, 7))``."""
    return _random_clip


@pytest.fixture
def predictor() -> ACPredictor:
    torch.manual_seed(0)
    return ACPredictor(_tiny_config()).eval()
