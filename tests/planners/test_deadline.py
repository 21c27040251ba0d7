"""The time budget is a deadline: chunk sizing (planners.deadline) and every planner against slow costs.

Timing bounds are generous (the budget plus 0.5 s, where the search without a deadline would take
several seconds), so the tests hold on a loaded machine; the overshoot figures themselves come from
experiments/benchmark_deadline.py.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from planners import available_planners
from planners.deadline import ChunkTimes, DeadlineReached

NAMES = available_planners()
SLACK_S = 0.5


class SlowCost:
    """The quadratic toward ``target`` ``(H, A)`` that sleeps ``per_call + per_candidate * B`` seconds
    per call (only in calls with gradients when ``grad_only``); it keeps every cost it returned."""

    def __init__(self, target: torch.Tensor, per_candidate: float = 0.0, per_call: float = 0.0,
                 grad_only: bool = False) -> None:
        self.target, self.per_candidate, self.per_call, self.grad_only = target, per_candidate, per_call, grad_only
        self.costs: list[torch.Tensor] = []
        self.batches: list[int] = []

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        if actions.requires_grad or not self.grad_only:
            time.sleep(self.per_call + self.per_candidate * actions.shape[0])
        cost = (actions - self.target).square().sum(dim=(1, 2))  # (B,)
        self.costs.append(cost.detach().clone())
        self.batches.append(actions.shape[0])
        return cost

    def lowest(self) -> float:
        """The lowest cost it returned."""
        return float(torch.cat(self.costs).min())


def test_chunk_times_fit_an_overhead_and_a_time_per_candidate() -> None:
    times = ChunkTimes(skip_first=False)
    assert times.predict(1) is None and times.largest_within(1.0, 100) == 0
    for size in (1, 2, 4):  # 0.25 s per call + 0.5 s per candidate
        times.add(size, 0.25 + 0.5 * size)
    assert times.predict(10) == pytest.approx(5.25)
    assert times.largest_within(5.25, 100) == 10
    assert times.largest_within(5.25, 7) == 7
    assert times.largest_within(0.7, 100) == 0


def test_chunk_times_are_cautious_on_a_noisy_machine_and_see_pure_overhead() -> None:
    noisy = ChunkTimes(skip_first=False)
    for seconds in [1.0] * 8 + [2.0] * 2:  # one call in five twice as slow
        noisy.add(1, seconds)
    assert noisy.predict(1) == pytest.approx(2.0)  # without the slowest: the fit (10 / 9 s) times 2 / (10 / 9)
    stalled = ChunkTimes(skip_first=False)
    for seconds in [0.01] * 29 + [0.5] * 3:  # three stalls in 32 chunks are left out of the fit
        stalled.add(1, seconds)
    assert stalled.predict(1) == pytest.approx(0.01)
    slowing = ChunkTimes(skip_first=False)
    for size in [1, 10] * 5:  # 0.01 s per candidate
        slowing.add(size, 0.01 * size)
    assert slowing.largest_within(0.1, 100) == 10
    slowing.add(10, 0.4)  # the latest chunk took four times its prediction: the next one is four times smaller,
    assert slowing.largest_within(0.1, 100) == 2
    assert slowing.predict(1) == pytest.approx(0.01)  # but the search goes on (one candidate still fits)
    overhead = ChunkTimes(skip_first=False)
    for size in (1, 5, 10, 20):
        overhead.add(size, 0.1)
    assert overhead.predict(1000) == pytest.approx(0.1) and overhead.largest_within(0.2, 50) == 50


def test_the_first_timing_is_left_out_and_old_ones_are_forgotten() -> None:
    times = ChunkTimes(max_age_s=0.2)
    times.add(1, 30.0)  # the first chunk: lazy initialisation
    assert times.predict(1) is None
    times.add(1, 0.01)
    assert times.predict(1) == pytest.approx(0.01)
    time.sleep(0.3)
    assert times.predict(1) is None  # too old: the next chunk is a probe again


def test_next_chunk_probes_fits_half_the_time_left_and_stops() -> None:
    times = ChunkTimes(skip_first=False)
    assert times.next_chunk(50, time.perf_counter() + 100) == 1  # nothing known yet: one candidate
    times.add(4, 2.0)  # 0.5 s per candidate
    assert times.next_chunk(50, time.perf_counter() + 100) == 50  # all wanted fit in half the time left
    assert times.next_chunk(500, time.perf_counter() + 100) in (99, 100)  # half of 100 s at 0.5 s per candidate
    assert times.next_chunk(50, time.perf_counter() + 0.8) == 1  # less than half left: one candidate may use it all
    for deadline in (time.perf_counter() + 0.3, time.perf_counter() - 1):  # not even one fits; or past
        with pytest.raises(DeadlineReached):
            times.next_chunk(50, deadline)


@pytest.mark.parametrize("name", NAMES)
def test_each_planner_returns_its_best_so_far_by_the_deadline(name, space, fast_planner, inside_target) -> None:
    """5 ms per candidate: without a budget these searches take 5-20 s; with 0.2 s each call ends in time
    (the first call of a planner included) with the cheapest candidate it evaluated, feasible and finite."""
    budget = 0.2
    more = {"num_restarts": 16} if name == "gradient" else {}
    planner = fast_planner(name, space, time_budget_s=budget, **more)
    for _ in range(2):
        cost = SlowCost(inside_target, per_candidate=0.005)
        start = time.perf_counter()
        result = planner.plan(cost)
        wall = time.perf_counter() - start
        assert wall < budget + SLACK_S
        assert result.timed_out and result.iterations < planner.config.iterations
        assert len(result.history["best"]) == result.iterations
        assert result.evaluated == sum(cost.batches) >= 1
        assert torch.isfinite(result.actions).all() and space.contains(result.actions)
        assert result.cost == cost.lowest()  # the best of what it evaluated ...
        assert result.cost == pytest.approx(float(cost(result.actions[None])), abs=1e-6)  # ... and it is this plan


def test_gradient_planner_honours_the_deadline_in_its_gradient_evaluations(space, fast_planner,
                                                                          inside_target) -> None:
    """Only the evaluations with gradients are slow (4 ms per candidate: 13 s without a budget)."""
    planner = fast_planner("gradient", space, num_restarts=16, iterations=200, time_budget_s=0.2)
    cost = SlowCost(inside_target, per_candidate=0.004, grad_only=True)
    start = time.perf_counter()
    result = planner.plan(cost)
    assert time.perf_counter() - start < 0.2 + SLACK_S
    assert result.timed_out and 0 < result.evaluated and space.contains(result.actions)
    assert result.cost == cost.lowest()


@pytest.mark.parametrize("name", NAMES)
def test_no_room_for_one_candidate_returns_the_initial_mean_unevaluated(name, space, fast_planner,
                                                                        inside_target) -> None:
    """A cost call takes 0.3 s against a 0.1 s budget: the first two calls learn it from their single-candidate
    probes (the first one's time is not used); from then on a call returns the initial mean at once, with
    cost inf and nothing evaluated."""
    planner = fast_planner(name, space, time_budget_s=0.1)
    cost = SlowCost(inside_target, per_call=0.3)
    for _ in range(2):
        probed = planner.plan(cost)
        assert probed.timed_out and probed.evaluated == 1 and probed.iterations == 0
        assert math.isfinite(probed.cost) and probed.cost == float(cost.costs[-1][0])
    start = time.perf_counter()
    unevaluated = planner.plan(cost, init_mean=inside_target)
    assert time.perf_counter() - start < 0.1 + SLACK_S
    assert unevaluated.timed_out and unevaluated.evaluated == 0 and unevaluated.iterations == 0
    assert unevaluated.cost == math.inf and cost.batches == [1, 1]
    torch.testing.assert_close(unevaluated.actions, inside_target)


@pytest.mark.parametrize("name", NAMES)
def test_chunks_under_a_budget_respect_chunk_size(name, space, fast_planner, inside_target) -> None:
    cost = SlowCost(inside_target)
    result = fast_planner(name, space, iterations=3, chunk_size=5, time_budget_s=60.0).plan(cost)
    assert not result.timed_out and max(cost.batches) <= 5


@pytest.mark.parametrize("name", NAMES)
def test_a_budget_that_is_not_hit_changes_nothing(name, space, fast_planner, quadratic, inside_target) -> None:
    """The same seeded search with and without a generous budget: identical plans and histories."""
    cost = quadratic(inside_target)
    free = fast_planner(name, space, iterations=4).plan(cost)
    budgeted = fast_planner(name, space, iterations=4, time_budget_s=60.0).plan(cost)
    assert not budgeted.timed_out and budgeted.iterations == free.iterations == 4
    assert torch.equal(budgeted.actions, free.actions) and budgeted.history == free.history
    assert budgeted.cost == free.cost and budgeted.evaluated == free.evaluated
