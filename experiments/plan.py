"""Latent MPC episodes toward goal images with a trained world model (held-out seeds).

Examples::

    # CPU default: pick_place, tiny encoder + tiny predictor, CEM 128 samples x 4 iterations
    python experiments/plan.py
    # reach, 3 episodes, no videos, the paper's CEM budget on a GPU
    python experiments/plan.py task=reach episodes=3 video=false \\
        planner.config.num_samples=800 planner.config.iterations=10 device=cuda
    # another planner, an L2 energy, explicit sub-goal steps and world model
    python experiments/plan.py planner=icem objective.distance=l2 subgoals.steps_per_goal=[8,10] \\
        world_model.encoder=runs/pretrain_encoder/tiny/encoder.pt \\
        world_model.predictor=runs/train_predictor/tiny/checkpoints/step_00001200.pt

Writes into the hydra run dir (``runs/plan/<task>/<planner>/<time>``): ``results.json`` (the
resolved config, one record per episode, the summary; rewritten after every episode),
``episode_<i>_seed_<seed>.mp4`` and ``energy.png``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import envs
from jepa_wm.planning import (
    EpisodeConfig, load_planning_world_model, plot_energies, run_episode, summarize, write_episode_video,
)
from planners import MPCConfig, ObjectiveConfig

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="plan")
def main(cfg: DictConfig) -> None:
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(HydraConfig.get().runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    task = dict(resolved["task"])
    env = envs.make(task.pop("name"), **{k: v for k, v in task.items() if v is not None})
    try:
        world_model = load_planning_world_model(
            cfg.world_model.encoder, cfg.world_model.predictor, image_size=env.unwrapped.image_size,
            device=device, check_fingerprint=cfg.world_model.check_fingerprint,
        )
    except (FileNotFoundError, ValueError) as err:  # missing or mismatched checkpoint: say it plainly
        env.close()
        raise SystemExit(f"error: {err}") from None
    planner = instantiate(cfg.planner, seed=cfg.seed, device=device)
    config = EpisodeConfig(objective=ObjectiveConfig(**resolved["objective"]), mpc=MPCConfig(**resolved["mpc"]),
                           max_steps=cfg.max_steps, **resolved["subgoals"])
    results = []
    for i in range(cfg.episodes):
        result = run_episode(env, world_model, planner, config, seed=cfg.seed + i, keep_frames=cfg.video,
                             progress=cfg.progress)
        if cfg.video:
            write_episode_video(out / f"episode_{i:03d}_seed_{result.seed}.mp4", result, scale=cfg.video_scale)
            result.frames.clear()
        results.append(result)
        record = {"config": resolved, "episodes": [r.as_dict() for r in results], "summary": summarize(results)}
        (out / "results.json").write_text(json.dumps(record, indent=1))
    plot_energies(out / "energy.png", results)
    env.close()
    log.info("summary: %s (results in %s)", json.dumps(record["summary"]), out)


if __name__ == "__main__":
    main()
