"""Where does the predictor's energy disagree with the simulator's true frames? Per sub-goal.

Examples::

    python experiments/plan.py task=pick_place episodes=10 workers=2 video=false run_dir=runs/plan/pp10
    python experiments/oracle_agreement.py results=runs/plan/pp10/results.json

Replays each episode of a ``results.json`` and, at every observation, scores the executed
action and ``candidates - 1`` moves around it with the world model's predictions and with the
encoder's latents of the true next frames (``jepa_wm/diagnostics/oracle_agreement.py``), and the executed
action with its gripper command flipped. Logs and writes (``out``, default ``agreement.json``
beside the results) per goal image: the median rank correlation of the two energies over the
moves, how often both prefer the same gripper command and the same of two vertical moves (the
executed action ``height`` action units lower or higher), and how strongly each does. Low
correlation or gripper agreement near 0.5 where a task fails says the predictor, not the
encoder's energy, is what fails there. Privileged (the simulator is stepped per candidate):
an analysis tool, never part of planning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

import envs
from jepa_wm.diagnostics.oracle_agreement import episode_agreement, summarize_agreement
from jepa_wm.evaluation.replay import read_plan_results
from jepa_wm.planning.costs import EnergySettings
from jepa_wm.planning.loading import load_planning_world_model

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="oracle_agreement")
def main(cfg: DictConfig) -> None:
    path = Path(cfg.results)
    try:
        results = read_plan_results(path, ("config.task", "config.world_model", "episodes"))
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    config, episodes = results["config"], results["episodes"]
    task, world = config["task"], config["world_model"]
    predictor = cfg.predictor_checkpoint or world["predictor"]
    if predictor is None:
        raise SystemExit("error: the results name no predictor (world_model.predictor=null): pass "
                         "predictor_checkpoint=<checkpoint>")
    env = envs.make_from_config(task)
    try:
        world_model = load_planning_world_model(world["encoder"], predictor, image_size=env.unwrapped.image_hw,
                                                precision=world["precision"],
                                                check_fingerprint=world["check_fingerprint"])
        energy = EnergySettings(**(config.get("energy") or {key: config["objective"][key]  # older results: objective
                                                             for key in ("distance", "smoothing")}))
        steps = []
        chosen = episodes if cfg.episodes is None else episodes[: int(cfg.episodes)]
        for episode in tqdm(chosen, desc="episodes", disable=not cfg.progress):
            steps += episode_agreement(env, world_model, episode, energy=energy,
                                       candidates=cfg.candidates, noise=cfg.noise, height=cfg.height,
                                       seed=cfg.seed)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    finally:
        env.close()
    summary = summarize_agreement(steps)
    out = Path(cfg.out) if cfg.out else path.with_name("agreement.json")
    out.write_text(json.dumps({"results": str(path), "predictor": str(predictor), "candidates": cfg.candidates,
                               "noise": cfg.noise, "height": cfg.height, "summary": summary,
                               "steps": [asdict(s) for s in steps]}, indent=1))
    for name, row in summary.items():
        log.info("%-14s %3d steps: rank correlation %.2f, gripper agreement %.2f (|preference| predicted %.4f, "
                 "true %.4f), height agreement %.2f (|preference| predicted %.4f, true %.4f)", name, row["steps"],
                 row["median_rank_correlation"], row["gripper_agreement"], row["median_abs_gripper_gap_predicted"],
                 row["median_abs_gripper_gap_true"], row["height_agreement"], row["median_abs_height_gap_predicted"],
                 row["median_abs_height_gap_true"])
    log.info("written to %s", out)


if __name__ == "__main__":
    main()
