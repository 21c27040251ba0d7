"""The V-JEPA pretraining loop: data-parallel, checkpointed, resumable to the exact step.

:func:`pretrain` trains a :class:`~jepa_wm.pretrain.objective.JEPA` on video clips and
writes into ``run_dir``:

* ``checkpoints/step_<n>.pt`` every ``checkpoint_every`` steps and at the end (rank 0,
  atomic; the ``keep_last`` newest are kept);
* ``metrics.jsonl`` / ``metrics.csv``: step, loss, collapse signal, learning rate, ...;
* ``encoder.pt``: the final target encoder (:func:`~jepa_wm.encoders.checkpoint.save_encoder_checkpoint`).

The run holds ``run_dir`` (:func:`~jepa_wm.training.resume.hold_run_dir`: a second run on it is
refused); a NaN or infinite loss or gradient stops it with a
:class:`~jepa_wm.training.loop.NonFiniteLossError`, keeping the checkpoints saved before.

Calling it again with the same arguments resumes from the newest checkpoint. Nothing in the
loop draws from global random state: the data order of epoch ``e`` is a permutation seeded
by ``(seed, e)`` (:class:`~jepa_wm.training.distributed.ResumableSampler`, skipping the
batches already done), and the masks of step ``s`` come from a generator seeded by
``(seed, s, rank)``. A resumed run therefore computes the same steps as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from jepa_wm.encoders.checkpoint import save_encoder_checkpoint
from jepa_wm.encoders.frozen import IMAGENET_MEAN, IMAGENET_STD
from jepa_wm.encoders.vit import VisionTransformer, ViTConfig
from jepa_wm.pretrain.augment import CropSpec, random_resized_crop
from jepa_wm.pretrain.ema import MomentumSchedule
from jepa_wm.pretrain.masks import BlockMaskSpec, MultiBlockMasker
from jepa_wm.pretrain.objective import JEPA
from jepa_wm.pretrain.predictor import MaskedPredictor, PredictorConfig
from jepa_wm.training import (
    PRECISIONS,
    DistributedContext,
    MetricsLogger,
    Precision,
    WarmupConstantDecay,
    adamw,
    all_reduce_mean,
    autocast,
    barrier,
    hold_run_dir,
    optimizer_step,
    prune_checkpoints,
    resumable_loader,
    resume_latest,
    save_checkpoint,
    training_batches,
    warmup_constant_decay,
    wrap_ddp,
)

logger = logging.getLogger(__name__)

ENCODER_FILE = "encoder.pt"
# Settings a resumed run must share with its checkpoint (they change what a step computes).
_FIXED_ON_RESUME = ("vit", "predictor", "masks", "batch_size", "seed", "world_size")


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings of one pretraining run.

    Args:
        total_steps: optimisation steps.
        batch_size: clips per process and step (global batch = batch_size * world size).
        peak_lr, start_lr, final_lr, warmup_steps, decay_steps: the
            :class:`~jepa_wm.training.schedule.WarmupConstantDecay` learning rate.
        weight_decay: AdamW weight decay (not on biases and norms).
        betas: AdamW betas.
        clip_grad: max gradient norm, or None.
        ema: (start, end) momentum of the target encoder, linear over training.
        precision: ``"fp32"`` or ``"bf16"`` autocast (bf16 for GPUs).
        checkpoint_every: steps between checkpoints.
        keep_last: checkpoints kept on disk.
        log_every: steps between metric records.
        seed: seed of the initialisation, data order, masks and crops.
        num_workers: DataLoader worker processes.
        crop_scale: (min, max) area fraction of a random resized crop per clip
            (:mod:`~jepa_wm.pretrain.augment`), or None for no cropping.
        crop_aspect_ratio: (min, max) aspect ratio of the crop box.
    """

    total_steps: int = 600
    batch_size: int = 16
    peak_lr: float = 2.5e-4
    start_lr: float = 5e-5
    final_lr: float = 1e-5
    warmup_steps: int = 60
    decay_steps: int = 150
    weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = 1.0
    ema: tuple[float, float] = (0.996, 0.9995)
    precision: Precision = "fp32"
    checkpoint_every: int = 50
    keep_last: int = 2
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    crop_scale: tuple[float, float] | None = None
    crop_aspect_ratio: tuple[float, float] = (0.75, 1.35)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "ema", tuple(self.ema))
        object.__setattr__(self, "crop_aspect_ratio", tuple(self.crop_aspect_ratio))
        if self.crop_scale is not None:
            object.__setattr__(self, "crop_scale", tuple(self.crop_scale))
        self.crop_spec()  # validates the crop ranges
        for name in ("total_steps", "batch_size", "checkpoint_every", "keep_last", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PretrainConfig.{name} must be an int >= 1, got {value!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"clip_grad must be > 0 or None, got {self.clip_grad}")
        self.lr_schedule()  # validates the schedule fields
        self.momentum_schedule()

    def lr_schedule(self) -> WarmupConstantDecay:
        return WarmupConstantDecay(
            peak_lr=self.peak_lr,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            decay_steps=self.decay_steps,
            start_lr=self.start_lr,
            final_lr=self.final_lr,
        )

    def momentum_schedule(self) -> MomentumSchedule:
        return MomentumSchedule(self.ema[0], self.ema[1], self.total_steps)

    def crop_spec(self) -> CropSpec | None:
        if self.crop_scale is None:
            return None
        return CropSpec(scale=self.crop_scale, aspect_ratio=self.crop_aspect_ratio)


@dataclass(frozen=True)
class PretrainResult:
    """What a finished run left: the encoder file, the steps done, the last logged metrics."""

    encoder_path: Path
    step: int
    metrics: dict[str, Any]


def clips_to_video(frames: Tensor, img_hw: tuple[int, int]) -> Tensor:
    """uint8 clips (B, T, 3, H, W) -> ImageNet-normalised float video (B, 3, T, H', W').

    Frames are resized (bilinear, antialiased) when (H, W) differs from ``img_hw``.
    """
    if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(f"expected uint8 clips (B, T, 3, H, W), got {frames.dtype} {tuple(frames.shape)}")
    batch, steps = frames.shape[:2]
    x = frames.flatten(0, 1).float() / 255.0  # (B*T, 3, H, W)
    if tuple(x.shape[-2:]) != tuple(img_hw):
        x = F.interpolate(x, size=img_hw, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    x = ((x - mean) / std).unflatten(0, (batch, steps))  # (B, T, 3, H', W')
    return x.transpose(1, 2).contiguous()  # (B, 3, T, H', W')


def mask_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of step ``step``'s masks on ``rank``: depends on nothing else."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)



def pretrain(
    run_dir: str | Path,
    dataset: Dataset,
    *,
    vit_config: ViTConfig,
    predictor_config: PredictorConfig,
    mask_specs: Sequence[BlockMaskSpec],
    config: PretrainConfig,
    context: DistributedContext,
    data_summary: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> PretrainResult:
    """Train (or resume training) a V-JEPA encoder on ``dataset``.

    Args:
        run_dir: output directory (checkpoints, metrics, ``encoder.pt``).
        dataset: items with ``"frames"`` uint8 (T, 3, H, W), e.g. a
            :class:`~jepa_wm.data.clips.ClipDataset`; T must be a multiple of the tubelet size.
        vit_config: the encoder; its ``num_frames`` must equal T.
        predictor_config: the predictor (``embed_dim`` = encoder width,
            ``num_mask_tokens`` = number of mask specs).
        mask_specs: the multi-block mask families drawn every step.
        config: optimisation settings.
        context: from :func:`~jepa_wm.training.distributed.init_distributed`.
        data_summary: recorded in checkpoints and the encoder file.
        progress: show a tqdm bar (rank 0).

    Returns:
        The encoder file, the final step and the last metrics record.

    Raises:
        LockedError: another live run holds ``run_dir``.
        NonFiniteLossError: the loss or the gradients became NaN or infinite.
        CheckpointError: ``run_dir`` has checkpoints but none can be read.
    """
    run_dir = Path(run_dir)
    if predictor_config.embed_dim != vit_config.embed_dim:
        raise ValueError(
            f"predictor embed_dim {predictor_config.embed_dim} != encoder embed_dim {vit_config.embed_dim}"
        )
    if predictor_config.num_mask_tokens != len(mask_specs):
        raise ValueError(
            f"predictor has {predictor_config.num_mask_tokens} mask tokens for {len(mask_specs)} mask specs"
        )
    run_config = {
        "vit": asdict(vit_config),
        "predictor": asdict(predictor_config),
        "masks": [asdict(spec) for spec in mask_specs],
        **asdict(config),
        "world_size": context.world_size,
    }
    with hold_run_dir(run_dir, enabled=context.is_main):
        data_summary = dict(data_summary or {})
        device = context.device

        torch.manual_seed(config.seed)  # same initial weights on every rank
        model = JEPA(VisionTransformer(vit_config), MaskedPredictor(predictor_config)).to(device)
        optimizer = adamw([model.encoder, model.predictor], lr=config.peak_lr,
                          weight_decay=config.weight_decay, betas=config.betas)
        scheduler = warmup_constant_decay(optimizer, config.lr_schedule())
        momentum = config.momentum_schedule()
        crop = config.crop_spec()
        checkpoint_dir = run_dir / "checkpoints"

        step, earlier_seconds = 0, 0.0  # training time of earlier (interrupted) processes
        resumed = resume_latest(checkpoint_dir, run_config=run_config, fixed=_FIXED_ON_RESUME, models={"jepa": model},
                                optimizer=optimizer, scheduler=scheduler, schedule=config.lr_schedule(), device=device,
                                set_aside=context.is_main)
        if resumed is not None:
            checkpoint = resumed[1]
            step = int(checkpoint["step"])
            earlier_seconds = float(checkpoint["extra"].get("train_seconds", 0.0))

        grid = (vit_config.num_frames // vit_config.tubelet_size, *vit_config.grid_hw)
        masker = MultiBlockMasker(grid, mask_specs)
        loader, sampler, epoch = resumable_loader(dataset, context, batch_size=config.batch_size, seed=config.seed,
                                                  step=step, num_workers=config.num_workers,
                                                  pin_memory=device.type == "cuda")
        ddp_model = wrap_ddp(model, context)
        metrics = MetricsLogger(run_dir, resume_step=step, enabled=context.is_main)

        def save(at_step: int) -> None:
            if context.is_main:
                seconds = earlier_seconds + time.perf_counter() - start_time
                save_checkpoint(checkpoint_dir, step=at_step, models={"jepa": model}, optimizer=optimizer,
                                scheduler=scheduler, config=run_config, data=data_summary,
                                extra={"train_seconds": seconds})
                prune_checkpoints(checkpoint_dir, config.keep_last)
            barrier()

        record: dict[str, Any] = {}
        window: list[tuple[float, float]] = []
        bar = tqdm(total=config.total_steps, initial=step, disable=not (progress and context.is_main),
                   desc="pretrain", dynamic_ncols=True)
        tick, start_step, start_time = time.perf_counter(), step, time.perf_counter()
        model.train()
        with bar:
            for epoch, batch in training_batches(loader, sampler, epoch, step, config.total_steps):
                video = clips_to_video(batch["frames"].to(device, non_blocking=True), vit_config.img_hw)
                generator = mask_generator(config.seed, step, context.rank)
                masks = [pair.to(device) for pair in masker(video.shape[0], generator)]
                if crop is not None:
                    video = random_resized_crop(video, crop, generator)
                with autocast(device, config.precision):
                    loss, target_std = ddp_model(video, masks)
                lr = optimizer.param_groups[0]["lr"]
                grad_norm = optimizer_step(loss, optimizer, scheduler=scheduler, clip_grad=config.clip_grad,
                                           step=step + 1, checkpoint_dir=checkpoint_dir)
                model.update_target(momentum.at(step))
                step += 1
                window.append((float(loss.detach()), float(target_std)))
                bar.update()
                if step % config.log_every == 0 or step == config.total_steps:
                    mean = all_reduce_mean(torch.tensor(window, device=device).mean(dim=0))
                    now = time.perf_counter()
                    record = {
                        "step": step,
                        "epoch": epoch,
                        "loss": float(mean[0]),
                        "target_std": float(mean[1]),
                        "lr": lr,
                        "ema_momentum": momentum.at(step - 1),
                        "grad_norm": grad_norm,
                        "clips_per_s": len(window) * config.batch_size * context.world_size / (now - tick),
                        "train_seconds": earlier_seconds + now - start_time,  # across resumptions
                    }
                    metrics.log(record)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", std=f"{record['target_std']:.3f}",
                                    lr=f"{lr:.2e}")
                    window, tick = [], now
                if step % config.checkpoint_every == 0 or step == config.total_steps:
                    save(step)
        if step > start_step:
            logger.info("trained steps %d..%d in %.1f s", start_step, step, time.perf_counter() - start_time)
        encoder_path = run_dir / ENCODER_FILE
        if context.is_main:
            save_encoder_checkpoint(encoder_path, model.target_encoder, step=step,
                                    data=data_summary, config=run_config)
        barrier()
        return PretrainResult(encoder_path=encoder_path, step=step, metrics=record)
