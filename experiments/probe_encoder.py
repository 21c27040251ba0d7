"""Linear probes of frozen features on held-out episodes: pretrained vs random encoder vs pixels.

Examples::

    python experiments/probe_encoder.py
    python experiments/probe_encoder.py encoder=runs/pretrain_encoder/small128/encoder.pt \\
        frame_stride=2 out=runs/probe_encoder/small128.json

Fits ridge regressors from single-frame features to the gripper xyz (``obs/state[:, :3]``)
and object xyz (``obs/object[:, :3]``) on the training episodes of the pretraining split and
reports R^2 on its held-out episodes (see :mod:`jepa_wm.evaluation.probe` for the features). Prints a
table and writes JSON with the configuration.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from jepa_wm.data import ClipDataset
from jepa_wm.encoders import FrozenEncoder, VisionTransformer
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint, read_encoder_checkpoint
from jepa_wm.evaluation.probe import (
    encoder_features,
    format_table,
    load_probe_frames,
    pixel_features,
    probe_features,
)

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="probe_encoder")
def main(cfg: DictConfig) -> None:
    split = {"val_fraction": cfg.data.val_fraction, "split_seed": cfg.data.split_seed}
    paths = list(cfg.data.paths)
    train = load_probe_frames(ClipDataset(paths, clip_len=2, split="train", **split).episodes, cfg.frame_stride)
    test = load_probe_frames(ClipDataset(paths, clip_len=2, split="val", **split).episodes, cfg.frame_stride)
    log.info("probe frames: %d train, %d held-out; targets %s", len(train.images), len(test.images),
             sorted(train.targets))

    checkpoint = read_encoder_checkpoint(cfg.encoder)
    pretrained = load_encoder_checkpoint(cfg.encoder)
    torch.manual_seed(cfg.random_init_seed)  # seed 0: the very weights pretraining (seed 0) started from
    random_init = FrozenEncoder(VisionTransformer(pretrained.vit.config))
    extractors = {
        "pretrained": lambda images: encoder_features(pretrained, images, pool_grid=cfg.pool_grid,
                                                      batch_size=cfg.batch_size),
        "random_init": lambda images: encoder_features(random_init, images, pool_grid=cfg.pool_grid,
                                                       batch_size=cfg.batch_size),
        "pixels": lambda images: pixel_features(images, cfg.pixel_size),
    }
    results = {}
    for name, extract in extractors.items():
        log.info("probing %s features", name)
        results[name] = probe_features(extract(train.images), train, extract(test.images), test, folds=cfg.folds)
    table = format_table(results)
    log.info("held-out R^2 (%d test frames)\n%s", len(test.images), table)

    report = {
        "results": results,
        "frames": {"train": len(train.images), "test": len(test.images)},
        "encoder": {"path": str(cfg.encoder), "step": checkpoint["step"], "vit_config": checkpoint["vit_config"]},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
