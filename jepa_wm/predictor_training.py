"""Training the action-conditioned predictor: one step, validation, the resumable loop.

Batches come from :class:`~jepa_wm.data.latents.LatentClipDataset` (``latents`` cached by
the frozen encoder) or :class:`~jepa_wm.data.clips.ClipDataset` (``frames``, encoded here on
the fly with the frozen encoder); both carry raw ``states`` and ``actions``. The loss is
:func:`jepa_wm.losses.predictor_losses` (teacher forcing + rollout).

:func:`train_predictor` writes into ``run_dir``:

* ``checkpoints/step_<n>.pt``: training checkpoints (:mod:`jepa_wm.training.checkpoint`)
  holding the predictor as ``models["ac_predictor"]`` (with its state/action normalisation
  buffers) and ``extra["ac_predictor"]`` (:func:`jepa_wm.world_model.predictor_meta`), the
  run config and the data summary; every ``checkpoint_every`` steps and at the end;
* ``metrics.jsonl`` / ``metrics.csv``: losses, learning rate, throughput, validation losses;
* ``predictor.pt``: at the end, the newest checkpoint without optimiser state (the file to ship,
  :func:`~jepa_wm.world_model.export_predictor_checkpoint`).

The run holds ``run_dir`` (:func:`~jepa_wm.training.resume.hold_run_dir`): a second run on the same
directory is refused with a :class:`~jepa_wm.locks.LockedError` before it reads or writes anything
there. A NaN or infinite loss (training or validation) or gradient stops the run with a
:class:`~jepa_wm.training.loop.NonFiniteLossError`; the checkpoints saved before it stay.

Calling it again with the same arguments resumes from the newest checkpoint; the data order
of epoch ``e`` depends only on ``(seed, e)`` and the batches already done are skipped. A run can
start from a trained predictor instead of random weights (fine-tuning, :func:`init_predictor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from jepa_wm.data.latents import NormalizationStats
from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.losses import predictor_losses
from jepa_wm.predictor import ACPredictor, PredictorConfig, count_parameters
from jepa_wm.state_integration import StateIntegration
from jepa_wm.training import (
    PRECISIONS,
    DistributedContext,
    MetricsLogger,
    Precision,
    ResumableSampler,
    WarmupConstantDecay,
    adamw,
    all_reduce_mean,
    autocast,
    barrier,
    check_finite_losses,
    hold_run_dir,
    latest_checkpoint,
    optimizer_step,
    prune_checkpoints,
    resumable_loader,
    resume_latest,
    save_checkpoint,
    training_batches,
    warmup_constant_decay,
    wrap_ddp,
)
from jepa_wm.world_model import (
    CHECKPOINT_DIR,
    MODEL_NAME,
    PREDICTOR_FILE,
    export_predictor_checkpoint,
    predictor_from_checkpoint,
    predictor_meta,
    read_predictor_checkpoint,
)

logger = logging.getLogger(__name__)

VAL_KEYS = ("val_loss", "val_loss_tf", "val_loss_rollout")


def batch_to_device(
    batch: Mapping[str, Any], device: torch.device, encoder: FrozenEncoder | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(z (B, T, N, D), actions (B, T-1, A), states (B, T, S))`` on ``device``.

    ``z`` is the batch's ``latents``, or its ``frames`` (B, T, 3, H, W) encoded by ``encoder``.
    """
    if "latents" in batch:
        z = batch["latents"].to(device, non_blocking=True)
    elif "frames" in batch:
        if encoder is None:
            raise ValueError("the batch holds frames, not latents: an encoder is needed to encode them")
        z = encoder.encode(batch["frames"].to(device, non_blocking=True))
    else:
        raise ValueError(f"a batch needs 'latents' or 'frames', got keys {sorted(batch)}")
    actions = batch["actions"].to(device, torch.float32, non_blocking=True)
    states = batch["states"].to(device, torch.float32, non_blocking=True)
    return z.float(), actions, states


def train_step(
    predictor: nn.Module,
    batch: Mapping[str, Any],
    optimizer: Optimizer,
    *,
    device: torch.device,
    encoder: FrozenEncoder | None = None,
    scheduler: LRScheduler | None = None,
    rollout_steps: int = 2,
    precision: Precision = "fp32",
    clip_grad: float | None = 1.0,
    step: int | None = None,
    checkpoint_dir: str | Path | None = None,
) -> dict[str, float]:
    """Forward both losses, backward, clip, step. Returns this rank's loss values and the LR.

    ``predictor`` may be DDP-wrapped; its ``__call__`` is the teacher-forcing pass. ``step`` (the
    step this update completes) and ``checkpoint_dir`` go into the error message only.

    Raises:
        NonFiniteLossError: a loss or the gradient norm is NaN or infinite (nothing is updated).
    """
    predictor.train()
    z, actions, states = batch_to_device(batch, device, encoder)
    with autocast(device, precision):
        losses = predictor_losses(predictor, z, actions, states, rollout_steps)
    lr = optimizer.param_groups[0]["lr"]
    grad_norm = optimizer_step(losses.total, optimizer, scheduler=scheduler, clip_grad=clip_grad,
                               terms={"loss_tf": losses.teacher_forcing, "loss_rollout": losses.rollout},
                               step=step, checkpoint_dir=checkpoint_dir)
    return {
        "loss": losses.total.item(),
        "loss_tf": losses.teacher_forcing.item(),
        "loss_rollout": losses.rollout.item(),
        "grad_norm": grad_norm,
        "lr": lr,
    }


