"""Collect object play and train an object model on it (jepa_wm/plugins/object_model/dynamics.py).

Examples::

    python experiments/train_object_dynamics.py                      # push: 6000 episodes, 2 members
    python experiments/train_object_dynamics.py play.episodes=200 train.epochs=1 out=runs/object_dynamics/small.pt

Collection resumes where the play file ends (run it again after an interruption); the model is
written with its settings, the play file's summary and its held-out R² (also logged).
"""

from __future__ import annotations

import logging

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from jepa_wm.plugins.object_model.play import ObjectPlayConfig, collect_object_play
from jepa_wm.plugins.object_model.train import load_object_play, train_object_dynamics
from jepa_wm.training.checkpoint import NonFiniteError
from jepa_wm.training.loop import NonFiniteLossError

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_object_dynamics")
def main(cfg: DictConfig) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    play = OmegaConf.to_container(cfg.play, resolve=True)
    try:
        config = ObjectPlayConfig(task=cfg.task, **{**play, "mode_probs": tuple(play["mode_probs"]),
                                                    "expert_noise": tuple(play["expert_noise"])})
        path = collect_object_play(config, progress=cfg.progress)
        data = load_object_play(path, config.episodes)
        model, metrics = train_object_dynamics(data, **cfg.model, **cfg.train, progress=cfg.progress)
        meta = {"task": cfg.task, "config": OmegaConf.to_container(cfg, resolve=True),
                "data": {"path": str(path), "episodes": config.episodes, "steps": len(data)}, **metrics}
        out = model.save(cfg.out, meta)
    except (ValueError, FileNotFoundError, NonFiniteLossError, NonFiniteError) as err:  # diverged: nothing written
        raise SystemExit(f"error: {err}") from None
    log.info("object model written to %s: %s", out, {k: v for k, v in metrics.items()})


if __name__ == "__main__":
    main()
