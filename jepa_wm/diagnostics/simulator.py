"""Oracle planning costs: the encoder's energy of the simulator's TRUE future frames.

A diagnostic that separates the two halves of the world model. :class:`SimulatorModel` is a world
model (:class:`jepa_wm.protocols.CostModel`) whose rollouts are the latents of the frames the
simulator actually renders after each candidate (state saved, candidate executed, state restored),
not the predictor's: the cost terms score them exactly as they score predictions.
If planning fails with this oracle, the encoder's energy is what limits success (no predictor can
fix it); if it succeeds where the predictor fails, the predictor is. The oracle is privileged
(it steps the simulator per candidate) and slow; it is never a planning default.

Works with any env that exposes ``sim_state()`` / ``set_sim_state()`` and a gymnasium ``step``:
our tabletop tasks (the robosuite wrapper has no ``set_sim_state``; ``plan.py`` says so up front).
In the plan config: ``world_model=oracle_tiny_2cam`` (the two-camera encoder, no predictor).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from jepa_wm.planning.costs import BuildContext
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.protocols import Observation
from jepa_wm.world_model import EncoderOnly, WorldModel, image_tensor


def candidates_from_here(env: Any, actions: Tensor) -> Iterator[np.ndarray]:
    """Each candidate of ``actions`` ``(B, H, A)`` as float64 ``(H, A)``, with ``env`` (``sim_state`` /
    ``set_sim_state``) put back in the state it had at the call before each one is yielded, and after the
    last (or when the loop stops early): the caller executes and measures it."""
    start = env.sim_state()
    try:
        for sequence in actions.detach().to("cpu", torch.float64).numpy():  # (H, A)
            env.set_sim_state(start)
            yield sequence
    finally:
        env.set_sim_state(start)


class SimulatorModel(LatentModel):
    """The simulator as the world model: the encoded true frames after each candidate.

    Args:
        env: the episode's env (wrappers are bypassed for the candidate steps; its state is restored
            after every rollout).
        world_model: only its encoder is used (an :class:`~jepa_wm.world_model.EncoderOnly` will do).
    """

    def __init__(self, env: gym.Env, world_model: WorldModel | EncoderOnly) -> None:
        super().__init__(world_model)
        self.env = env.unwrapped
        for name in ("sim_state", "set_sim_state"):
            if not callable(getattr(self.env, name, None)):
                raise ValueError(f"the simulator as the model needs an env with {name}(), "
                                 f"{type(self.env).__name__} has none")

    @classmethod
    def build(cls, context: BuildContext, *, encoder: str, predictor: str | None = None, precision: str = "float32",
              check_fingerprint: bool = True, any_task: bool = False, **attachments: Any) -> SimulatorModel:
        """The encoder of ``encoder`` (and ``predictor``'s pooling, when given) on the task's env."""
        return cls(context.env, cls.load(context, encoder, predictor, precision, check_fingerprint, any_task))

    def rollout(self, obs: Observation, actions: Tensor) -> Tensor:
        """Encode the true frames after each candidate's actions ``(B, H, A)`` -> ``(B, H, N, D)``.

        The simulator is at ``obs`` when called and back in that state afterwards.
        """
        frames = [image_tensor(self.env.step(action)[0]["image"])
                  for sequence in candidates_from_here(self.env, actions) for action in sequence]
        with torch.no_grad():
            z = self.world_model.encode(torch.stack(frames))  # (B * H, N, D)
        return z.view(*actions.shape[:2], *z.shape[1:])
