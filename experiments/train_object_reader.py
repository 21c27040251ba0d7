"""Train an object reader: the object's xyz, read from an encoder's latents.

Examples::

    python experiments/train_object_reader.py     # push's 400 two-camera episodes, the two-camera encoder
    python experiments/plan.py task=push world_model.object_reader=runs/object_reader/push_2cam.pt
    python experiments/train_object_reader.py target=hand out=runs/object_reader/hand_2cam.pt
    python experiments/plan.py task=pick_place costs.hand.reader=runs/object_reader/hand_2cam.pt

Reads every ``frame_stride``-th observation's latent from the encoder's latent caches of
``data.paths`` (built first when missing, as ``train_predictor.py data.latents=build`` does),
labelled by the object's true position (``obs/object``; frames whose object fell off the
table are left out) or, with ``target=hand``, by the grip site's (``obs/state``, the robot's own
proprioception: a hand reader, for the hand-pull cost term), trains the reader on all but ``held_out``
of the episodes, logs its error on those, and writes it to ``out`` with the encoder's fingerprint
(plan.py checks it) and what it was trained on (``jepa_wm/plugins/object_reader/``).
"""

from __future__ import annotations

import logging

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from jepa_wm.data import ClipDataset
from jepa_wm.data.latents import usable_caches
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.encoders.latent_cache import build_latent_cache
from jepa_wm.plugins.object_reader.train import load_object_frames, train_object_reader
from jepa_wm.training.loop import NonFiniteLossError

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_object_reader")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    paths = list(cfg.data.paths)
    try:
        encoder = load_encoder_checkpoint(cfg.encoder)
        dataset = ClipDataset(paths, clip_len=2, split="all")
        caches = usable_caches(paths, encoder)
        if caches is None:
            if cfg.data.latents != "auto":
                raise ValueError(f"the latent caches of {paths} for {cfg.encoder} are missing or stale "
                                 "(data.latents=auto builds them)")
            caches = [build_latent_cache(path, encoder, progress=cfg.progress) for path in paths]
        frames = load_object_frames(dataset.episodes, dict(zip(paths, map(str, caches), strict=True)),
                                    cfg.frame_stride, progress=cfg.progress, target=cfg.target)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise SystemExit(f"error: {err}") from None
    log.info("%d frames of %d episodes", len(frames.positions), len(dataset.episodes))
    try:
        reader, metrics = train_object_reader(frames, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                              weight_decay=cfg.weight_decay, width=cfg.width, hidden=cfg.hidden,
                                              held_out=cfg.held_out, seed=cfg.seed, progress=cfg.progress)
        meta = {**metrics, "target": cfg.target, "encoder_fingerprint": encoder.fingerprint(),
                "encoder": str(cfg.encoder), "config": OmegaConf.to_container(cfg, resolve=True),
                "data": [summary.to_dict() for summary in dataset.summaries]}
        out = reader.save(cfg.out, meta)
    except (NonFiniteLossError, ValueError) as err:  # too few episodes, a diverged training (nothing is written)
        raise SystemExit(f"error: {err}") from None
    log.info("held-out xy error median %.2f cm; written to %s", metrics["held_out_xy_error_cm_median"], out)


if __name__ == "__main__":
    main()
