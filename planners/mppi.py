"""MPPI: model-predictive path integral control (Williams et al. 2017), as a trajectory optimiser.

Each iteration perturbs the mean with Gaussian noise of fixed spread, projects the samples
onto the feasible set and moves the mean to their exponentially weighted average::

    w_b  = softmax_b(-(c_b - min c) / (temperature * scale))
    mean = sum_b w_b * samples_b

with ``scale = max c - min c`` when ``normalize_costs`` (so ``temperature`` is relative to
the spread of costs in the population and needs no tuning per cost function) and 1
otherwise (the classic form, where ``temperature`` is in cost units). The weighted average of
feasible samples is feasible, because the feasible set is convex. The plan is the final mean
(when a time budget cuts the search short: the best sample evaluated, see
:class:`~planners.base.PlannerConfig`).

Being an average, the mean never lands exactly on the boundary of the feasible set: when the
minimiser lies outside, it stops short by an amount that grows with ``noise_std`` and
``temperature`` (about 0.01-0.02 units on the L1 ball with the defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from planners.base import BasePlanner, PlannerConfig, Search, check_positive_int, per_dim, positive_floats


@dataclass(frozen=True)
class MPPIConfig(PlannerConfig):
    """MPPI settings.

    Args:
        num_samples: candidates per iteration.
        iterations: weighted-average updates per plan.
        noise_std: standard deviation of the perturbations, a float or one per planned
            dimension, in action units.
        temperature: lambda of the exponential weighting (relative to the cost spread when
            ``normalize_costs``); smaller is greedier.
        normalize_costs: divide costs by their spread in each population before weighting.
    """

    num_samples: int = 512
    iterations: int = 6
    noise_std: float | Sequence[float] = 0.2
    temperature: float = 0.02
    normalize_costs: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "noise_std", positive_floats(self.noise_std, "noise_std"))
        check_positive_int(self.num_samples, "num_samples")
        check_positive_int(self.iterations, "iterations")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


class MPPI(BasePlanner):
    """MPPI planner; see the module docstring."""

    config: MPPIConfig
    config_class = MPPIConfig

    def _optimise(self, search: Search, mean: Tensor) -> tuple[Tensor, Tensor | None]:
        cfg, space = self.config, self.action_space
        std = per_dim(cfg.noise_std, space.num_planned, "noise_std", mean)  # (P,)
        for _ in range(cfg.iterations):
            samples = space.project(mean + std * search.randn(cfg.num_samples, *mean.shape))  # (N, H, P)
            costs = search.evaluate(samples)  # (N,)
            search.record(costs)
            finite = costs.isfinite()  # failed candidates cost +inf
            if finite.any():  # else keep the mean: no candidate says where to go
                shifted = torch.where(finite, costs - costs[finite].min(), costs)  # (N,) >= 0
                if cfg.normalize_costs:
                    shifted = shifted / shifted[finite].max().clamp(min=1e-12)
                weights = (-shifted / cfg.temperature).softmax(0)  # (N,), 0 for failed candidates
                mean = (weights[:, None, None] * samples).sum(0)  # (H, P)
        return mean, None
