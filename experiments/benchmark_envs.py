"""Env steps per second with a rendered camera image, for every registered task.

Random actions (seeded; or ``policy=expert`` for the scripted expert with a little noise), a
fixed number of steps, resets counted in; the best of ``repeats`` runs is kept because the
machine is shared. Writes a JSON with the figures, the config and the machine.

Examples::

    OMP_NUM_THREADS=1 taskset -c 0 python experiments/benchmark_envs.py
    python experiments/benchmark_envs.py tasks=[reach,push] steps=1000 policy=expert
    python experiments/benchmark_envs.py image_size=128 camera=top out=/tmp/bench.json
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path

import gymnasium as gym
import hydra
import mujoco
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import envs  # first: chooses the headless GL back-end before mujoco is imported

log = logging.getLogger(__name__)


def time_steps(env: gym.Env, steps: int, policy: str, rng: np.random.Generator) -> tuple[float, float, int]:
    """Wall and CPU seconds (this process, all threads) for ``steps`` env steps, and the reset count.

    Episodes that end are reset inside the timed loop. ``policy`` is ``"random"`` (uniform actions) or ``"expert"`` (the scripted expert with a
    little noise: grasps and contacts, the expensive part of manipulation episodes).
    """
    random_actions = rng.uniform(-1.0, 1.0, size=(steps, envs.ACTION_DIM)).astype(np.float32)  # (steps, 7)
    expert = env.unwrapped.make_expert(noise=0.1, seed=int(rng.integers(2**31))) if policy == "expert" else None
    resets = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    for random_action in random_actions:
        action = random_action if expert is None else expert.act()
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
            resets += 1
            if expert is not None:
                expert = env.unwrapped.make_expert(noise=0.1, seed=int(rng.integers(2**31)))
    return time.perf_counter() - start, time.process_time() - start_cpu, resets


@hydra.main(version_base="1.3", config_path="../configs", config_name="benchmark_envs")
def main(cfg: DictConfig) -> None:
    if cfg.policy not in ("random", "expert"):
        raise ValueError(f"policy must be 'random' or 'expert', got {cfg.policy!r}")
    tasks = list(cfg.tasks) if cfg.tasks else envs.registered_tasks()
    kwargs = {"image_size": cfg.image_size} | ({"camera": cfg.camera} if cfg.camera else {})
    results = {}
    for name in tasks:
        env = envs.make(name, **kwargs)
        env.reset(seed=cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        time_steps(env, cfg.warmup, cfg.policy, rng)
        runs = [time_steps(env, cfg.steps, cfg.policy, rng) for _ in range(cfg.repeats)]
        wall, _, resets = min(runs)  # the fastest run by wall time
        env.close()
        results[name] = {
            "steps_per_s": cfg.steps / wall,
            "ms_per_step": 1e3 * wall / cfg.steps,
            "steps_per_cpu_s": cfg.steps / min(run[1] for run in runs),  # less sensitive to other load
            "all_runs_steps_per_s": [cfg.steps / run[0] for run in runs],
            "resets_in_best_run": resets,
            "backend": envs.task_spec(name).backend,
        }
        log.info(
            "%-22s %7.0f steps/s wall  %7.0f steps/CPU-s  (image %d px, %s actions)",
            name, results[name]["steps_per_s"], results[name]["steps_per_cpu_s"], cfg.image_size, cfg.policy,
        )
    report = {
        "results": results,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "mujoco": mujoco.__version__,
            **{k: os.environ.get(k) for k in ("MUJOCO_GL", "OMP_NUM_THREADS", "LP_NUM_THREADS")},
        },
    }
    out = Path(cfg.out)
    if not out.is_absolute():
        out = Path(HydraConfig.get().runtime.output_dir) / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
