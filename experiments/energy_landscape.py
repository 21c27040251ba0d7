"""How well does the latent energy to a goal image track the true distance to the goal?

Examples::

    # shipped encoder (its 8x8 tokens, as the predictor sees them) vs random init vs pixels
    python experiments/energy_landscape.py task=reach
    # also the energy of 3x3- and 5x5-blurred token grids (the planner's energy.smoothing)
    python experiments/energy_landscape.py task=reach "smoothing=[3,5]"
    # tokens average-pooled 2x2 (4x4 grid), 20 episodes of pick_place
    python experiments/energy_landscape.py task=pick_place pool=2 episodes=20

Prints the Spearman rank correlation between the L1 energy of each frame to the final goal
image and the gripper's true distance to the goal position (see
:mod:`jepa_wm.evaluation.energy_landscape`), and writes it as JSON to ``out``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import envs
from jepa_wm.encoders import FrozenEncoder, VisionTransformer
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.evaluation.energy_landscape import (
    energy_distance_correlation,
    pixel_features,
)
from jepa_wm.planning.loading import check_encoder_fits_images
from planners.objective import smooth_tokens

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="energy_landscape")
def main(cfg: DictConfig) -> None:
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    encoder = load_encoder_checkpoint(cfg.encoder, pool=cfg.pool)
    torch.manual_seed(cfg.random_init_seed)
    random_init = FrozenEncoder(VisionTransformer(encoder.vit.config), pool=cfg.pool)

    def tokens(model: FrozenEncoder):
        return lambda images: model.encode(images.unsqueeze(1))[:, 0]  # (N, tokens, D)

    features = {"pretrained": tokens(encoder), "random_init": tokens(random_init), "pixels": pixel_features}
    for kernel in cfg.smoothing:  # the planner's energy.smoothing: L1 of blurred tokens = blurred energy
        features[f"pretrained_blur{kernel}"] = lambda images, k=kernel: smooth_tokens(tokens(encoder)(images), k)
    env = envs.make_from_config(cfg.task, image_size=encoder.img_hw[1])  # render at the encoder's size
    try:
        check_encoder_fits_images(encoder, env.unwrapped.image_hw, cfg.encoder)  # the camera count
    except ValueError as err:
        env.close()
        raise SystemExit(f"error: {err}") from None
    try:
        result = energy_distance_correlation(env, features, episodes=cfg.episodes, steps=cfg.steps,
                                             noise=cfg.noise, seed=cfg.seed, progress=cfg.progress)
    finally:
        env.close()
    log.info("energy vs distance to the goal, %s:\n%s", cfg.task.name, result.table())
    out = Path(cfg.out or f"runs/energy_landscape/{cfg.task.name}_pool{cfg.pool}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": OmegaConf.to_container(cfg, resolve=True), "mean": result.mean,
                               "per_episode": result.per_episode, "frames": result.frames}, indent=1))
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
