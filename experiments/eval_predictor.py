"""Open-loop latent prediction error of a trained predictor on held-out episodes.

Reports, for rollouts of 1, 2, 4 and 8 steps from one observed frame, the latent L1 error of
the predictor, of repeating the last frame's latent, and of the predictor fed another clip's
actions (see :mod:`jepa_wm.evaluation.open_loop`). Prints a table and writes JSON.

Examples::

    python experiments/eval_predictor.py                                # runs/train_predictor/tiny
    python experiments/eval_predictor.py checkpoint=runs/train_predictor/small horizons=[1,2,4]
    python experiments/eval_predictor.py checkpoint=runs/x/checkpoints/step_00001000.pt \\
        data.paths=[data/pick_place.hdf5] data.split=all out=results/pick_place_eval.json

With ``object_reader=<reader.pt>`` (``experiments/train_object_reader.py``, on the same encoder) it
also reports whether one predicted step moves the object where the true next frame does, as the
reader reads both, over the held-out clips whose object moved (``jepa_wm.plugins.object_reader.reader.evaluate_object_motion``)::

    python experiments/eval_predictor.py checkpoint=jepa_wm/checkpoints/predictor_tiny_2cam_6k.pt \
        encoder=jepa_wm/checkpoints/encoder_tiny_2cam.pt object_reader=runs/object_reader/push_2cam.pt \
        "data.paths=[data/fs/pretrain_push.hdf5,data/fs/play_push.hdf5]"
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from jepa_wm.data.latents import LatentClipDataset, open_clips
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.evaluation.open_loop import evaluate_open_loop
from jepa_wm.plugins.object_reader.reader import ObjectReader
from jepa_wm.plugins.object_reader.train import evaluate_object_motion
from jepa_wm.world_model import (
    CHECKPOINT_DIR,
    encoder_pool,
    find_predictor_checkpoint,
    load_world_model,
    read_predictor_checkpoint,
)

log = logging.getLogger(__name__)
FROM_TRAINING = ("paths", "frame_skip", "val_fraction", "split_seed", "flip_images")


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval_predictor")
def main(cfg: DictConfig) -> None:
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    path = find_predictor_checkpoint(cfg.checkpoint)
    checkpoint = read_predictor_checkpoint(path)
    world_model = load_world_model(
        checkpoint, load_encoder_checkpoint(cfg.encoder, pool=encoder_pool(checkpoint)).to(device))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    trained_on = checkpoint["data"]
    for key in FROM_TRAINING:
        if data[key] is None:
            data[key] = trained_on[key]
    paths, source = data.pop("paths"), data.pop("latents")
    horizons = tuple(cfg.horizons)
    dataset = open_clips(paths, world_model.encoder, source=source, clip_len=max(horizons) + 1, **data)
    if len(dataset) < cfg.batch_size:
        raise SystemExit(f"error: {len(dataset)} held-out clips of {max(horizons) + 1} frames, fewer than "
                         f"batch_size={cfg.batch_size}: lower batch_size (>= 2) or the horizons")
    # full batches only: the shuffled-action control pairs each clip with its neighbour in the batch
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    result = evaluate_open_loop(
        world_model.predictor, world_model.integration, loader, device=device, horizons=horizons,
        encoder=None if isinstance(dataset, LatentClipDataset) else world_model.encoder,
        max_batches=cfg.max_batches,
    )
    log.info("open-loop latent L1 of %s (step %d)\n%s", path, checkpoint["step"], result.table())
    motion = None if cfg.object_reader is None else _object_motion(cfg, world_model, dataset, device)
    run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
    out = Path(cfg.out) if cfg.out is not None else run_dir / "eval_open_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(path), "step": checkpoint["step"], "result": result.to_dict(), "object_motion": motion,
              "data": {"paths": paths, **data, "clips": len(dataset), "episodes": len(dataset.episodes)},
              "config": OmegaConf.to_container(cfg, resolve=True)}
    out.write_text(json.dumps(report, indent=1))
    log.info("wrote %s", out)


def _object_motion(cfg: DictConfig, world_model, dataset, device: torch.device) -> dict:
    """:func:`evaluate_object_motion` of the predictor on ``dataset``'s clips with the reader ``cfg.object_reader``."""
    try:
        reader, _ = ObjectReader.load(cfg.object_reader, encoder_fingerprint=world_model.encoder.fingerprint(),
                                      target="object")
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False)
    return evaluate_object_motion(world_model, reader.to(device), loader, dataset.episodes, dataset.frame_skip,
                                  device=device, max_batches=cfg.max_batches)


if __name__ == "__main__":
    main()
