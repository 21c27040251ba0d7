"""Latent MPC episodes toward goal images with a trained world model (held-out seeds).

Examples::

    # the default task, pick_place, with its recipe (configs/recipe/pick_place.yaml): the two-camera
    # pair, CEM with the CPU budget, five sub-goal images, the gripper and hand-pull cost terms
    python experiments/plan.py task=pick_place
    # reach, 3 episodes, no videos, the paper's CEM budget on a GPU
    python experiments/plan.py task=reach episodes=3 video=false \\
        planner.config.num_samples=800 planner.config.iterations=10 device=cuda
    # 50 held-out episodes in 2 worker processes (one torch thread each), no videos, a chosen run dir
    python experiments/plan.py task=reach episodes=50 workers=2 video=false run_dir=runs/plan/reach50
    # another planner, an L2 energy, no action cost, your own two-camera predictor
    python experiments/plan.py task=reach planner=icem energy.distance=l2 costs.action=null \\
        world_model.predictor=runs/train_predictor/my_run

Writes into ``run_dir`` (default ``runs/plan/<task>/<planner>/<time>``, new for every run):
``results.json`` (the resolved config, one record per episode, the summary; rewritten atomically
after every episode), ``episode_<i>_seed_<seed>.mp4`` and ``energy.png``. Episode ``i`` runs on seed
``seed + i`` and seeds its planner with it, so results do not depend on ``workers``.

A run dir that holds another run's results, or that a running plan.py holds, is refused; a run that
fails before its first episode leaves no run dir behind. SIGTERM stops like Ctrl-C: the workers end
with the run and results.json keeps the episodes finished so far.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from jepa_wm.locks import LockedError, RunDir, write_text_atomic
from jepa_wm.planning.episode import EpisodeResult, summarize
from jepa_wm.planning.outputs import plot_energies
from jepa_wm.planning.runner import PlanSetupError, resolve_device, run_episodes
from jepa_wm.workers import exit_on_sigterm

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="plan")
def main(cfg: DictConfig) -> None:
    exit_on_sigterm()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if resolved["run_dir"] is None:
        planner = HydraConfig.get().runtime.choices.get("planner", "planner")
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
        resolved["run_dir"] = f"runs/plan/{resolved['task']['name']}/{planner}/{stamp}"
    try:
        with RunDir(resolved["run_dir"], "results.json") as out:
            run(resolved, out)
    except (PlanSetupError, LockedError, FileExistsError) as err:  # bad setting, missing checkpoint, taken run dir
        raise SystemExit(f"error: {err}") from None


def run(resolved: dict, out: Path) -> None:
    """The episodes of ``resolved`` into ``out``."""
    device = resolve_device(resolved["device"])
    done: list[EpisodeResult] = []

    def record(result: EpisodeResult) -> None:  # results.json after every episode
        done.append(result)
        done.sort(key=lambda r: r.seed)
        summary = summarize(done)
        payload = {"config": resolved, "episodes": [r.as_dict() for r in done], "summary": summary}
        write_text_atomic(out / "results.json", json.dumps(payload, indent=1))
        log.info("%d/%d episodes done, success rate so far %.2f", len(done), resolved["episodes"],
                 summary["success_rate"])

    results = run_episodes(resolved, out, device=device, workers=resolved["workers"], threads=resolved["threads"],
                           on_result=record, progress=resolved["progress"])
    plot_energies(out / "energy.png", results)
    log.info("summary: %s (results in %s)", json.dumps(summarize(results)), out)


if __name__ == "__main__":
    main()
