"""Train the action-conditioned predictor on a frozen encoder's latents (resumable).

Examples::

    # CPU default: tiny predictor on the tiny pretrained encoder, cached latents when present
    python experiments/train_predictor.py
    # build the latent caches first (once per encoder), then train from them
    python experiments/train_predictor.py data.latents=build
    # same command again after an interruption: continues from the newest checkpoint
    python experiments/train_predictor.py
    # published predictor size, 8 GPUs, bf16, 3-step rollout loss, longer clips
    torchrun --nproc_per_node=8 experiments/train_predictor.py predictor=vjepa2_ac \\
        train.precision=bf16 train.batch_size=32 train.total_steps=94500 train.warmup_steps=4500 \\
        train.decay_steps=4500 train.rollout_steps=3 data.clip_len=8 train.num_workers=4 \\
        run_dir=runs/train_predictor/vjepa2_ac
    # fine-tune a trained predictor on other data (its weights and normalisation, a fresh schedule)
    python experiments/train_predictor.py init=runs/train_predictor/tiny/predictor.pt \\
        "data.paths=[data/play_pick_place.hdf5]" run_dir=runs/train_predictor/tiny_pick_place
    # fine-tune on push with the clips that move the cube listed 4 times (jepa_wm/data/oversample.py)
    python experiments/train_predictor.py init=runs/train_predictor/tiny/predictor.pt \\
        "data.paths=[data/play_push.hdf5]" oversample.min_move=0.005 oversample.repeat=4
    # two CPU processes (gloo), e.g. to check the data-parallel path
    torchrun --nproc_per_node=2 experiments/train_predictor.py device=cpu threads=1

Checkpoints go to ``<run_dir>/checkpoints``; at the end ``<run_dir>/predictor.pt`` holds the
predictor without optimiser state (the file to ship). A run holds its run_dir: a second one on the
same run_dir exits with an error and touches nothing there. A NaN or infinite loss stops the run
with an error naming the step and the last good checkpoint, which is kept (exit status 1). Load
the world model with ``jepa_wm.world_model.load_world_model(run_dir, encoder)``; evaluate with
``experiments/eval_predictor.py checkpoint=<run_dir>``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset, Subset

from jepa_wm.data import ClipDataset
from jepa_wm.data.latents import LatentClipDataset, normalization_stats, open_clips
from jepa_wm.data.oversample import clip_object_moves, moving_clip_indices
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.encoders.latent_cache import build_latent_cache
from jepa_wm.locks import LockedError
from jepa_wm.predictor_training import (
    PredictorTrainConfig,
    init_predictor,
    train_predictor,
)
from jepa_wm.state_integration import integration_for_tasks
from jepa_wm.training import (
    DistributedContext,
    NonFiniteLossError,
    barrier,
    cleanup_distributed,
    hold_run_dir,
    init_distributed,
    quiet_non_main_ranks,
)
from jepa_wm.world_model import encoder_summary

log = logging.getLogger(__name__)


def oversample_moving(train_set: ClipDataset, cfg: DictConfig) -> tuple[Dataset, dict[str, Any] | None]:
    """The training clips with those whose object moves repeated (``cfg.min_move`` null: as recorded).

    Returns the dataset to train on and its summary for the checkpoint (None when not oversampled).
    """
    if cfg.min_move is None:
        return train_set, None
    try:
        moves = clip_object_moves(train_set)
        indices = moving_clip_indices(moves, min_move=cfg.min_move, repeat=cfg.repeat)
    except ValueError as err:
        raise SystemExit(f"error: oversample: {err}") from None
    moving = int((moves > cfg.min_move).sum())
    log.info("oversample: %d of %d training clips move the object more than %.3f m, each listed %d times: "
             "%d clips per epoch", moving, len(moves), cfg.min_move, cfg.repeat, len(indices))
    return Subset(train_set, indices.tolist()), {"min_move": float(cfg.min_move), "repeat": int(cfg.repeat),
                                                 "moving_clips": moving, "clips_per_epoch": len(indices)}


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_predictor")
def main(cfg: DictConfig) -> None:
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    context = init_distributed(device=cfg.device)
    quiet_non_main_ranks(context)
    try:
        with hold_run_dir(cfg.run_dir, enabled=context.is_main):  # before anything is read or written there
            train(cfg, context)
    except (LockedError, NonFiniteLossError, FileNotFoundError, ValueError) as err:
        # a taken run dir, a diverged run, a missing or unreadable file, a checkpoint of another setup
        raise SystemExit(f"error: {err}") from None
    finally:
        cleanup_distributed()


def train(cfg: DictConfig, context: DistributedContext) -> None:
    """Read the data and the encoder, train (or resume) into ``cfg.run_dir``, export ``predictor.pt``."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    paths, source = data.pop("paths"), data.pop("latents")
    norm_clips, norm_min_std = data.pop("norm_clips"), data.pop("norm_min_std")
    encoder = load_encoder_checkpoint(cfg.encoder, pool=cfg.encoder_pool).to(context.device)
    if source == "build":
        if context.is_main:
            for path in paths:
                build_latent_cache(path, encoder, flip_images=data["flip_images"], progress=cfg.progress)
        barrier()
        source = "cache"
    train_set, val_set = (open_clips(paths, encoder, source=source, split=s, **data) for s in ("train", "val"))
    from_latents = isinstance(train_set, LatentClipDataset)
    predictor_config = instantiate(cfg.predictor, embed_dim=encoder.embed_dim, grid_hw=encoder.grid_hw)
    encoder_info = encoder_summary(encoder)
    integration = integration_for_tasks([s.meta.get("task") for s in train_set.summaries],
                                        **OmegaConf.to_container(cfg.state_integration))
    init = None if cfg.init is None else init_predictor(cfg.init, predictor_config, integration, encoder_info)
    if init is not None:
        stats = init.stats
    else:
        stats_set = ClipDataset(paths, split="train", **data) if from_latents else train_set  # no latents read
        stats = normalization_stats(stats_set, max_clips=norm_clips, min_std=norm_min_std, seed=data["split_seed"])
    train_data, oversampled = oversample_moving(train_set, cfg.oversample)
    summary = {
        "paths": paths, **data, "source": "latents" if from_latents else "frames",
        "files": [s.to_dict() for s in train_set.summaries],
        "train_episodes": len(train_set.episodes), "train_clips": len(train_set),
        "val_episodes": len(val_set.episodes), "val_clips": len(val_set), "oversample": oversampled,
        "normalization": stats.to_dict(), "init": None if init is None else init.record,
    }
    log.info("%d training clips (%d episodes), %d validation clips (%d episodes), from %s",
             len(train_set), len(train_set.episodes), len(val_set), len(val_set.episodes), summary["source"])
    result = train_predictor(
        cfg.run_dir, train_data, val_set,
        predictor_config=predictor_config, stats=stats, integration=integration, encoder_info=encoder_info,
        config=PredictorTrainConfig(**OmegaConf.to_container(cfg.train, resolve=True)), context=context,
        encoder=None if from_latents else encoder, data_summary=summary, progress=cfg.progress,
        init_state=None if init is None else init.state_dict,
    )
    if context.is_main:
        log.info("checkpoint: %s (step %d), predictor for planning: %s; last metrics %s", result.checkpoint,
                 result.step, result.exported, json.dumps(result.metrics))


if __name__ == "__main__":
    main()
