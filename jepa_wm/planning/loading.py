"""Load the JEPA world model for planning, checked against the task before any episode runs.

>>> world_model = load_planning_world_model("jepa_wm/checkpoints/encoder_tiny.pt",
...                                         "jepa_wm/checkpoints/predictor_tiny.pt", image_size=64)

Every mismatch (a missing checkpoint, a predictor trained on another encoder, task or image size)
raises with what was expected, what came, and how to train the missing piece.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from envs.interface import ACTION_DIM
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.world_model import (
    EncoderOnly,
    WorldModel,
    encoder_pool,
    find_predictor_checkpoint,
    load_world_model,
    read_predictor_checkpoint,
)

TRAIN_HINT = ("train one with `python experiments/pretrain_encoder.py` (encoder) and then "
              "`python experiments/train_predictor.py encoder=<encoder.pt> run_dir=<run dir>` (predictor)")


def trained_tasks(checkpoint: Mapping[str, Any]) -> list[str]:
    """Tasks whose episodes a predictor checkpoint was trained on (from its data summary)."""
    files = (checkpoint.get("data") or {}).get("files", [])
    return sorted({f["meta"]["task"] for f in files if "task" in f.get("meta", {})})


def load_planning_world_model(
    encoder_path: str | Path, predictor_path: str | Path | None, *,
    image_size: int | Sequence[int], action_dim: int = ACTION_DIM, device: torch.device | str = "cpu",
    check_fingerprint: bool = True, task: str | None = None, precision: str = "float32",
) -> WorldModel | EncoderOnly:
    """The world model for planning in a task with ``image_size`` observations: an int for square
    ones, or ``(height, width)`` (the env's ``image_hw``; several camera views are stacked in height).

    Args:
        predictor_path: a predictor checkpoint (file or training run directory) trained on this
            encoder's latents; ``None``: the encoder alone (:class:`jepa_wm.world_model.EncoderOnly`),
            for the simulator as the model (:mod:`jepa_wm.diagnostics.simulator`).
        task: when given, the predictor must have been trained on episodes of this task
            (checked against the data summary of its checkpoint, when it records tasks).
        precision: ``"float32"`` or ``"bfloat16"``: the predictor's rollouts under bf16
            autocast (:class:`jepa_wm.world_model.WorldModel`).

    Raises:
        FileNotFoundError: a checkpoint is missing (the message says how to train one).
        ValueError: the checkpoints do not fit each other or the task (task not trained on,
            action size, image size, encoder width, tokens per frame, encoder weights).
    """
    encoder_path = Path(encoder_path)
    if not encoder_path.is_file():
        raise FileNotFoundError(f"encoder checkpoint {encoder_path} not found: expected the encoder.pt "
                                f"written at the end of encoder pretraining; {TRAIN_HINT}")
    if predictor_path is None:
        return EncoderOnly(_checked_encoder(encoder_path, image_size, pool=1).to(device))
    checkpoint = _read_planning_predictor(predictor_path, task)
    encoder = _checked_encoder(encoder_path, image_size, pool=encoder_pool(checkpoint)).to(device)
    try:
        return load_world_model(checkpoint, encoder, action_dim=action_dim, precision=precision,
                                check_fingerprint=check_fingerprint)
    except ValueError as err:
        raise ValueError(f"the world model does not fit this task or encoder: {predictor_path}: {err}") from err


def _checked_encoder(encoder_path: Path, image_size: int | Sequence[int], pool: int) -> FrozenEncoder:
    """The encoder checkpoint at ``encoder_path``, checked to take the task's images."""
    encoder = load_encoder_checkpoint(encoder_path, pool=pool)
    check_encoder_fits_images(encoder, image_size, encoder_path)
    return encoder


def check_encoder_fits_images(encoder: FrozenEncoder, image_size: int | Sequence[int],
                              encoder_path: str | Path) -> None:
    """Raise ``ValueError`` (saying which ``task.image_size`` and how many cameras) unless
    ``encoder`` takes the task's images: ``image_size`` an int (square) or ``(height, width)``."""
    image_hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if tuple(encoder.img_hw) != image_hw:
        height, width = encoder.img_hw
        views, task_views = height // width, image_hw[0] // image_hw[1]
        cameras = "" if views == task_views else (
            (f" and {views} cameras in task.camera (e.g. front+side)" if views > 1 else
             " and one camera in task.camera (null: the task's own)")
            + " (plan.py takes task.camera from the world model config: world_model.camera; world_model=tiny "
              "plans on one camera, world_model=tiny_2cam on front+side)")
        raise ValueError(f"the task renders {image_hw[0]}x{image_hw[1]} (height x width) images, the encoder "
                         f"{encoder_path} expects {height}x{width}: set task.image_size={width}{cameras}, or use "
                         f"an encoder pretrained on this task's images")


def _read_planning_predictor(predictor_path: str | Path, task: str | None) -> dict[str, Any]:
    """A predictor checkpoint's contents, checked to exist and (when ``task`` is given) to have
    been trained on ``task``."""
    try:
        predictor_file = find_predictor_checkpoint(predictor_path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"predictor checkpoint not found: {err}; {TRAIN_HINT}") from err
    if not predictor_file.is_file():
        raise FileNotFoundError(f"predictor checkpoint {predictor_file} not found: expected a training run "
                                f"directory or one of its step_*.pt files; {TRAIN_HINT}")
    checkpoint = read_predictor_checkpoint(predictor_file)
    tasks = trained_tasks(checkpoint)
    if task is not None and tasks and task not in tasks:
        raise ValueError(
            f"the predictor {predictor_file} was trained on tasks {tasks}, not on {task!r}: collect episodes "
            f"(`python experiments/collect.py task={task} episodes=300 workers=2 out=data/{task}.hdf5`), "
            f"then train an encoder and predictor on them ({TRAIN_HINT}, with data.paths=[data/{task}.hdf5]) "
            f"and pass world_model.encoder=... world_model.predictor=...; or set world_model.any_task=true"
        )
    return checkpoint
