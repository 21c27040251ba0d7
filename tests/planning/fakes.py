"""Fakes that keep the planning contracts, for fast tests of the core: a world model whose latent is a
linear map of the hand position, observations and goals of a point hand."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import torch

from jepa_wm.planning.costs import (
    BuildContext,
    Candidates,
)
from jepa_wm.planning.goals import ImageGoal
from planners import SubgoalConfig

TOKEN_SCALES = torch.tensor([1.0, 2.0, -1.0, 0.5])  # N = 4 tokens (a 2 x 2 grid), D = 3


def latent_of(positions: torch.Tensor) -> torch.Tensor:
    """The fake latent ``(..., 4, 3)`` of hand positions ``(..., 3)``: token ``n`` is ``TOKEN_SCALES[n] * position``."""
    return positions[..., None, :] * TOKEN_SCALES[:, None]


def render(position) -> np.ndarray:
    """A 2 x 2 uint8 image that carries ``position`` (m) in its first pixel, in centimetres offset by 128."""
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    image[0, 0] = np.round(np.asarray(position) * 100 + 128).astype(np.uint8)
    return image


def point_obs(position, gripper: float = 0.0) -> dict[str, np.ndarray]:
    """An env observation of a hand at ``position`` (m)."""
    state = np.zeros(7, dtype=np.float32)
    state[:3], state[6] = position, gripper
    return {"image": render(position), "state": state}


class FakeModel:
    """A cost model whose latent is linear in the hand position and whose rollout integrates the
    position actions (``pos_scale`` m each); it counts its calls.

    Args:
        prediction: what it claims its rollouts are.
        rollout_fn: replaces the rollout (``actions -> predictions``) when given.
    """

    device = torch.device("cpu")

    def __init__(self, pos_scale: float = 0.05, prediction: str = "latents", rollout_fn=None) -> None:
        self.pos_scale, self.prediction, self.rollout_fn = pos_scale, prediction, rollout_fn
        self.calls = {"reset": 0, "encode": 0, "encode_goal": 0, "rollout": 0}

    def reset(self) -> None:
        self.calls["reset"] += 1

    def encode(self, obs) -> torch.Tensor:
        self.calls["encode"] += 1
        return latent_of(torch.as_tensor(obs["state"][:3], dtype=torch.float32))  # (N, D)

    def encode_goal(self, images) -> torch.Tensor:
        self.calls["encode_goal"] += 1
        positions = [(torch.as_tensor(image[0, 0], dtype=torch.float32) - 128) / 100 for image in images]
        return latent_of(torch.stack(positions))  # (G, N, D)

    def rollout(self, obs, actions: torch.Tensor) -> torch.Tensor:
        self.calls["rollout"] += 1
        if self.rollout_fn is not None:
            return self.rollout_fn(actions)
        start = torch.as_tensor(obs["state"][:3], dtype=torch.float32)
        return latent_of(start + self.pos_scale * actions[..., :3].cumsum(1))  # (B, H, N, D)


def goal_at(*positions, schedule: SubgoalConfig | None = None) -> ImageGoal:
    """Goal stages at hand ``positions`` (m), no images; by default a schedule that never switches."""
    latents = latent_of(torch.tensor(positions, dtype=torch.float32))
    return ImageGoal(tuple(f"stage{i}" for i in range(len(positions))), latents, None, schedule or SubgoalConfig())


def candidates(actions: torch.Tensor, model=None, obs=None, goal=None, stage: int = 0) -> Candidates:
    model = model or FakeModel()
    return Candidates(actions, obs or point_obs((0.0, 0.0, 0.1)), goal or goal_at((0.0, 0.0, 0.0)), stage, model)


def context(action_dim: int = 4, view_box=None) -> BuildContext:
    """A build context whose env has ``action_dim``-D actions (and a view box when given)."""
    unwrapped = SimpleNamespace() if view_box is None else SimpleNamespace(view_box=view_box)
    env = SimpleNamespace(action_space=gym.spaces.Box(-1, 1, (action_dim,)), unwrapped=unwrapped)
    return BuildContext(env=env, device=torch.device("cpu"), task="toy")


class ConstantTerm:
    """A term that costs ``value`` for every candidate; counts its calls and resets."""

    def __init__(self, value: float, weight: float = 1.0) -> None:
        self.value, self.weight, self.calls, self.resets = value, weight, 0, []

    def reset(self, goal, model) -> None:
        self.resets.append((goal, model))

    def __call__(self, candidates: Candidates) -> torch.Tensor:
        self.calls += 1
        return torch.full((candidates.actions.shape[0],), self.value)
