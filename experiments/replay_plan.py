"""How far did planned episodes get? Replay a ``results.json`` and read the true state.

Examples::

    python experiments/plan.py task=pick_place episodes=50 workers=2 run_dir=runs/plan/pp50
    python experiments/replay_plan.py results=runs/plan/pp50/results.json

Replays every episode's recorded actions from its seed (envs are deterministic, and a replay
whose success differs from the recorded one is an error), then logs and writes to ``out``
(default ``replay.json`` beside the results) per episode and in summary: successes, episodes
whose grip site came within 2 cm of the object (the cube, or reach's marker), episodes that
lifted it more than 3 cm or moved it more than 2 cm across the table, the median closest and
final grip-object distances, for push and pick_place the median start, closest and final
distances of the object to its target pad and, per goal image, how many episodes brought the
hand within 3 cm of the expert's pose there while planning toward it (``summary.goal_poses``).
Each episode's record also holds the grip site's and the object's path (``grip_pos_m``,
``object_pos_m``: xyz at every observation).

With ``arrival_radius`` (metres) it also calibrates ``mpc.arrival_energy`` for reach
(:mod:`jepa_wm.evaluation.arrival`): the lowest energy toward the final goal that the planner observed
farther than that from the marker. Calibrate on seeds other than the evaluation's, with the
hold off::

    python experiments/plan.py task=reach episodes=30 seed=1000100 workers=2 video=false \
        mpc.arrival_energy=null run_dir=runs/plan/dev
    python experiments/replay_plan.py results=runs/plan/dev/results.json arrival_radius=0.02

With ``far_radius`` (metres) it calibrates ``mpc.far_energy`` (the far planner plans above it):
the highest energy toward the final goal observed within that distance of the marker::

    python experiments/plan.py task=reach episodes=30 seed=1000100 workers=2 video=false \
        run_dir=runs/plan/dev
    python experiments/replay_plan.py results=runs/plan/dev/results.json far_radius=0.03
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig

import envs
from jepa_wm.evaluation.arrival import (
    calibrate_arrival_energy,
    calibrate_far_energy,
    final_goal_observations,
)
from jepa_wm.evaluation.replay import (
    as_records,
    read_plan_results,
    replay_results,
    summarize_replays,
)

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="replay_plan")
def main(cfg: DictConfig) -> None:
    path = Path(cfg.results)
    try:
        results = read_plan_results(path)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    task = results["config"]["task"]
    env = envs.make_from_config(task)
    try:
        stats = replay_results(env, results)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    finally:
        env.close()
    summary = summarize_replays(stats)
    if cfg.arrival_radius is not None and (results["config"].get("mpc") or {}).get("arrival_energy") is not None:
        log.warning("these episodes ran with the arrival hold on (mpc.arrival_energy): the hand stayed where it "
                    "first arrived, so an arrival threshold calibrated on them is biased; calibrate with the hold off")
    for key, radius, calibrate in (("arrival", cfg.arrival_radius, calibrate_arrival_energy),
                                   ("far", cfg.far_radius, calibrate_far_energy)):
        if radius is None:
            continue
        try:
            summary[key] = asdict(calibrate(*final_goal_observations(results["episodes"], stats), radius))
        except (KeyError, ValueError) as err:
            log.warning("%s energy not calibrated: %s: %s", key, type(err).__name__, err)
    out = Path(cfg.out) if cfg.out else path.with_name("replay.json")
    out.write_text(json.dumps({"results": str(path), "summary": summary, "episodes": as_records(stats)}, indent=1))
    log.info("%s: %s (written to %s)", task["name"], json.dumps(summary), out)


if __name__ == "__main__":
    main()
