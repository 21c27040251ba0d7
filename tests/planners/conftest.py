"""Shared pieces for planner tests: a small action space, quadratic costs, fast planner settings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from planners import ActionSpace, BasePlanner, make_planner

HELD = 0.3  # value of the held dimension 2 in the `space` fixture

# Settings that keep each plan call well under a second on one CPU core.
FAST = {
    "cem": dict(horizon=3, num_samples=300, iterations=10, topk=10),
    "icem": dict(horizon=3, num_samples=200, iterations=8, topk=10),
    "mppi": dict(horizon=3, num_samples=400, iterations=12, noise_std=0.15),
    "gradient": dict(horizon=3, iterations=60, lr=0.1, num_restarts=4),
}


@pytest.fixture
def space() -> ActionSpace:
    """4-D actions; dims 0, 1, 3 planned, dim 2 held at 0.3; box [-1, 1]; L1 ball 1.5 on dims 0, 1."""
    return ActionSpace(dim=4, low=-1.0, high=1.0, planned_dims=(0, 1, 3), held_value=HELD,
                       l1_radius=1.5, l1_dims=(0, 1))


@pytest.fixture
def fast_planner() -> Callable[..., BasePlanner]:
    """``fast_planner(name, space, seed=0, **overrides)``: a planner with quick test settings."""

    def build(name: str, space: ActionSpace, seed: int | None = 0, **overrides) -> BasePlanner:
        return make_planner(name, space, seed=seed, **{**FAST[name], **overrides})

    return build


@pytest.fixture
def quadratic() -> Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """``quadratic(target)``: the cost ``sum_{h, i} (a[b, h, i] - target[h, i])**2`` over ``(B, H, A)``."""

    def make(target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        def cost(actions: torch.Tensor) -> torch.Tensor:
            return (actions - target).square().sum(dim=(1, 2))  # (B,)

        return cost

    return make


@pytest.fixture
def inside_target() -> torch.Tensor:
    """A feasible optimum ``(3, 4)`` for the `space` fixture (held dim at its value)."""
    return torch.tensor([[0.4, -0.3, HELD, 0.5],
                         [-0.2, 0.5, HELD, -0.6],
                         [0.7, 0.1, HELD, 0.0]])
