"""Shared training machinery: LR schedule, checkpoints, data parallelism, metrics, one step.

* :mod:`~jepa_wm.training.schedule`: warm-up -> constant -> linear decay (V-JEPA 2-AC).
* :mod:`~jepa_wm.training.checkpoint`: atomic save, strict load, ``latest_checkpoint`` resume;
  no file with NaN or inf weights is written or loaded (``NonFiniteError``).
* :mod:`~jepa_wm.training.distributed`: torchrun / DDP initialisation, resumable sampler.
* :mod:`~jepa_wm.training.loop`: AdamW parameter groups, bf16 autocast, optimizer step; a NaN or
  infinite loss stops training (``NonFiniteLossError``).
* :mod:`~jepa_wm.training.metrics`: JSONL + CSV metric files that survive resumption.
* :mod:`~jepa_wm.training.resume`: restore the newest valid checkpoint, the batches still to
  train, one process per run directory (``hold_run_dir``).
"""

import importlib
from typing import Any

# Names -> the submodule that defines them, imported on first use: loading a checkpoint
# (jepa_wm.training.checkpoint) must not import the training loop or torch.distributed.
_LAZY = {
    "CheckpointError": "jepa_wm.training.checkpoint",
    "DistributedContext": "jepa_wm.training.distributed",
    "MetricsLogger": "jepa_wm.training.metrics",
    "NonFiniteError": "jepa_wm.training.checkpoint",
    "NonFiniteLossError": "jepa_wm.training.loop",
    "PRECISIONS": "jepa_wm.training.loop",
    "Precision": "jepa_wm.training.loop",
    "ResumableSampler": "jepa_wm.training.distributed",
    "WarmupConstantDecay": "jepa_wm.training.schedule",
    "adamw": "jepa_wm.training.loop",
    "all_reduce_mean": "jepa_wm.training.distributed",
    "atomic_torch_save": "jepa_wm.training.checkpoint",
    "autocast": "jepa_wm.training.loop",
    "barrier": "jepa_wm.training.distributed",
    "check_finite": "jepa_wm.training.checkpoint",
    "check_finite_losses": "jepa_wm.training.loop",
    "check_resume": "jepa_wm.training.checkpoint",
    "checkpoint_name": "jepa_wm.training.checkpoint",
    "cleanup_distributed": "jepa_wm.training.distributed",
    "follow_schedule": "jepa_wm.training.schedule",
    "hold_run_dir": "jepa_wm.training.resume",
    "init_distributed": "jepa_wm.training.distributed",
    "latest_checkpoint": "jepa_wm.training.checkpoint",
    "list_checkpoints": "jepa_wm.training.checkpoint",
    "load_checkpoint": "jepa_wm.training.checkpoint",
    "optimizer_step": "jepa_wm.training.loop",
    "prune_checkpoints": "jepa_wm.training.checkpoint",
    "quiet_non_main_ranks": "jepa_wm.training.distributed",
    "read_metrics": "jepa_wm.training.metrics",
    "restore": "jepa_wm.training.checkpoint",
    "resumable_loader": "jepa_wm.training.distributed",
    "resume_latest": "jepa_wm.training.resume",
    "rng_state": "jepa_wm.training.checkpoint",
    "save_checkpoint": "jepa_wm.training.checkpoint",
    "set_rng_state": "jepa_wm.training.checkpoint",
    "torch_load_plain": "jepa_wm.training.checkpoint",
    "training_batches": "jepa_wm.training.resume",
    "unwrap": "jepa_wm.training.checkpoint",
    "warmup_constant_decay": "jepa_wm.training.schedule",
    "wrap_ddp": "jepa_wm.training.distributed",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRECISIONS",
    "CheckpointError",
    "DistributedContext",
    "MetricsLogger",
    "NonFiniteError",
    "NonFiniteLossError",
    "Precision",
    "ResumableSampler",
    "WarmupConstantDecay",
    "adamw",
    "check_finite",
    "check_finite_losses",
    "check_resume",
    "follow_schedule",
    "all_reduce_mean",
    "atomic_torch_save",
    "autocast",
    "barrier",
    "checkpoint_name",
    "cleanup_distributed",
    "hold_run_dir",
    "init_distributed",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "optimizer_step",
    "prune_checkpoints",
    "quiet_non_main_ranks",
    "read_metrics",
    "resumable_loader",
    "restore",
    "resume_latest",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "torch_load_plain",
    "training_batches",
    "unwrap",
    "warmup_constant_decay",
    "wrap_ddp",
]
