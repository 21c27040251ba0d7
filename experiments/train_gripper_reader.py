"""Train the gripper reader: open or closed, read from a goal image's pixels.

Examples::

    python experiments/collect.py task=pick_place episodes=120 seed=5000 "noise=[0.05,1.0]" \\
        out=data/front/gripper_pick_place.hdf5
    python experiments/train_gripper_reader.py
    python experiments/plan.py task=pick_place costs.gripper.reader=runs/gripper_reader/reader.pt

Labels every ``frame_stride``-th observation of the episodes in ``data.paths`` closed or open from
its true gripper opening (``jepa_wm/plugins/gripper_reader/``), trains the CNN on all but ``held_out``
of the episodes, logs its accuracy on those, and writes it to ``out`` with what it was trained on.
With ``check=<reader.pt>`` it trains nothing and reads the goal images of the first ``check_seeds``
held-out episodes of ``check_task`` instead (rendered with the cameras of the episodes it was
trained on, as their files record them), against the gripper the expert had at each::

    python experiments/train_gripper_reader.py check=jepa_wm/checkpoints/gripper_reader_tiny.pt

The two-camera reader (front above side, 128x64) from the two-camera pair's play episodes::

    python experiments/train_gripper_reader.py "data.paths=[data/fs/play_pick_place.hdf5]" frame_stride=2 \\
        out=jepa_wm/checkpoints/gripper_reader_tiny_2cam.pt
"""

from __future__ import annotations

import json
import logging

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from jepa_wm.data import HELD_OUT_SEED_START, ClipDataset
from jepa_wm.evaluation.probe import load_probe_frames
from jepa_wm.plugins.gripper_reader.reader import GripperReader, closed_labels
from jepa_wm.plugins.gripper_reader.train import goal_agreement, train_gripper_reader
from jepa_wm.state_integration import StateIntegration
from jepa_wm.training.loop import NonFiniteLossError

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_gripper_reader")
def main(cfg: DictConfig) -> None:
    if cfg.check is not None:
        check_goals(cfg)
        return
    try:
        dataset = ClipDataset(list(cfg.data.paths), clip_len=2, split="all")
        frames = load_probe_frames(dataset.episodes, cfg.frame_stride)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise SystemExit(f"error: {err}") from None
    gripper_open = StateIntegration().gripper_open
    closed = closed_labels(frames.targets["opening"], gripper_open)
    log.info("%d frames of %d episodes, %.2f closed", len(closed), len(dataset.episodes), closed.mean())
    try:
        reader, metrics = train_gripper_reader(frames.images, closed, frames.episodes, epochs=cfg.epochs,
                                               batch_size=cfg.batch_size, lr=cfg.lr, held_out=cfg.held_out,
                                               seed=cfg.seed, progress=cfg.progress)
        meta = {**metrics, "gripper_open": gripper_open, "config": OmegaConf.to_container(cfg, resolve=True),
                "data": [summary.to_dict() for summary in dataset.summaries]}
        out = reader.save(cfg.out, meta)
    except (NonFiniteLossError, ValueError) as err:  # too few episodes, a diverged training (nothing is written)
        raise SystemExit(f"error: {err}") from None
    log.info("held-out accuracy %.3f; written to %s", metrics["held_out_accuracy"], out)


def check_goals(cfg: DictConfig) -> None:
    """Read the goal images of ``check_seeds`` held-out episodes of ``check_task`` with the reader at
    ``check``; log per goal how often it reads the gripper the expert had there."""
    try:
        reader, meta = GripperReader.load(cfg.check)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    env = envs.make(cfg.check_task, image_size=reader.image_hw[1], **_training_camera(meta))
    seeds = range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + cfg.check_seeds)
    try:
        agreement = goal_agreement(reader, env, seeds, StateIntegration().gripper_open)
    finally:
        env.close()
    log.info("%s goal images of %d held-out %s episodes read as the expert's gripper: %s", cfg.check,
             cfg.check_seeds, cfg.check_task, json.dumps(agreement))


def _training_camera(meta: dict) -> dict[str, str]:
    """``{"camera": ...}``: the cameras of the episodes the reader was trained on (one or several joined by
    '+', as recorded in their files), so the goal images are rendered as it saw its frames; ``{}`` if unrecorded."""
    cameras = {((summary.get("env_args") or {}).get("env_kwargs") or {}).get("camera")
               for summary in meta.get("data", [])}
    if len(cameras) > 1:
        raise SystemExit(f"error: the reader was trained on episodes of different cameras {sorted(map(str, cameras))}")
    camera = cameras.pop() if cameras else None
    return {} if camera is None else {"camera": camera}


if __name__ == "__main__":
    main()
