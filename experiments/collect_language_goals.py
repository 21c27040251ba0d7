"""Collect language-goal data: per episode seed, the first observation and the goal images of every
instruction pair in the scene (the episode's own and the hard negatives), into one HDF5 file.

Examples::

    python experiments/collect_language_goals.py task=pick_place_multi task.palette=lang episodes=200 \
        out=data/language_goals_pick_place_multi.hdf5
    python experiments/collect_language_goals.py task=pick_place_multi task.palette=lang task.pairs=all \
        evaluation=true episodes=50 out=data/language_goals_pick_place_multi_eval.hdf5
    python experiments/collect_language_goals.py task=reach episodes=20 seed=100 task.image_size=32

Episode ``i`` uses env seed ``seed + i`` (``seed`` defaults to 0, or to
``envs.interface.HELD_OUT_SEED_START`` with ``evaluation=true``). Interrupting leaves every finished
seed in the file; the same command resumes. A bad setting, or an ``out=`` that is not a language-goal
file of this task config and split, stops with a one-line error and changes nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from envs.interface import HELD_OUT_SEED_START
from jepa_wm.language.goal_data import collect_goal_episodes
from jepa_wm.locks import LockedError

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="collect_language_goals")
def main(cfg: DictConfig) -> None:
    try:
        episodes, evaluation = cfg.episodes, cfg.evaluation
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes: expected a positive int, got {episodes!r}")
        if not isinstance(evaluation, bool):
            raise TypeError(f"evaluation: expected true or false, got {evaluation!r}")
        first = cfg.seed if cfg.seed is not None else (HELD_OUT_SEED_START if evaluation else 0)
        if isinstance(first, bool) or not isinstance(first, int):
            raise TypeError(f"seed: expected an int, got {first!r}")
        task = OmegaConf.to_container(cfg.task, resolve=True)
        summary = collect_goal_episodes(task, range(first, first + episodes), Path(cfg.out),
                                        progress=cfg.progress, evaluation=evaluation)
    except (ValueError, TypeError, LockedError, PermissionError) as err:  # a bad setting or output
        raise SystemExit(f"error: {' '.join(str(err).split())}") from None
    log.info("%s", json.dumps(summary.to_dict(), indent=1))


if __name__ == "__main__":
    main()
