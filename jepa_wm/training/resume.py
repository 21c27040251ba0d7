"""Resuming a training run: restore the newest checkpoint, then train the batches still to go.

Both trainers (encoder pretraining and the predictor) resume the same way: the newest
``step_*.pt`` of the run's checkpoint folder is checked against the current run config,
loaded into the live model, optimizer and scheduler, and the scheduler follows the current
learning-rate schedule (e.g. ``total_steps`` raised to extend a finished run). The data order
continues where it stopped (:func:`~jepa_wm.training.distributed.resumable_loader`);
:func:`training_batches` walks the epochs up to ``total_steps``.

A checkpoint that cannot be read (truncated, corrupt, NaN or inf in its tensors) is skipped with a
warning: the run resumes from the newest valid one, and the unreadable file is kept beside it as
``step_<n>.pt.corrupt`` (``.corrupt-1``, ... when that name is taken), so that neither the resumed
run's checkpoints nor its pruning ever overwrite or delete it.

:func:`hold_run_dir` keeps a run directory to one training process at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from jepa_wm.locks import hold
from jepa_wm.training.checkpoint import (
    CheckpointError,
    check_resume,
    list_checkpoints,
    load_checkpoint,
    restore,
)
from jepa_wm.training.distributed import ResumableSampler
from jepa_wm.training.schedule import WarmupConstantDecay, follow_schedule

logger = logging.getLogger(__name__)

B = TypeVar("B")

_HELD: set[Path] = set()  # run directories this process holds (hold_run_dir nests)


@contextlib.contextmanager
def hold_run_dir(run_dir: str | Path, *, enabled: bool = True) -> Iterator[Path]:
    """Hold ``run_dir`` for one training process (created if missing) for the ``with`` block.

    An exclusive lock on ``<run_dir>/.lock`` (:func:`jepa_wm.locks.hold`), released by the kernel
    when the process ends however it ends. Nested holds of the same directory in one process (the
    script, then the trainer it calls) take it once.

    Args:
        run_dir: the run's output folder.
        enabled: False on the non-main ranks of a torchrun job (rank 0 holds it for all).

    Raises:
        LockedError: another live process holds ``run_dir``.
    """
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if not enabled or key in _HELD:
        yield run_dir
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with hold(run_dir / ".lock", f"run dir {run_dir}"):
        _HELD.add(key)
        try:
            yield run_dir
        finally:
            _HELD.discard(key)


def resume_latest(
    checkpoint_dir: str | Path,
    *,
    run_config: Mapping[str, Any],
    fixed: tuple[str, ...],
    models: Mapping[str, nn.Module],
    optimizer: Optimizer,
    scheduler: LambdaLR,
    schedule: WarmupConstantDecay,
    device: torch.device,
    set_aside: bool = True,
) -> tuple[Path, dict[str, Any]] | None:
    """Restore the newest valid checkpoint of ``checkpoint_dir`` into the live objects, if there is one.

    Unreadable checkpoints newer than it are skipped with a warning (module docstring).

    Args:
        checkpoint_dir: the run's checkpoint folder.
        run_config: the current run config; its ``fixed`` keys must equal the checkpoint's.
        fixed: settings that change what a step computes (:func:`check_resume`).
        models, optimizer, scheduler: restored in place (RNG state too).
        schedule: the current config's learning-rate schedule, followed from the checkpoint's step.
        device: where the checkpoint's tensors are loaded.
        set_aside: rename the skipped unreadable checkpoints (False on the non-main ranks).

    Returns:
        ``(path, checkpoint)`` (training continues at ``checkpoint["step"]``), or ``None`` for a
        fresh run.

    Raises:
        ValueError: a fixed setting differs from the checkpoint's.
        CheckpointError: there are checkpoints, but none of them can be read (naming each).
    """
    path, checkpoint = _newest_valid(Path(checkpoint_dir), device, set_aside=set_aside)
    if path is None:
        return None
    check_resume(checkpoint["config"], run_config, fixed, path)
    step = restore(checkpoint, models=models, optimizer=optimizer, scheduler=scheduler)
    logger.info("resumed from %s at step %d", path, step)
    follow_schedule(scheduler, schedule)
    return path, checkpoint


def _newest_valid(
    checkpoint_dir: Path, device: torch.device, *, set_aside: bool
) -> tuple[Path | None, dict[str, Any]]:
    """The newest checkpoint that loads, and its contents; ``(None, {})`` when there are none.

    The unreadable ones newer than it are warned about and (``set_aside``) renamed
    ``<name>.corrupt[-k]``. CheckpointError when there are checkpoints but none loads.
    """
    tried: list[tuple[Path, str]] = []
    for path in reversed(list_checkpoints(checkpoint_dir)):
        try:
            checkpoint = load_checkpoint(path, map_location=device)
        except FileNotFoundError:  # set aside by rank 0 meanwhile
            continue
        except CheckpointError as err:
            tried.append((path, str(err)))
            continue
        for bad, reason in tried:
            kept = _set_aside(bad) if set_aside else bad
            logger.warning("skipping the unreadable checkpoint %s (kept as %s): %s; resuming from %s instead",
                           bad, kept, reason, path)
        return path, checkpoint
    if tried:
        names = ", ".join(p.name for p, _ in tried)
        raise CheckpointError(f"cannot resume from {checkpoint_dir}: none of its checkpoints can be read "
                              f"(tried {names}; newest: {tried[0][1]}); move them away to start the run over")
    return None, {}


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.corrupt`` (``.corrupt-1``, ... when taken): never onto an existing file."""
    for k in range(1000):
        target = path.with_name(f"{path.name}.corrupt" + (f"-{k}" if k else ""))
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))  # claim the name
        except FileExistsError:
            continue
        os.replace(path, target)
        return target
    raise FileExistsError(f"cannot set {path} aside: {path.name}.corrupt-0..999 all exist")


def training_batches(
    loader: Iterable[B], sampler: ResumableSampler, epoch: int, step: int, total_steps: int
) -> Iterator[tuple[int, B]]:
    """``(epoch, batch)`` for every step from ``step`` to ``total_steps``, epoch after epoch.

    ``loader``, ``sampler`` and ``epoch`` come from :func:`resumable_loader` at ``step``; after
    each full pass the sampler moves to the next epoch's order.
    """
    while step < total_steps:
        for batch in loader:
            yield epoch, batch
            step += 1
            if step == total_steps:
                return
        epoch += 1
        sampler.set_epoch(epoch)
