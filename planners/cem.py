"""Cross-entropy method, as V-JEPA 2-AC plans (arXiv 2506.09985, facebookresearch/vjepa2).

Each iteration samples ``num_samples`` sequences from a diagonal Gaussian, projects them onto
the feasible set, keeps the ``topk`` cheapest and moves the Gaussian toward them with
momentum::

    mean <- momentum_mean * mean + (1 - momentum_mean) * mean(elites)
    std  <- momentum_std  * std  + (1 - momentum_std)  * std(elites)

The plan is the final mean (as the paper's code) or, optionally, the best sample seen; when a
time budget cuts the search short, the best sample seen (:class:`~planners.base.PlannerConfig`).

Paper settings: 800 samples, 10 iterations, top 10, horizon 1; the public code starts from
mean 0, std 0.05 m on xyz (1 unit here, where 1 unit = 0.05 m) and 1 on the gripper, with
momentum 0.15 on mean and std. See ``configs/planner/cem.yaml`` for the action space
(xyz + gripper, L1 ball of 0.075 m = 1.5 units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from planners.base import (
    BasePlanner,
    PlannerConfig,
    Search,
    check_fraction,
    check_positive_int,
    per_dim,
    positive_floats,
)


@dataclass(frozen=True)
class CEMConfig(PlannerConfig):
    """CEM settings (defaults after V-JEPA 2-AC).

    Args:
        num_samples: candidates per iteration.
        iterations: sampling iterations per plan.
        topk: elites kept per iteration (``2 <= topk <= num_samples``).
        init_std: initial standard deviation, a float or one per planned dimension, in
            action units.
        momentum_mean, momentum_std: weight of the previous mean / std in each update, in ``[0, 1)``.
        min_std: floor on the standard deviation (0 lets it collapse).
        return_best: return the cheapest sample seen instead of the final mean.
    """

    num_samples: int = 800
    iterations: int = 10
    topk: int = 10
    init_std: float | Sequence[float] = 1.0
    momentum_mean: float = 0.15
    momentum_std: float = 0.15
    min_std: float = 0.0
    return_best: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "init_std", positive_floats(self.init_std, "init_std"))
        check_positive_int(self.num_samples, "num_samples")
        check_positive_int(self.iterations, "iterations")
        check_positive_int(self.topk, "topk")
        if not 2 <= self.topk <= self.num_samples:
            raise ValueError(f"topk must be in [2, num_samples={self.num_samples}], got {self.topk}")
        check_fraction(self.momentum_mean, "momentum_mean")
        check_fraction(self.momentum_std, "momentum_std")
        if self.min_std < 0:
            raise ValueError(f"min_std must be >= 0, got {self.min_std}")


class CEM(BasePlanner):
    """Cross-entropy method planner; see the module docstring.

    :class:`~planners.icem.ICEM` reuses this loop through two hooks: :meth:`_sample` (the
    population of an iteration) and :meth:`_keep` (what the elites leave behind).
    """

    config: CEMConfig
    config_class = CEMConfig

    def _sample(self, search: Search, iteration: int, mean: Tensor, std: Tensor) -> Tensor:
        """Feasible candidates ``(N, H, P)`` around ``mean`` ``(H, P)`` with spread ``std`` ``(H, P)``."""
        noise = search.randn(self.config.num_samples, *mean.shape)  # (N, H, P)
        return self.action_space.project(mean + std * noise)

    def _keep(self, elites: Tensor) -> None:
        """Called with each iteration's elites ``(K, H, P)``, cheapest first."""

    def _optimise(self, search: Search, mean: Tensor) -> tuple[Tensor, Tensor | None]:
        cfg = self.config
        std = per_dim(cfg.init_std, self.action_space.num_planned, "init_std", mean).expand_as(mean).clone()  # (H, P)
        best, best_cost = mean, torch.tensor(math.inf, device=mean.device)
        for i in range(cfg.iterations):
            samples = self._sample(search, i, mean, std)  # (N, H, P)
            costs = search.evaluate(samples)  # (N,)
            search.record(costs)
            top = costs.topk(cfg.topk, largest=False)
            elites = samples[top.indices]  # (K, H, P)
            self._keep(elites)
            if top.values[0] < best_cost:
                best, best_cost = elites[0], top.values[0]
            mean = cfg.momentum_mean * mean + (1 - cfg.momentum_mean) * elites.mean(0)
            std = cfg.momentum_std * std + (1 - cfg.momentum_std) * elites.std(0)
            std = std.clamp(min=cfg.min_std)
        return (best, best_cost) if cfg.return_best else (mean, None)
