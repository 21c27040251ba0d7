"""Train the gripper reader: open or closed, read from a goal image's pixels.

Examples::

    python experiments/collect.py task=pick_place episodes=120 seed=5000 "noise=[0.05,1.0]" \\
        out=data/front/gripper_pick_place.hdf5
    python experiments/train_gripper_reader.py
    python experiments/plan.py task=pick_place subgoals.gripper_goals=reader objective.gripper_weight=0.05

Labels every ``frame_stride``-th observation of the episodes in ``data.paths`` closed or open from
its true gripper opening (``jepa_wm/gripper_reader.py``), trains the CNN on all but ``held_out``
of the episodes, logs its accuracy on those, and writes it to ``out`` with what it was trained on.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from jepa_wm.data import ClipDataset
from jepa_wm.gripper_reader import closed_labels, train_gripper_reader
from jepa_wm.probe import load_probe_frames
from jepa_wm.state_integration import StateIntegration

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_gripper_reader")
def main(cfg: DictConfig) -> None:
    try:
        dataset = ClipDataset(list(cfg.data.paths), clip_len=2, split="all")
        frames = load_probe_frames(dataset.episodes, cfg.frame_stride)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise SystemExit(f"error: {err}") from None
    gripper_open = StateIntegration().gripper_open
    closed = closed_labels(frames.targets["opening"], gripper_open)
    log.info("%d frames of %d episodes, %.2f closed", len(closed), len(dataset.episodes), closed.mean())
    reader, metrics = train_gripper_reader(frames.images, closed, frames.episodes, epochs=cfg.epochs,
                                           batch_size=cfg.batch_size, lr=cfg.lr, held_out=cfg.held_out,
                                           seed=cfg.seed, progress=cfg.progress)
    meta = {**metrics, "gripper_open": gripper_open, "config": OmegaConf.to_container(cfg, resolve=True),
            "data": [summary.to_dict() for summary in dataset.summaries]}
    log.info("held-out accuracy %.3f; written to %s", metrics["held_out_accuracy"], reader.save(cfg.out, meta))


if __name__ == "__main__":
    main()
