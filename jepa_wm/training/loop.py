"""Pieces every training loop shares: AdamW with V-JEPA's parameter groups, autocast, one step.

* :func:`adamw` : AdamW where biases and 1-D parameters (LayerNorm weights) get no weight
  decay, as in V-JEPA (mask tokens, shaped (1, 1, D), are decayed like weights there too).
* :func:`autocast` : bf16 mixed precision on CUDA (``precision="bf16"``), a no-op for fp32.
  bf16 needs no loss scaling.
* :func:`optimizer_step` : backward, gradient clipping, optimizer and scheduler step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Literal

import torch
from torch import Tensor, nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LRScheduler

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def adamw(
    modules: Iterable[nn.Module],
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> AdamW:
    """AdamW over the trainable parameters of ``modules``; no decay on biases / 1-D tensors."""
    decay, no_decay = [], []
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if name.endswith(".bias") or param.ndim == 1 else decay).append(param)
    if not decay and not no_decay:
        raise ValueError("adamw got no trainable parameters")
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps)


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Mixed-precision context for the forward pass: bf16 autocast, or nothing for fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def optimizer_step(
    loss: Tensor,
    optimizer: Optimizer,
    *,
    scheduler: LRScheduler | None = None,
    clip_grad: float | None = None,
    parameters: Iterable[Tensor] | None = None,
) -> float:
    """``loss.backward()``, clip, ``optimizer.step()``, ``scheduler.step()``, zero the grads.

    Args:
        loss: scalar loss of this step.
        clip_grad: max global gradient norm (None: no clipping).
        parameters: the parameters to clip (default: every parameter of the optimizer).

    Returns:
        The global gradient norm before clipping (``nan`` when ``clip_grad`` is None).
    """
    if loss.ndim != 0:
        raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
    loss.backward()
    grad_norm = float("nan")
    if clip_grad is not None:
        params = list(parameters) if parameters is not None else list(_optimizer_params(optimizer))
        grad_norm = float(nn.utils.clip_grad_norm_(params, clip_grad))
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def _optimizer_params(optimizer: Optimizer) -> Iterator[Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]
