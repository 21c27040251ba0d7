"""Pieces every training loop shares: AdamW with V-JEPA's parameter groups, autocast, one step.

* :func:`adamw` : AdamW where biases and 1-D parameters (LayerNorm weights) get no weight
  decay, as in V-JEPA (mask tokens, shaped (1, 1, D), are decayed like weights there too).
* :func:`autocast` : bf16 mixed precision on CUDA (``precision="bf16"``), a no-op for fp32.
  bf16 needs no loss scaling.
* :func:`optimizer_step` : backward, gradient clipping, optimizer and scheduler step; a NaN or
  infinite loss or gradient stops training (:class:`NonFiniteLossError`) before the step.
* :func:`check_finite_losses` : the same stop for losses computed elsewhere (validation).

A stopped run writes no checkpoint after the last good one, which stays on disk; the error
names the step, the losses and that checkpoint. Finite losses and gradients keep AdamW's
update finite, so checking them each step keeps the weights finite (the files are checked
again when they are written, :func:`~jepa_wm.training.checkpoint.atomic_torch_save`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LRScheduler

from jepa_wm.training.checkpoint import latest_checkpoint

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient norm that is NaN or infinite: training stopped before the optimizer step."""


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
    terms: Mapping[str, Tensor] | None = None,
    step: int | None = None,
    checkpoint_dir: str | Path | None = None,
) -> float:
    """``loss.backward()``, clip, ``optimizer.step()``, ``scheduler.step()``, zero the grads.

    Nothing is updated when the loss, one of ``terms`` or the gradient norm is NaN or infinite on
    any rank (the flag is all-reduced under torch.distributed, so every rank stops together).

    Args:
        loss: scalar loss of this step.
        clip_grad: max global gradient norm (None: no clipping).
        parameters: the parameters to clip (default: every parameter of the optimizer).
        terms: scalar parts of ``loss`` by name (``{"loss_tf": ..., "loss_rollout": ...}``), named
            in the error when one is not finite.
        step: the step this update completes, and checkpoint_dir: the run's checkpoints; both
            only for the error message (:func:`check_finite_losses`).

    Returns:
        The global gradient norm before clipping.

    Raises:
        NonFiniteLossError: the loss or the gradients are not finite (the grads are zeroed).
    """
    if loss.ndim != 0:
        raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
    loss.backward()
    params = list(parameters) if parameters is not None else list(_optimizer_params(optimizer))
    if clip_grad is not None:
        norm = nn.utils.clip_grad_norm_(params, clip_grad)
    else:
        norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    values = {"loss": loss.detach(), **{k: v.detach() for k, v in (terms or {}).items()}}
    finite = torch.stack([torch.isfinite(v.float()).all() for v in (*values.values(), norm)]).all()
    if dist.is_available() and dist.is_initialized():
        bad = (~finite).to(torch.int32)
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # another rank's loss counts too
        finite = bad == 0
    if not bool(finite):
        optimizer.zero_grad(set_to_none=True)
        shown = {**{k: float(v) for k, v in values.items()}, "gradient norm": float(norm)}
        raise _stopped(shown, step=step, checkpoint_dir=checkpoint_dir, what="training")
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def check_finite_losses(
    values: Mapping[str, float],
    *,
    step: int | None,
    checkpoint_dir: str | Path | None,
    what: str = "training",
) -> None:
    """Stop training when one of ``values`` is NaN or infinite.

    Args:
        values: losses (and the gradient norm) by name.
        step: the step they belong to.
        checkpoint_dir: the run's checkpoint folder; its newest checkpoint is named as the last good one.
        what: ``"training"`` or ``"validation"``, for the message.

    Raises:
        NonFiniteLossError: one line with the step, the values, the last good checkpoint and what to do.
    """
    if not all(math.isfinite(value) for value in values.values()):
        raise _stopped(values, step=step, checkpoint_dir=checkpoint_dir, what=what)


def _stopped(
    values: Mapping[str, float], *, step: int | None, checkpoint_dir: str | Path | None, what: str
) -> NonFiniteLossError:
    """The error of :func:`check_finite_losses` (all of ``values`` finite: another rank's were not)."""
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    shown = ", ".join(f"{name} {value:.4g}" for name, value in values.items())
    where = f"step {step}" if step is not None else "this step"
    subject = "gradient" if bad == ["gradient norm"] else "loss"
    cause = f"the {what} {subject} is not finite" + ("" if bad else " on another rank")
    last = latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    fix = "fix the cause (NaN or inf in the data, a learning rate too high) and run the same command again"
    if last is not None:
        kept = f"nothing was saved after the last good checkpoint {last}, which is kept; {fix} to resume from it"
    elif checkpoint_dir is not None:
        kept = f"no checkpoint had been saved in {checkpoint_dir} yet; {fix}"
    else:
        kept = "the weights were not updated"
    return NonFiniteLossError(f"training stopped at {where}: {cause} ({shown}); {kept}")


def _optimizer_params(optimizer: Optimizer) -> Iterator[Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]
