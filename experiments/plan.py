"""Latent MPC episodes toward goal images with a trained world model (held-out seeds).

Examples::

    # the default task, pick_place, with its recipe (configs/recipe/pick_place.yaml): the two-camera
    # pair, CEM with the CPU budget, five sub-goal images, the gripper and hand-pull cost terms
    python experiments/plan.py task=pick_place
    # reach, 3 episodes, no videos, the paper's CEM budget on a GPU
    python experiments/plan.py task=reach episodes=3 video=false \\
        planner.config.num_samples=800 planner.config.iterations=10 device=cuda
    # 50 held-out episodes in 2 worker processes (one torch thread each), no videos
    python experiments/plan.py task=reach episodes=50 workers=2 video=false
    # another planner, an L2 energy, no action cost, your own two-camera predictor
    python experiments/plan.py task=reach planner=icem energy.distance=l2 costs.action=null \\
        world_model.predictor=runs/train_predictor/my_run

Writes into the hydra run dir (``runs/plan/<task>/<planner>/<time>``): ``results.json`` (the
resolved config, one record per episode, the summary; rewritten after every episode),
``episode_<i>_seed_<seed>.mp4`` and ``energy.png``. Episode ``i`` runs on seed ``seed + i``
and seeds its planner with it, so results do not depend on ``workers``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from jepa_wm.planning.episode import EpisodeResult, summarize
from jepa_wm.planning.outputs import plot_energies
from jepa_wm.planning.runner import PlanSetupError, run_episodes

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="plan")
def main(cfg: DictConfig) -> None:
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(HydraConfig.get().runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    done: list[EpisodeResult] = []

    def record(result: EpisodeResult) -> None:  # results.json after every episode
        done.append(result)
        done.sort(key=lambda r: r.seed)
        summary = summarize(done)
        payload = {"config": resolved, "episodes": [r.as_dict() for r in done], "summary": summary}
        (out / "results.json").write_text(json.dumps(payload, indent=1))
        log.info("%d/%d episodes done, success rate so far %.2f", len(done), cfg.episodes, summary["success_rate"])

    try:
        results = run_episodes(resolved, out, device=device, workers=cfg.workers, threads=cfg.threads,
                               on_result=record, progress=cfg.progress)
    except PlanSetupError as err:  # missing or mismatched checkpoint, bad setting: no traceback
        raise SystemExit(f"error: {err}") from None
    plot_energies(out / "energy.png", results)
    log.info("summary: %s (results in %s)", json.dumps(summarize(results)), out)


if __name__ == "__main__":
    main()
