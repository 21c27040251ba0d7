"""iCEM's own parts (coloured noise, population decay, carried elites) and the warm-start shift."""

from __future__ import annotations

import torch

from planners import ActionSpace, ICEMConfig, colored_noise, shift_plan
from planners.base import Search


def _search(seed: int = 0) -> Search:
    return Search(lambda a: a.sum((1, 2)), ActionSpace(dim=2), chunk_size=None, deadline=None,
                  generator=torch.Generator().manual_seed(seed), device=torch.device("cpu"))


def _lag1_autocorrelation(x: torch.Tensor) -> float:
    """Mean lag-1 autocorrelation along time of ``(num, H, dims)`` series."""
    x = x - x.mean(dim=1, keepdim=True)
    return float((x[:, 1:] * x[:, :-1]).sum() / (x * x).sum())


def test_colored_noise_has_unit_variance_and_is_smooth() -> None:
    white = colored_noise(_search(), 4000, 16, 2, beta=0.0)
    pink = colored_noise(_search(), 4000, 16, 2, beta=2.0)
    assert white.shape == pink.shape == (4000, 16, 2)
    assert abs(float(pink.std()) - 1.0) < 0.25
    assert abs(_lag1_autocorrelation(white)) < 0.1
    assert _lag1_autocorrelation(pink) > 0.5
    assert colored_noise(_search(), 5, 1, 3, beta=2.0).shape == (5, 1, 3)  # horizon 1: white


def test_population_decay() -> None:
    cfg = ICEMConfig(num_samples=100, topk=10, population_decay=1.25, keep_elites_frac=0.3)
    assert [cfg.population(i) for i in range(4)] == [100, 80, 64, 51]
    assert ICEMConfig(num_samples=30, topk=10).population(3) == 20  # never below 2 * topk
    assert cfg.num_kept == 3


def test_icem_carries_elites_into_the_next_call(space, fast_planner, quadratic, inside_target) -> None:
    """Population sizes show the kept elites: +3 from the 2nd iteration on, +1 for the mean in
    the last; after advance() the shifted elites of the last call join the first iteration."""
    sizes = []
    base_cost = quadratic(inside_target)

    def cost(actions: torch.Tensor) -> torch.Tensor:
        sizes.append(actions.shape[0])
        return base_cost(actions)

    planner = fast_planner("icem", space, num_samples=100, iterations=3, population_decay=1.25)
    planner.plan(cost)
    assert sizes[:3] == [100, 80 + 3, 64 + 3 + 1]
    sizes.clear()
    planner.advance(1)
    planner.plan(cost)
    assert sizes[0] == 100 + 3
    sizes.clear()
    planner.advance(3)  # the whole horizon executed: nothing left to carry
    planner.plan(cost)
    assert sizes[0] == 100
    sizes.clear()
    planner.reset()
    planner.plan(cost)
    assert sizes[0] == 100


def test_shift_plan() -> None:
    plan = torch.arange(12.0).view(4, 3)  # (H=4, A=3)
    shifted = shift_plan(plan, 1)
    torch.testing.assert_close(shifted[:3], plan[1:])
    torch.testing.assert_close(shifted[3], plan[3])  # repeats the last action
    filled = shift_plan(plan, 2, fill=torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(filled, torch.tensor([[6.0, 7, 8], [9, 10, 11], [-1, 0, 1], [-1, 0, 1]]))
    torch.testing.assert_close(shift_plan(plan, 0), plan)
    torch.testing.assert_close(shift_plan(plan, 9, fill=torch.zeros(3)), torch.zeros(4, 3))
