"""ActionSpace: projection onto box ∩ L1 ball, held dimensions, validation."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from planners import ActionSpace


def _reference_projection(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, radius: float) -> torch.Tensor:
    """Box ∩ L1-ball projection by float64 bisection on the soft threshold (independent check)."""
    cap = torch.where(x >= 0, high, -low)
    mag = x.abs()

    def norm(theta):
        return (mag - theta).clamp(min=0).minimum(cap).sum(-1, keepdim=True)

    lo, hi = torch.zeros_like(mag[:, :1]), mag.amax(-1, keepdim=True)
    for _ in range(200):
        mid = (lo + hi) / 2
        big = norm(mid) > radius
        lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
    outside = norm(torch.zeros_like(lo)) > radius
    return torch.sign(x) * torch.where(outside, (mag - hi).clamp(min=0).minimum(cap), mag.minimum(cap))


def test_projection_is_exact_and_feasible() -> None:
    space = ActionSpace(dim=3, low=(-1.0, -0.5, -1.0), high=(1.0, 0.7, 0.4), l1_radius=1.2)
    x = torch.randn(3000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    y = space.project(x)
    ref = _reference_projection(x, torch.tensor([-1.0, -0.5, -1.0], dtype=torch.float64),
                                torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64), 1.2)
    torch.testing.assert_close(y, ref, atol=1e-9, rtol=0)
    assert space.contains(y, atol=1e-9)
    torch.testing.assert_close(space.project(y), y, atol=1e-9, rtol=0)  # idempotent
    feasible = (x >= -1).all(-1) & (x[:, 1] >= -0.5) & (x[:, 1] <= 0.7) & (x[:, 2] <= 0.4) & (x[:, 0] <= 1)
    feasible &= x.abs().sum(-1) <= 1.2
    assert feasible.any() and (~feasible).any()
    assert torch.equal(y[feasible], x[feasible])  # feasible points do not move
    on_ball = y[~feasible].abs().sum(-1) >= 1.2 - 1e-9
    on_box = (y[~feasible] != x[~feasible]).any(-1)
    assert torch.all(on_ball | on_box)


def test_projection_is_nearest_point() -> None:
    """No random feasible point is closer to x than its projection."""
    space = ActionSpace(dim=2, l1_radius=1.5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200, 2, generator=gen) * 3
    y = space.project(x)
    z = space.project(torch.rand(200, 500, 2, generator=gen) * 2 - 1)  # feasible candidates
    assert torch.all((x - y).norm(dim=-1) <= (x[:, None] - z).norm(dim=-1).amin(-1) + 1e-5)


def test_expand_reduce_and_held_values() -> None:
    space = ActionSpace(dim=7, planned_dims=(6, 0, 1, 2), held_value=(0.1, 0.0, -0.2))
    assert space.planned_dims == (0, 1, 2, 6) and space.held_dims == (3, 4, 5)
    planned = torch.arange(8.0).view(2, 4) / 10  # (2, P)
    full = space.expand(planned)
    assert full.shape == (2, 7)
    torch.testing.assert_close(full[:, [3, 4, 5]], torch.tensor([[0.1, 0.0, -0.2]]).expand(2, 3))
    torch.testing.assert_close(space.reduce(full), planned)
    torch.testing.assert_close(space.default_action(), torch.tensor([0, 0, 0, 0.1, 0.0, -0.2, 0]))
    assert space.contains(full)
    assert not space.contains(full + torch.tensor([0, 0, 0, 0.01, 0, 0, 0]))


def test_expand_is_differentiable() -> None:
    space = ActionSpace(dim=3, planned_dims=(0, 2))
    x = torch.zeros(5, 2, requires_grad=True)
    space.expand(x).sum().backward()
    assert x.grad is not None and torch.all(x.grad == 1)


def test_binary_dims_snap_to_the_nearer_bound_straight_through() -> None:
    space = ActionSpace(dim=3, low=(-1.0, -1.0, 0.0), high=(1.0, 1.0, 2.0), planned_dims=(0, 2), binary_dims=(2,))
    x = torch.tensor([[0.3, 0.9], [-0.2, 1.2], [0.5, 1.0]], requires_grad=True)  # (3, P); midpoint of dim 2: 1.0
    full = space.expand(x)
    torch.testing.assert_close(full[:, 2], torch.tensor([0.0, 2.0, 2.0]))  # snapped, a tie goes to high
    torch.testing.assert_close(full[:, 0], x[:, 0].detach())  # continuous dims untouched
    (full * torch.tensor([1.0, 0.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[1.0, 3.0]] * 3))  # gradients pass as if unsnapped
    assert space.contains(full)
    assert not space.contains(full.detach() + torch.tensor([0.0, 0.0, -0.5]))  # 1.5 is not a command


def test_accepts_omegaconf_lists() -> None:
    cfg = OmegaConf.create({"planned_dims": [0, 1, 2, 6], "l1_dims": [0, 1, 2], "low": [-1] * 7})
    space = ActionSpace(dim=7, planned_dims=cfg.planned_dims, l1_dims=cfg.l1_dims, low=cfg.low, l1_radius=1.5)
    assert space.planned_dims == (0, 1, 2, 6) and space.low == (-1.0,) * 7
    hash(space)  # frozen and hashable after normalisation


@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=0), "dim"),
    (dict(dim=2, low=1.0, high=0.0), "low must be <= high"),
    (dict(dim=2, low=(-1.0,)), "low must have 2 entries"),
    (dict(dim=3, planned_dims=(0, 3)), "planned_dims"),
    (dict(dim=3, planned_dims=()), "at least one"),
    (dict(dim=3, planned_dims=(0,), held_value=2.0), "outside"),
    (dict(dim=3, planned_dims=(0, 1), l1_radius=1.0, l1_dims=(2,)), "must all be planned"),
    (dict(dim=2, low=0.1, l1_radius=1.0), "contain 0"),
    (dict(dim=2, l1_radius=-1.0), "l1_radius"),
    (dict(dim=3, planned_dims=(0, 1), binary_dims=(2,)), "binary_dims .* must all be planned"),
    (dict(dim=3, l1_radius=1.0, l1_dims=(0, 1), binary_dims=(1,)), "outside the L1 ball"),
])
def test_invalid_spaces_raise(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ActionSpace(**kwargs)
