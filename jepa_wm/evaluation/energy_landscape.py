"""Does the latent energy tell the planner where the goal is? Rank correlation with true distance.

Latent MPC only works if the energy ``mean |z - z_goal|`` falls as the robot gets closer to the
goal. :func:`energy_distance_correlation` measures that on held-out episodes, without any
predictor: a noisy scripted expert wanders toward the goal, and for every visited frame the
energy of its features to the final goal image's features is compared with the true distance
of the gripper to where the clean expert ended (privileged state, used only for this
measurement). The score is the Spearman rank correlation per episode, averaged: 1 means the
energy orders frames exactly by distance, 0 means it carries no distance information.

Feature extractors are plain callables ``uint8 (N, 3, H, W) -> (N, ...)``, so the frozen
encoder, the same architecture at random init and raw pixels are scored side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor
from tqdm import tqdm

from jepa_wm.data.collect import HELD_OUT_SEED_START
from planners import latent_energy

Features = Callable[[Tensor], Tensor]  # uint8 (N, 3, H, W) -> float (N, ...)


@dataclass(frozen=True)
class LandscapeResult:
    """Per extractor: mean and per-episode Spearman correlation of energy with distance."""

    mean: dict[str, float]
    per_episode: dict[str, list[float]]
    episodes: int
    frames: int

    def table(self) -> str:
        lines = [f"{'features':>20}  {'spearman(energy, distance)':>26}"]
        lines += [f"{name:>20}  {value:>26.3f}" for name, value in self.mean.items()]
        lines.append(f"({self.episodes} held-out episodes, {self.frames} frames; 1 = energy orders frames by distance)")
        return "\n".join(lines)


def pixel_features(images: Tensor) -> Tensor:
    """uint8 (N, 3, H, W) -> float (N, 3, H, W) in [0, 1]: the raw-pixel baseline."""
    return images.float() / 255.0


def energy_distance_correlation(
    env: gym.Env,
    features: Mapping[str, Features],
    *,
    episodes: int = 10,
    steps: int | None = None,
    noise: float = 1.0,
    seed: int = HELD_OUT_SEED_START,
    progress: bool = True,
) -> LandscapeResult:
    """Spearman correlation between feature-space L1 energy to the goal and gripper distance to it.

    Args:
        env: one of our tasks (``envs.make``), with goal images and a scripted expert.
        features: name -> extractor; energies are ``mean |f(frame) - f(goal)|``.
        episodes: held-out episodes (seeds ``seed, seed + 1, ...``).
        steps: frames per episode (None: the task's time limit).
        noise: the wandering expert's action noise (action units).
        seed: first episode seed (held out from training data).

    Returns:
        The per-episode correlations and their means, per extractor.
    """
    if not features:
        raise ValueError("need at least one feature extractor")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    steps = steps or env.spec.max_episode_steps
    per_episode: dict[str, list[float]] = {name: [] for name in features}
    frames = 0
    for episode in tqdm(range(episodes), desc="episodes", disable=not progress):
        obs, _ = env.reset(seed=seed + episode)
        task = env.unwrapped
        goals = task.goal_images()
        goal_image, goal_position = goals.images[-1], goals.states[-1][:3]
        expert = task.make_expert(noise=noise, seed=seed + episode)
        images, distances = [], []
        for _ in range(steps):
            obs, *_ = env.step(expert.act())
            images.append(obs["image"])
            distances.append(float(np.linalg.norm(obs["state"][:3] - goal_position)))
        batch = torch.from_numpy(np.stack([goal_image, *images])).permute(0, 3, 1, 2)  # (1 + T, 3, H, W)
        frames += len(images)
        with torch.no_grad():
            for name, extract in features.items():
                z = extract(batch).flatten(1)[:, None]  # (1 + T, 1, F): one "token" of all features
                energy = latent_energy(z[1:], z[0]).cpu().numpy()  # (T,): the planner's L1 energy
                per_episode[name].append(float(spearmanr(energy, distances).statistic))
    mean = {name: float(np.nanmean(values)) for name, values in per_episode.items()}
    return LandscapeResult(mean=mean, per_episode=per_episode, episodes=episodes, frames=frames)
