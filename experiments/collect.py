"""Collect scripted-expert demonstrations into a robomimic-layout HDF5 file (resumable).

Examples::

    python experiments/collect.py task=pick_place episodes=200 workers=2 out=data/pick_place.hdf5
    python experiments/collect.py task=reach episodes=50 noise=0.1 seed=0 task.image_size=96
    python experiments/collect.py task=push episodes=20 task.max_episode_steps=40
    # pick_place_multi's language scene (3 of 4 cubes and pads, held-out pairs never drawn)
    python experiments/collect.py task=pick_place_multi task.palette=lang episodes=200 out=data/ppm_lang.hdf5

Interrupting (Ctrl-C, SIGTERM, even SIGKILL) leaves a valid file with every finished episode;
running the same command again resumes up to ``episodes``, as it does after a full disk. Episode
``i`` uses env seed ``seed + i``; planning uses seeds from ``jepa_wm.data.HELD_OUT_SEED_START``
upwards. A bad setting, an ``out=`` that is not a collection file (a directory, another file) or
an ``out=`` another run is collecting into stops with a one-line error and changes nothing.
"""

from __future__ import annotations

import json
import logging
import sys

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from jepa_wm.data import (
    CollectionConfig,
    CollectionDiskFull,
    CollectionInterrupted,
    collect,
)
from jepa_wm.locks import LockedError

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="collect")
def main(cfg: DictConfig) -> None:
    noise = tuple(cfg.noise) if isinstance(cfg.noise, ListConfig) else cfg.noise
    try:
        config = CollectionConfig(
            task=cfg.task.name,
            episodes=cfg.episodes,
            out=cfg.out,
            seed=cfg.seed,
            noise=noise,
            workers=cfg.workers,
            image_size=cfg.task.image_size,
            camera=cfg.task.camera,
            max_episode_steps=cfg.task.max_episode_steps,
            env_options={key: value for key, value in OmegaConf.to_container(cfg.task, resolve=True).items()
                         if key not in ("name", "image_size", "camera", "max_episode_steps") and value is not None},
        )
        summary = collect(config, progress=cfg.progress)
    except CollectionInterrupted as err:
        log.error("%s", err)
        sys.exit(err.exit_code)
    except (ValueError, LockedError, CollectionDiskFull, PermissionError) as err:  # a bad setting or output
        raise SystemExit(f"error: {err}") from None
    log.info("%s", json.dumps(summary.to_dict(), indent=1))


if __name__ == "__main__":
    main()
