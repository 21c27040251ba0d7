"""Training checkpoints: atomic save, strict load with clear errors, resume discovery.

A checkpoint is one ``torch.save`` file holding plain containers and tensors only, so it
loads with ``torch.load(..., weights_only=True)``::

    {
        "kind": "jepa_wm.training_checkpoint", "version": 1,
        "step": int,                      # optimisation steps done
        "models": {name: state_dict},     # e.g. "encoder", "target_encoder", "predictor"
        "optimizer": state_dict | None,
        "scheduler": state_dict | None,
        "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...], "numpy": {...}, "python": [...]},
        "config": dict,                   # the run's configuration (plain, JSON-like)
        "data": dict,                     # summary of the training data
        "extra": dict,                    # anything else a trainer wants back
    }

Files are named ``step_<8 digits>.pt`` in a run directory; :func:`latest_checkpoint` finds
the one with the highest step, so running the same command again resumes.
Saving writes ``<name>.tmp-<pid>`` in the same directory, flushes it to disk, then
``os.replace`` s it onto the final name: a crash leaves either the old file or the new one.

Every file of weights goes through :func:`atomic_torch_save` and :func:`torch_load_plain` (training
checkpoints, the exported ``predictor.pt``, encoders, readers, object models, release files); both
refuse a file whose floating-point tensors hold NaN or inf (:class:`NonFiniteError`, naming the
file and the first such tensors), so a diverged model is never written nor loaded.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "jepa_wm.training_checkpoint"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


class CheckpointError(ValueError):
    """A file that is not a checkpoint of the expected kind, or does not fit the model."""


class NonFiniteError(CheckpointError):
    """Weights (or other floating-point tensors) holding NaN or inf, on their way to or from a file."""


def non_finite_tensors(obj: Any, prefix: str = "") -> tuple[list[str], int]:
    """The dotted names of the floating-point tensors in ``obj`` that hold NaN or inf, and how many
    floating-point tensors it holds in all.

    Args:
        obj: a tensor, or dicts / lists / tuples of them (a state dict, a checkpoint payload).
        prefix: the name of ``obj`` itself.
    """
    if isinstance(obj, torch.Tensor):
        if not (obj.is_floating_point() or obj.is_complex()):
            return [], 0
        return ([] if bool(torch.isfinite(obj).all()) else [prefix or "<tensor>"]), 1
    if isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return [], 0
    bad, total = [], 0
    for key, value in items:
        names, count = non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
        bad += names
        total += count
    return bad, total


def check_finite(obj: Any, what: str) -> None:
    """Raise :class:`NonFiniteError` when a floating-point tensor of ``obj`` holds NaN or inf.

    Args:
        obj: tensors, possibly nested in dicts / lists / tuples.
        what: the start of the message, e.g. ``"refusing to write runs/x/predictor.pt"``.

    Raises:
        NonFiniteError: ``"<what>: 58 of 62 tensors hold NaN or inf (first: a.weight, b.bias, ...)"``.
    """
    bad, total = non_finite_tensors(obj)
    if bad:
        first = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise NonFiniteError(f"{what}: {len(bad)} of {total} tensors hold NaN or inf where finite values are "
                             f"expected (first: {first})")


def checkpoint_name(step: int) -> str:
    """``step_<step:08d>.pt``."""
    return f"step_{step:08d}.pt"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary file and ``os.replace``.

    Raises:
        NonFiniteError: a floating-point tensor of ``obj`` holds NaN or inf (nothing is written).
    """
    path = Path(path)
    check_finite(obj, f"refusing to write {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def rng_state() -> dict[str, Any]:
    """The state of every random generator a training loop draws from (torch, CUDA, numpy, random)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": [version, list(internal), py_gauss],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore generators saved by :func:`rng_state` (CUDA only when available)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    path: str | Path,
    *,
    step: int,
    models: Mapping[str, nn.Module],
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    config: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a training state atomically (see the module docstring for the contents).

    Args:
        path: a file, or a directory (the file is then ``<dir>/step_<step>.pt``).
        step: optimisation steps done so far.
        models: modules by name; DDP wrappers are unwrapped (their ``module`` is saved).
        optimizer, scheduler: saved when given.
        config: the run configuration as plain data (dicts, lists, numbers, strings).
        data: a summary of the training data (e.g. ``DatasetSummary.to_dict()``).
        extra: more plain data to hand back on resume.

    Returns:
        The path written.
    """
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    path = Path(path)
    if path.is_dir() or path.suffix != ".pt":
        path = path / checkpoint_name(step)
    payload = {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "models": {name: unwrap(model).state_dict() for name, model in models.items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "config": dict(config or {}),
        "data": dict(data or {}),
        "extra": dict(extra or {}),
    }
    atomic_torch_save(payload, path)
    logger.info("saved checkpoint %s (step %d)", path, step)
    return path


def torch_load_plain(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; CheckpointError for anything not such a file.

    The zip members' CRC32 checksums are verified first (torch.load does not), so a file damaged
    after it was written (a bad disk, an interrupted copy) is refused rather than read as garbage.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a torch zip file, damaged, or it holds more than tensors and plain data.
        NonFiniteError: a floating-point tensor in it holds NaN or inf.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path} is not a readable torch checkpoint: not a torch.save zip archive")
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        if damaged is not None:
            raise CheckpointError(f"{path} is damaged: the checksum of its member {damaged} does not match")
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, IndexError, ValueError, struct.error,
            zipfile.BadZipFile, zlib.error, OSError) as err:  # OSError: seeks to offsets a damaged index gives
        if isinstance(err, (CheckpointError, PermissionError, FileNotFoundError)):
            raise
        reason = " ".join(str(err).split())  # one line
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {type(err).__name__}: {reason}") from err
    check_finite(payload, str(path))
    return payload


def load_tagged(path: str | Path, file_format: str, name: str, train_command: str) -> dict[str, Any]:
    """The dict a small model's ``save`` wrote to ``path`` with ``{"format": file_format, ...}`` (a reader, an
    object model: files outside the training checkpoints).

    Args:
        path: the file.
        file_format: the ``"format"`` entry it must have.
        name: what it is, for messages ("gripper reader").
        train_command: how to make one, for the message when the file is missing.

    Raises:
        FileNotFoundError: no file (the message says how to train one).
        ValueError: the file is not a ``name`` (another format, or no dict, or not a torch file), or
            its tensors hold NaN or inf (:class:`NonFiniteError`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} {path} not found: train one with `{train_command}`")
    state = torch_load_plain(path)
    if not isinstance(state, dict) or state.get("format") != file_format:
        article = "an" if name[0] in "aeiou" else "a"
        raise ValueError(f"{path} is not {article} {name} (expected format {file_format!r})")
    return state


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is not a torch file, or not a training checkpoint of a
            known version (the message says what it holds instead).
    """
    payload = torch_load_plain(path, map_location)
    if not isinstance(payload, Mapping) or payload.get("kind") != CHECKPOINT_KIND:
        found = payload.get("kind", sorted(payload)[:8]) if isinstance(payload, Mapping) else type(payload).__name__
        raise CheckpointError(f"{path} is not a {CHECKPOINT_KIND} file (found {found!r})")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')!r}; "
            f"this code reads version {CHECKPOINT_VERSION}"
        )
    return dict(payload)


