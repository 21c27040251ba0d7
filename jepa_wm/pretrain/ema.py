"""Exponential moving average of the online encoder: the JEPA target encoder.

After each optimizer step, every target parameter moves toward its online counterpart:
``target <- m * target + (1 - m) * online``. The momentum ``m`` rises linearly from
``start`` to ``end`` over training (V-JEPA 2 keeps it at 0.99925; I-JEPA goes 0.996 -> 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MomentumSchedule:
    """Linear EMA momentum: ``start`` at step 0, ``end`` at ``total_steps`` (and after)."""

    start: float
    end: float
    total_steps: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= 1.0 or not 0.0 <= self.end <= 1.0:
            raise ValueError(f"EMA momenta must lie in [0, 1], got {self.start}, {self.end}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")

    def at(self, step: int) -> float:
        """Momentum used for the update after optimisation step ``step`` (0-based)."""
        progress = min(1.0, max(0, step) / self.total_steps)
        return self.start + (self.end - self.start) * progress


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online``, parameter by parameter.

    Both modules must have the same parameters in the same order (the target a deep copy of
    the online module). Buffers are not averaged.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
    target_params = list(target.parameters())
    online_params = [p.detach() for p in online.parameters()]
    if len(target_params) != len(online_params) or any(
        t.shape != o.shape for t, o in zip(target_params, online_params)
    ):
        raise ValueError("target and online modules must have parameters of the same shapes")
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
