"""Pretrain our video encoder with the V-JEPA objective on collected task videos (resumable).

Examples::

    # CPU default (tiny ViT, 64x64, 4-frame clips; under 30 min on 2 cores)
    python experiments/pretrain_encoder.py
    # same command again after an interruption: continues from the newest checkpoint
    python experiments/pretrain_encoder.py
    # bigger model and images, 8 GPUs on one node, bf16
    torchrun --nproc_per_node=8 experiments/pretrain_encoder.py encoder.size=small \\
        encoder.img_size=128 data.clip_len=8 train.batch_size=64 train.total_steps=20000 \\
        train.precision=bf16 train.num_workers=4 run_dir=runs/pretrain_encoder/small128
    # two CPU processes (gloo), e.g. to check the data-parallel path
    torchrun --nproc_per_node=2 experiments/pretrain_encoder.py device=cpu threads=1

The final encoder is ``<run_dir>/encoder.pt``; load it with
``jepa_wm.encoders.checkpoint.load_encoder_checkpoint``. A run holds its run_dir: a second one on the
same run_dir exits with an error and touches nothing there. A NaN or infinite loss stops the run with
an error naming the step and the last good checkpoint, which is kept (exit status 1).
"""

from __future__ import annotations

import json
import logging

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from jepa_wm.data import ClipDataset
from jepa_wm.encoders import vit_config
from jepa_wm.locks import LockedError
from jepa_wm.pretrain import BlockMaskSpec, PredictorConfig, PretrainConfig, pretrain
from jepa_wm.training import (
    DistributedContext,
    NonFiniteLossError,
    cleanup_distributed,
    hold_run_dir,
    init_distributed,
    quiet_non_main_ranks,
)

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="pretrain_encoder")
def main(cfg: DictConfig) -> None:
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    context = init_distributed(device=cfg.device)
    quiet_non_main_ranks(context)
    try:
        with hold_run_dir(cfg.run_dir, enabled=context.is_main):  # before anything is read or written there
            run(cfg, context)
    except (LockedError, NonFiniteLossError, FileNotFoundError, ValueError) as err:
        # a taken run dir, a diverged run, a missing or unreadable file, a checkpoint of another setup
        raise SystemExit(f"error: {err}") from None
    finally:
        cleanup_distributed()


def run(cfg: DictConfig, context: DistributedContext) -> None:
    """Read the clips, pretrain (or resume) into ``cfg.run_dir``; the encoder goes to ``encoder.pt``."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    dataset = ClipDataset(data["paths"], clip_len=data["clip_len"], frame_skip=data["frame_skip"],
                          clip_stride=data["clip_stride"], split="train",
                          val_fraction=data["val_fraction"], split_seed=data["split_seed"])
    encoder = OmegaConf.to_container(cfg.encoder, resolve=True)
    vit = vit_config(encoder.pop("size"), num_frames=data["clip_len"], **encoder)
    specs = [BlockMaskSpec(**spec) for spec in OmegaConf.to_container(cfg.masks, resolve=True)]
    predictor = PredictorConfig(embed_dim=vit.embed_dim, num_mask_tokens=len(specs),
                                rope_layout=vit.rope_layout,
                                **OmegaConf.to_container(cfg.predictor, resolve=True))
    summary = {
        **data,
        "files": [s.to_dict() for s in dataset.summaries],
        "train_episodes": len(dataset.episodes),
        "train_clips": len(dataset),
    }
    log.info("%d training clips from %d episodes", len(dataset), len(dataset.episodes))
    train = PretrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))
    result = pretrain(cfg.run_dir, dataset, vit_config=vit, predictor_config=predictor,
                      mask_specs=specs, config=train, context=context,
                      data_summary=summary, progress=cfg.progress)
    if context.is_main:
        log.info("encoder: %s (step %d); last metrics %s", result.encoder_path, result.step,
                 json.dumps(result.metrics))


if __name__ == "__main__":
    main()
