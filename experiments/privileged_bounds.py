"""Privileged bounds on planning a task: perfect hand poses, or a perfect model and object cost.

Examples::

    python experiments/privileged_bounds.py task=push policy=follow episodes=50
    python experiments/privileged_bounds.py task=push policy=follow episodes=50 follow.every=1 \
        follow.hint_scale=1 follow.pose_noise_m=0.005
    python experiments/privileged_bounds.py task=push policy=state_mpc episodes=50 planner.config.horizon=1

``policy=follow`` servoes the grip site through the true poses of the goal images
(``jepa_wm/diagnostics/goal_pose_follower.py``): what a planner solves that takes every pose the goal images
show exactly. ``policy=state_mpc`` runs plan.py's MPC loop and planner with the simulator as the
model and the true object-to-pad distance as the cost (``jepa_wm/diagnostics/state_oracle.py``): what the
planner, its horizon and its budget solve with a perfect world model. Each episode's actions are
replayed from its seed (``jepa_wm/evaluation/replay.py``) and the run logs and writes
``bounds.json`` (config, summary, per-episode records with the hand's and the object's paths)
to the run folder. Both read the simulator's truth: diagnostics of what limits plan.py, never
policies.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs
from jepa_wm.diagnostics.goal_pose_follower import follow_goal_poses
from jepa_wm.diagnostics.state_oracle import plan_with_true_state
from jepa_wm.evaluation.replay import as_records, replay_episode, summarize_replays

log = logging.getLogger(__name__)
POLICIES = ("follow", "state_mpc")


@hydra.main(version_base="1.3", config_path="../configs", config_name="privileged_bounds")
def main(cfg: DictConfig) -> None:
    if cfg.policy not in POLICIES:
        raise SystemExit(f"error: unknown policy {cfg.policy!r}; choose one of {', '.join(POLICIES)}")
    env = envs.make_from_config(cfg.task)
    try:
        planner = instantiate(cfg.planner, seed=cfg.seed, device="cpu") if cfg.policy == "state_mpc" else None
        stats = []
        for index in tqdm(range(cfg.episodes), desc=f"{cfg.policy} episodes", disable=not cfg.progress):
            seed = cfg.seed + index
            if planner is None:
                actions = follow_goal_poses(env, seed, **cfg.follow)
            else:
                actions = plan_with_true_state(env, planner, seed, **cfg.state_mpc)
            stats.append(replay_episode(env, seed, actions))
            log.info("episode %d (seed %d): success %s, object-pad distance final %.1f cm (closest %.1f cm)",
                     index, seed, stats[-1].success, 100 * (stats[-1].target_final_m or 0.0),
                     100 * (stats[-1].target_closest_m or 0.0))
    except (ValueError, TypeError, InstantiationException) as err:
        raise SystemExit(f"error: {err}") from None
    finally:
        env.close()
    summary = summarize_replays(stats)
    out = Path(HydraConfig.get().runtime.output_dir) / "bounds.json"
    out.write_text(json.dumps({"config": OmegaConf.to_container(cfg, resolve=True), "summary": summary,
                               "episodes": as_records(stats)}, indent=1))
    log.info("%s, policy %s: %d/%d successes; %s (written to %s)", cfg.task.name, cfg.policy, summary["success"],
             summary["episodes"], json.dumps(summary), out)


if __name__ == "__main__":
    main()
