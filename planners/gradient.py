"""Gradient-based planner: projected Adam on the action sequence through a differentiable cost.

``num_restarts`` sequences are optimised at once (one batch): the first starts at the initial
mean, the others at the mean plus Gaussian noise of ``init_std``. Each step is an Adam step
(bias-corrected moments, learning rate with an optional cosine decay) followed by a projection
onto the feasible set **in Adam's own metric** ``sqrt(v_hat) + eps``. A Euclidean projection
after a per-coordinate-scaled step has spurious fixed points: on a face of the L1 ball, Adam's
steps are close to ``lr * sign(g)``, which a Euclidean projection maps straight back, so the
sequence would stop anywhere on the face. In the scaled metric the fixed points are exactly
the constrained minima. The cheapest sequence evaluated over all steps is returned.

The cost must be differentiable w.r.t. the actions; a cost that returns no gradient raises
``ValueError``. Gradients are taken w.r.t. the actions only (``torch.autograd.grad``), so a
frozen world model's parameters collect no ``.grad``.
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
class GradientConfig(PlannerConfig):
    """Gradient planner settings.

    Args:
        iterations: Adam steps per plan.
        lr: Adam learning rate, in action units (roughly the largest move per step).
        num_restarts: sequences optimised in parallel.
        init_std: spread of the restarts around the initial mean, a float or one per planned
            dimension, in action units.
        betas: Adam's decay rates of the first and second moments.
        anneal_lr: decay the learning rate to 0 over the iterations (cosine), which lets
            Adam settle instead of hovering around the minimum at the step size.
    """

    iterations: int = 50
    lr: float = 0.05
    num_restarts: int = 8
    init_std: float | Sequence[float] = 0.5
    betas: tuple[float, float] = (0.9, 0.999)
    anneal_lr: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "init_std", positive_floats(self.init_std, "init_std"))
        check_positive_int(self.iterations, "iterations")
        check_positive_int(self.num_restarts, "num_restarts")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two decay rates, got {self.betas}")
        object.__setattr__(self, "betas", (float(self.betas[0]), float(self.betas[1])))
        for beta in self.betas:
            check_fraction(beta, "betas")


class GradientPlanner(BasePlanner):
    """Projected Adam over a batch of restarts; see the module docstring."""

    config: GradientConfig
    config_class = GradientConfig
    differentiable = True
    _EPS = 1e-8

    def _lr(self, step: int) -> float:
        cfg = self.config
        if not cfg.anneal_lr:
            return cfg.lr
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * step / cfg.iterations))

    def _optimise(self, search: Search, mean: Tensor) -> tuple[Tensor, Tensor | None]:
        cfg, space = self.config, self.action_space
        beta1, beta2 = cfg.betas
        std = per_dim(cfg.init_std, space.num_planned, "init_std", mean)  # (P,)
        noise = search.randn(cfg.num_restarts, *mean.shape) * std  # (R, H, P)
        noise[0] = 0.0  # the first restart starts at the mean itself
        actions = space.project(mean + noise)  # (R, H, P)
        moment1, moment2 = torch.zeros_like(actions), torch.zeros_like(actions)
        best, best_cost = mean, torch.tensor(math.inf, device=mean.device)
        for step in range(cfg.iterations):
            costs, grads = search.evaluate_with_grad(actions)  # (R,), (R, H, P)
            search.record(costs)
            i = int(costs.argmin())
            if costs[i] < best_cost:
                best, best_cost = actions[i].clone(), costs[i]
            moment1 = beta1 * moment1 + (1 - beta1) * grads
            moment2 = beta2 * moment2 + (1 - beta2) * grads.square()
            scale = (moment2 / (1 - beta2 ** (step + 1))).sqrt() + self._EPS  # (R, H, P) Adam's metric
            update = moment1 / (1 - beta1 ** (step + 1)) / scale
            actions = space.project(actions - self._lr(step) * update, metric=scale)
        final = search.evaluate(actions)  # (R,) after the last step
        i = int(final.argmin())
        if final[i] < best_cost:
            best, best_cost = actions[i], final[i]
        return best, best_cost
