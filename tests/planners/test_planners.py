"""Every planner against known costs: it drives a quadratic down, respects the bounds and held
dimensions, repeats with a seed, evaluates in chunks, and uses the initial mean (the time budget:
test_deadline.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from planners import PlanResult, available_planners

NAMES = available_planners()


@pytest.mark.parametrize("name", NAMES)
def test_drives_quadratic_to_its_minimum(name, space, fast_planner, quadratic, inside_target) -> None:
    cost = quadratic(inside_target)
    planner = fast_planner(name, space)
    result = planner.plan(cost)
    assert isinstance(result, PlanResult)
    start = float(cost(space.default_action().expand(1, 3, 4)))
    assert result.actions.shape == (3, 4)
    assert result.cost == pytest.approx(float(cost(result.actions[None])), abs=1e-6)
    assert result.cost < 0.02, result.cost
    assert result.cost < 0.01 * start
    assert len(result.history["best"]) == len(result.history["mean"]) == result.iterations == planner.config.iterations
    assert result.history["best"][-1] < result.history["best"][0]


@pytest.mark.parametrize("name", NAMES)
def test_minimiser_outside_bounds_ends_on_boundary(name, space, fast_planner, quadratic) -> None:
    """Target (2, 1) on the L1 dims, 1.5 on a boxed dim, 0.9 on the held dim: the optimum is
    the projection (1, 0.5) / 1.0, and dim 2 must stay at its held value throughout."""
    held = space.held_value[0]
    target = torch.tensor([2.0, 1.0, 0.9, 1.5]).expand(3, 4)
    base_cost = quadratic(target)
    seen_infeasible = []

    def cost(actions: torch.Tensor) -> torch.Tensor:
        seen_infeasible.append(not space.contains(actions))
        return base_cost(actions)

    result = fast_planner(name, space).plan(cost)
    assert not any(seen_infeasible), "a candidate left the feasible set"
    assert space.contains(result.actions)
    assert torch.all(result.actions[:, 2] == held)
    l1 = result.actions[:, :2].abs().sum(-1)
    assert torch.all(l1 > 1.5 - 0.05), l1  # on the ball's surface
    expected = torch.tensor([1.0, 0.5, held, 1.0]).expand(3, 4)
    torch.testing.assert_close(result.actions, expected, atol=0.1, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_binary_dims_are_planned_as_commands(name, space, fast_planner, quadratic, inside_target) -> None:
    """Dim 3 as an on/off command: every scored candidate has it at -1 or 1, and the plan picks
    the command nearer the cost's optimum (0.5, -0.6, 0.0 -> 1, -1, 1: a tie snaps to high)."""
    binary = dataclasses.replace(space, binary_dims=(3,))
    base_cost = quadratic(inside_target)
    seen = []

    def cost(actions: torch.Tensor) -> torch.Tensor:
        seen.append(binary.contains(actions))
        return base_cost(actions)

    result = fast_planner(name, binary).plan(cost)
    assert all(seen) and binary.contains(result.actions)
    torch.testing.assert_close(result.actions[:2, 3], torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(result.actions[:, :2], inside_target[:, :2], atol=0.1, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_runs_repeat_and_seeds_differ(name, space, fast_planner, quadratic, inside_target) -> None:
    cost = quadratic(inside_target)
    first = fast_planner(name, space, seed=3, iterations=3).plan(cost)
    again = fast_planner(name, space, seed=3, iterations=3).plan(cost)
    other = fast_planner(name, space, seed=4, iterations=3).plan(cost)
    assert torch.equal(first.actions, again.actions)
    assert first.history == again.history
    assert first.history["mean"] != other.history["mean"]
    if name != "gradient":  # its first restart starts at the mean whatever the seed, and may win
        assert not torch.equal(first.actions, other.actions)


@pytest.mark.parametrize("name", NAMES)
def test_chunked_evaluation_matches_and_bounds_batches(name, space, fast_planner, quadratic, inside_target) -> None:
    base_cost = quadratic(inside_target)
    batches = []

    def cost(actions: torch.Tensor) -> torch.Tensor:
        batches.append(actions.shape[0])
        return base_cost(actions)

    whole = fast_planner(name, space, iterations=3).plan(base_cost)
    chunked = fast_planner(name, space, iterations=3, chunk_size=3).plan(cost)
    assert max(batches) <= 3
    torch.testing.assert_close(chunked.actions, whole.actions)


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_initial_mean_is_used(name, space, fast_planner, quadratic, inside_target) -> None:
    """One short iteration with a tiny spread stays near the initial mean."""
    cost = quadratic(inside_target)
    spread = {"cem": dict(init_std=0.01), "mppi": dict(noise_std=0.01)}[name]
    planner = fast_planner(name, space, iterations=1, **spread)
    assert planner.plan(cost, init_mean=inside_target).cost < 1e-2
    assert planner.plan(cost).cost > 0.5


def test_cem_can_return_best_sample(space, fast_planner, quadratic, inside_target) -> None:
    cost = quadratic(inside_target)
    result = fast_planner("cem", space, iterations=2, return_best=True).plan(cost)
    assert result.cost == pytest.approx(min(result.history["best"]))


def test_gradient_planner_needs_a_differentiable_cost(space, fast_planner, quadratic, inside_target) -> None:
    cost = quadratic(inside_target)

    def no_grad_cost(actions: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return cost(actions)

    def numpy_cost(actions: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(cost(actions).detach().numpy())

    planner = fast_planner("gradient", space)
    for bad in (no_grad_cost, numpy_cost):
        with pytest.raises(ValueError, match="differentiable"):
            planner.plan(bad)


def test_gradient_planner_leaves_model_parameters_alone(space, fast_planner, inside_target) -> None:
    """Gradients are taken w.r.t. actions only: a module in the cost collects no .grad."""
    layer = torch.nn.Linear(4, 4)

    def cost(actions: torch.Tensor) -> torch.Tensor:
        return (layer(actions) - inside_target).square().sum(dim=(1, 2))

    fast_planner("gradient", space, iterations=3).plan(cost)
    assert all(p.grad is None for p in layer.parameters())


def test_bad_cost_outputs_and_init_means_raise(space, fast_planner, inside_target) -> None:
    planner = fast_planner("cem", space, iterations=1)
    with pytest.raises(ValueError, match="one cost per candidate"):
        planner.plan(lambda a: a.sum(-1))  # (B, H) instead of (B,)
    with pytest.raises(TypeError, match="torch.Tensor"):
        planner.plan(lambda a: a.sum((1, 2)).numpy())
    with pytest.raises(ValueError, match="init_mean must have shape"):
        planner.plan(lambda a: a.sum((1, 2)), init_mean=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="callable"):
        planner.plan(None)


def test_nan_costs_are_never_chosen(space, fast_planner, quadratic, inside_target) -> None:
    """Candidates whose cost is NaN count as infinitely bad."""
    base_cost = quadratic(inside_target)

    def cost(actions: torch.Tensor) -> torch.Tensor:
        c = base_cost(actions)
        return torch.where(actions[:, 0, 0] < 0, torch.nan, c)

    result = fast_planner("cem", space, return_best=True).plan(cost)
    assert result.actions[0, 0] >= 0 and result.cost < 0.05


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_nan_half_space_is_avoided(name, space, fast_planner, quadratic, inside_target) -> None:
    base_cost = quadratic(inside_target)
    result = fast_planner(name, space).plan(lambda a: torch.where(a[:, 0, 0] < 0, torch.nan, base_cost(a)))
    assert result.actions[0, 0] >= 0 and result.cost < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_all_failed_candidates_give_a_finite_plan_in_bounds(name, space, fast_planner) -> None:
    """A world model that fails on every candidate (NaN) must not crash the planner or return NaN."""
    result = fast_planner(name, space).plan(lambda a: torch.full(a.shape[:1], torch.nan) + 0 * a.sum((1, 2)))
    assert torch.isfinite(result.actions).all() and space.contains(result.actions)
    assert result.cost == float("inf")


def test_planning_follows_the_cost_device(space, fast_planner, quadratic, inside_target) -> None:
    cost = quadratic(inside_target)
    cost.device = torch.device("cpu")
    assert fast_planner("cem", space, iterations=1).plan(cost).actions.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_plans_on_the_cost_device_cuda(name, space, fast_planner, quadratic, inside_target) -> None:
    target = inside_target.cuda()
    cost = quadratic(target)
    cost.device = target.device
    first = fast_planner(name, space).plan(cost)
    again = fast_planner(name, space).plan(cost)
    assert first.actions.device.type == "cuda"
    assert first.cost < 0.02
    assert torch.equal(first.actions, again.actions)