def restore(
    checkpoint: Mapping[str, Any],
    *,
    models: Mapping[str, nn.Module],
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    restore_rng: bool = True,
) -> int:
    """Load states from a :func:`load_checkpoint` dict into live objects; returns the step.

    Model loading is strict; a missing model name or a mismatching state dict raises a
    :class:`CheckpointError` naming the model.
    """
    saved = checkpoint["models"]
    for name, model in models.items():
        if name not in saved:
            raise CheckpointError(f"checkpoint has no model {name!r}; it holds {sorted(saved)}")
        try:
            unwrap(model).load_state_dict(saved[name], strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"model {name!r} does not fit the checkpoint: {err}") from err
    if optimizer is not None:
        if checkpoint["optimizer"] is None:
            raise CheckpointError("checkpoint has no optimizer state")
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        if checkpoint["scheduler"] is None:
            raise CheckpointError("checkpoint has no scheduler state")
        scheduler.load_state_dict(checkpoint["scheduler"])
    if restore_rng:
        set_rng_state(checkpoint["rng"])
    return int(checkpoint["step"])


def check_resume(
    saved: Mapping[str, Any], current: Mapping[str, Any], fixed: tuple[str, ...], path: str | Path
) -> None:
    """Refuse to resume a run whose ``fixed`` settings differ from the checkpoint's config.

    Args:
        saved: the run config stored in the checkpoint.
        current: the run config of the process that resumes.
        fixed: keys that change what a step computes (architecture, batch, world size, ...).
        path: the checkpoint, for the message.

    Raises:
        ValueError: naming every fixed setting that differs, with both values.
    """
    diffs = [k for k in fixed if saved.get(k) != current.get(k)]
    if diffs:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in diffs)
        raise ValueError(f"cannot resume from {path}: {details}; use a new run directory")
    changed = sorted(k for k in current if k not in fixed and saved.get(k) != current.get(k))
    if changed:
        logger.warning("resuming with changed settings %s", changed)


def list_checkpoints(directory: str | Path) -> list[Path]:
    """``step_*.pt`` files of ``directory`` sorted by step (temporary files ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or None when there is none."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def prune_checkpoints(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints of ``directory``; returns the deleted."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    stale = list_checkpoints(directory)[:-keep_last]
    for path in stale:
        path.unlink()
    return stale


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (else ``model``)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model