@torch.no_grad()
def validate(
    predictor: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device,
    encoder: FrozenEncoder | None = None,
    rollout_steps: int = 2,
    precision: Precision = "fp32",
) -> dict[str, float]:
    """Mean losses over ``batches`` (averaged over ranks); the predictor is left in eval mode."""
    predictor.eval()
    totals = torch.zeros(3, device=device)
    count = 0
    for batch in batches:
        z, actions, states = batch_to_device(batch, device, encoder)
        with autocast(device, precision):
            losses = predictor_losses(predictor, z, actions, states, rollout_steps)
        totals += torch.stack([losses.total, losses.teacher_forcing, losses.rollout]).float()
        count += 1
    if count == 0:
        raise ValueError("validation got no batches")
    means = all_reduce_mean(totals / count).tolist()
    return dict(zip(VAL_KEYS, means))


@dataclass(frozen=True)
class PredictorTrainConfig:
    """Optimisation settings of one predictor run (V-JEPA 2-AC's, scaled down).

    Args:
        total_steps: optimisation steps.
        batch_size: clips per process and step (global batch = batch_size * world size).
        peak_lr, start_lr, final_lr, warmup_steps, decay_steps: the warm-up / constant /
            linear-decay learning rate (:class:`~jepa_wm.training.schedule.WarmupConstantDecay`).
        weight_decay: AdamW weight decay (not on biases and norms).
        betas: AdamW betas.
        clip_grad: max gradient norm, or None.
        rollout_steps: frames of the rollout loss (0 disables it; clips need more frames).
        precision: ``"fp32"`` or ``"bf16"`` autocast (bf16 on GPUs).
        checkpoint_every: steps between checkpoints; keep_last: checkpoints kept on disk.
        log_every: steps between metric records.
        val_every: steps between validations; val_batches: batches per validation (the same
            clips each time, spread evenly over the validation set).
        seed: seed of the initialisation and data order.
        num_workers: DataLoader worker processes.
    """

    total_steps: int = 2000
    batch_size: int = 32
    peak_lr: float = 4.25e-4
    start_lr: float = 7.5e-5
    final_lr: float = 0.0
    warmup_steps: int = 100
    decay_steps: int = 100
    weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = 1.0
    rollout_steps: int = 2
    precision: Precision = "fp32"
    checkpoint_every: int = 200
    keep_last: int = 2
    log_every: int = 10
    val_every: int = 200
    val_batches: int = 20
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("total_steps", "batch_size", "checkpoint_every", "keep_last", "log_every",
                     "val_every", "val_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PredictorTrainConfig.{name} must be an int >= 1, got {value!r}")
        if self.rollout_steps < 0 or self.num_workers < 0:
            raise ValueError(f"rollout_steps and num_workers must be >= 0, got {self.rollout_steps}, "
                             f"{self.num_workers}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"clip_grad must be > 0 or None, got {self.clip_grad}")
        self.lr_schedule()  # validates the schedule fields

    def lr_schedule(self) -> WarmupConstantDecay:
        return WarmupConstantDecay(peak_lr=self.peak_lr, total_steps=self.total_steps,
                                   warmup_steps=self.warmup_steps, decay_steps=self.decay_steps,
                                   start_lr=self.start_lr, final_lr=self.final_lr)


@dataclass(frozen=True)
class InitPredictor:
    """A trained predictor a run starts from (fine-tuning).

    Attributes:
        state_dict: its weights, normalisation buffers included.
        stats: its state/action normalisation (the new run keeps it: the weights expect it).
        record: where it came from (path, step, its data files), for the new run's data summary.
    """

    state_dict: dict[str, Tensor]
    stats: NormalizationStats
    record: dict[str, Any]


def init_predictor(
    path: str | Path,
    predictor_config: PredictorConfig,
    integration: StateIntegration,
    encoder_info: Mapping[str, Any],
) -> InitPredictor:
    """Read a trained predictor (file or run directory) to fine-tune it in a new run.

    Args:
        path: a predictor checkpoint (:func:`~jepa_wm.world_model.read_predictor_checkpoint`).
        predictor_config, integration, encoder_info: the new run's; they must be the checkpoint's.

    Raises:
        ValueError: the architecture, state integration or encoder differ (naming both values).
    """
    checkpoint = read_predictor_checkpoint(path)
    predictor, saved_integration = predictor_from_checkpoint(checkpoint)
    pairs = {
        "predictor": (asdict(predictor.config), asdict(predictor_config)),
        "state_integration": (asdict(saved_integration), asdict(integration)),
        "encoder": (checkpoint["extra"][MODEL_NAME]["encoder"], dict(encoder_info)),
    }
    diffs = [f"{name}: checkpoint {saved}, this run {now}" for name, (saved, now) in pairs.items() if saved != now]
    if diffs:
        raise ValueError(f"cannot start from {path}: " + "; ".join(diffs))
    stats = NormalizationStats(*(getattr(predictor, name).detach().clone()
                                 for name in ("state_mean", "state_std", "action_mean", "action_std")))
    data = checkpoint.get("data") or {}
    record = {"path": str(path), "step": int(checkpoint["step"]), "paths": data.get("paths"),
              "init": data.get("init")}
    return InitPredictor(predictor.state_dict(), stats, record)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left: its newest checkpoint, the steps done, the last metrics, and the
    exported predictor (``<run_dir>/predictor.pt``; None on the non-main ranks)."""

    checkpoint: Path
    step: int
    metrics: dict[str, Any]
    exported: Path | None = None


def train_predictor(
    run_dir: str | Path,
    train_set: Dataset,
    val_set: Dataset | None,
    *,
    predictor_config: PredictorConfig,
    stats: NormalizationStats,
    integration: StateIntegration,
    encoder_info: Mapping[str, Any],
    config: PredictorTrainConfig,
    context: DistributedContext,
    encoder: FrozenEncoder | None = None,
    data_summary: Mapping[str, Any] | None = None,
    progress: bool = True,
    init_state: Mapping[str, Tensor] | None = None,
) -> TrainResult:
    """Train (or resume training) the predictor on clips of latents (or frames + ``encoder``).

    Args:
        run_dir: output directory (``checkpoints/``, ``metrics.jsonl``/``.csv``).
        train_set, val_set: items with ``latents`` (or ``frames``), ``states``, ``actions``;
            clips of at least ``rollout_steps + 1`` frames. ``val_set`` holds held-out
            episodes (None or empty: no validation).
        predictor_config: the architecture (its ``embed_dim``/``grid_hw`` fit the encoder).
        stats: state/action normalisation stored in the predictor.
        integration: the state propagation rule recorded for planning.
        encoder_info: :func:`~jepa_wm.world_model.encoder_summary` of the encoder.
        config: optimisation settings.
        context: from :func:`~jepa_wm.training.distributed.init_distributed`.
        encoder: encodes ``frames`` batches (None when the datasets carry latents).
        data_summary: recorded in checkpoints.
        progress: show a tqdm bar (rank 0).
        init_state: weights to start from instead of random ones (:class:`InitPredictor`); a run
            that has checkpoints resumes from them instead.

    Raises:
        LockedError: another live run holds ``run_dir``.
        NonFiniteLossError: a loss or gradient became NaN or infinite (the run stops; the
            checkpoints saved before stay).
        CheckpointError: ``run_dir`` has checkpoints but none can be read.
    """
    with hold_run_dir(run_dir, enabled=context.is_main):
        run_dir, device = Path(run_dir), context.device
        run_config = {"predictor": asdict(predictor_config), "train": asdict(config),
                      "state_integration": asdict(integration), "encoder": dict(encoder_info),
                      "normalization": stats.to_dict(), "world_size": context.world_size}
        torch.manual_seed(config.seed)  # same initial weights on every rank
        predictor = ACPredictor(predictor_config)
        predictor.set_normalization(stats.state_mean, stats.state_std, stats.action_mean, stats.action_std)
        if init_state is not None:
            predictor.load_state_dict(init_state)
        predictor.to(device)
        logger.info("predictor: %.2fM parameters (%s)", count_parameters(predictor) / 1e6, predictor_config)
        optimizer = adamw([predictor], lr=config.peak_lr, weight_decay=config.weight_decay, betas=config.betas)
        scheduler = warmup_constant_decay(optimizer, config.lr_schedule())
        checkpoint_dir = run_dir / CHECKPOINT_DIR

        step = 0
        resumed = resume_latest(checkpoint_dir, run_config=run_config, fixed=_FIXED_ON_RESUME,
                                models={MODEL_NAME: predictor}, optimizer=optimizer, scheduler=scheduler,
                                schedule=config.lr_schedule(), device=device, set_aside=context.is_main)
        if resumed is not None:
            path, checkpoint = resumed
            step = int(checkpoint["step"])
            _warn_if_data_changed(checkpoint.get("data") or {}, data_summary or {}, path)

        pin = device.type == "cuda"
        loader, sampler, epoch = resumable_loader(train_set, context, batch_size=config.batch_size, seed=config.seed,
                                                  step=step, num_workers=config.num_workers, pin_memory=pin)
        val_loader = None
        if val_set is not None and len(val_set) > 0:
            val_subset = validation_subset(val_set, config.val_batches * config.batch_size * context.world_size)
            val_sampler = ResumableSampler(val_subset, num_replicas=context.world_size, rank=context.rank,
                                           shuffle=False, drop_last=False)
            val_loader = DataLoader(val_subset, batch_size=config.batch_size, sampler=val_sampler,
                                    num_workers=config.num_workers, pin_memory=pin)
        model = wrap_ddp(predictor, context)
        metrics = MetricsLogger(run_dir, resume_step=step, enabled=context.is_main)
        meta = {MODEL_NAME: predictor_meta(predictor, integration, encoder_info)}
        kwargs = dict(device=device, encoder=encoder, rollout_steps=config.rollout_steps, precision=config.precision)

        def save(at_step: int) -> None:
            if context.is_main:
                save_checkpoint(checkpoint_dir, step=at_step, models={MODEL_NAME: predictor}, optimizer=optimizer,
                                scheduler=scheduler, config=run_config, data=dict(data_summary or {}), extra=meta)
                prune_checkpoints(checkpoint_dir, config.keep_last)
            barrier()

        record: dict[str, Any] = {}
        window: list[list[float]] = []
        bar = tqdm(total=config.total_steps, initial=step, disable=not (progress and context.is_main),
                   desc="train predictor", dynamic_ncols=True)
        tick = start_time = time.perf_counter()
        with bar:
            for epoch, batch in training_batches(loader, sampler, epoch, step, config.total_steps):
                out = train_step(model, batch, optimizer, scheduler=scheduler, clip_grad=config.clip_grad,
                                 step=step + 1, checkpoint_dir=checkpoint_dir, **kwargs)
                step += 1
                window.append([out["loss"], out["loss_tf"], out["loss_rollout"]])
                bar.update()
                last = step == config.total_steps
                val_due = val_loader is not None and (step % config.val_every == 0 or last)
                if step % config.log_every == 0 or val_due or last:
                    mean = all_reduce_mean(torch.tensor(window, device=device).mean(dim=0)).tolist()
                    now = time.perf_counter()
                    record = {"step": step, "epoch": epoch, "loss": mean[0], "loss_tf": mean[1],
                              "loss_rollout": mean[2], "lr": out["lr"], "grad_norm": out["grad_norm"],
                              "clips_per_s": len(window) * config.batch_size * context.world_size / (now - tick),
                              "elapsed_s": now - start_time}
                    if val_due:
                        val = validate(model, val_loader, **kwargs)
                        check_finite_losses(val, step=step, checkpoint_dir=checkpoint_dir, what="validation")
                        record.update(val)
                    else:
                        record.update(dict.fromkeys(VAL_KEYS))
                    metrics.log(record)
                    bar.set_postfix(loss=f"{mean[0]:.4f}", lr=f"{out['lr']:.2e}")
                    window, tick = [], time.perf_counter()
                if step % config.checkpoint_every == 0 or last:
                    save(step)
        final = latest_checkpoint(checkpoint_dir)
        assert final is not None, "the loop saves at total_steps"
        exported = export_predictor_checkpoint(final, run_dir / PREDICTOR_FILE) if context.is_main else None
        barrier()
        return TrainResult(checkpoint=final, step=step, metrics=record, exported=exported)


def _warn_if_data_changed(saved: Mapping[str, Any], current: Mapping[str, Any], path: str | Path) -> None:
    """Warn when a resumed run reads other files or episodes than its checkpoint was trained on."""
    keys = ("files", "train_episodes", "val_episodes")
    changed = [k for k in keys if k in saved and k in current and saved[k] != current[k]]
    if changed:
        logger.warning("the training data differ from %s's (%s): the episode split is drawn over all files "
                       "together, so added or removed episodes move episodes between training and validation",
                       path, ", ".join(f"{k}: {_brief(saved[k])} -> {_brief(current[k])}" for k in changed))


def _brief(value: Any) -> Any:
    """A file list as (path, episodes) pairs, other values as they are."""
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return [(v.get("path"), v.get("episodes")) for v in value]
    return value


def validation_subset(val_set: Dataset, size: int) -> Dataset:
    """The same ``size`` clips of ``val_set`` at every validation, spread evenly over it (so
    over all its files and episodes, not only the first ones); all of it when it is smaller."""
    n = len(val_set)
    if n <= size:
        return val_set
    return Subset(val_set, np.linspace(0, n - 1, size).round().astype(int).tolist())


_FIXED_ON_RESUME = ("predictor", "encoder", "world_size")

