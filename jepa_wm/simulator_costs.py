"""Oracle planning costs: the encoder's energy of the simulator's TRUE future frames.

A diagnostic that separates the two halves of the world model. :class:`SimulatorCosts` scores
candidate actions exactly as :class:`~jepa_wm.planning.WorldModelCosts` does -- latent energy to
the goal latent -- but the latents come from encoding the frames the simulator actually renders
after each candidate (state saved, candidate executed, state restored), not from the predictor.
If planning fails with this oracle, the encoder's energy is what limits success (no predictor can
fix it); if it succeeds where the predictor fails, the predictor is. The oracle is privileged
(it steps the simulator per candidate) and slow; it is never a planning default.

Works with any env that exposes ``sim_state()`` / ``set_sim_state()`` and a gymnasium ``step``:
our tabletop tasks (the robosuite wrapper has no ``set_sim_state``; ``plan.py`` says so up front).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from jepa_wm.planning import WorldModelCosts, image_tensor
from jepa_wm.object_reader import ObjectReader
from jepa_wm.world_model import EncoderOnly, WorldModel
from planners import ObjectiveConfig, WorkspaceBox


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


class SimulatorCosts(WorldModelCosts):
    """``make_cost`` / ``energy_fn`` for :class:`planners.MPC` with the simulator as the predictor.

    Args:
        env: the episode's env (wrappers are bypassed for the candidate steps; its state is
            restored after every cost evaluation).
        world_model: only its encoder is used (an :class:`~jepa_wm.world_model.EncoderOnly` will do).
        objective: distance and steps of the energy.
        workspace: box the planned positions are charged for leaving (``None``: none).
        object_reader: reads the object's position from latents for ``objective.object_weight``.
    """

    def __init__(self, env: gym.Env, world_model: WorldModel | EncoderOnly,
                 objective: ObjectiveConfig = ObjectiveConfig(), workspace: WorkspaceBox | None = None,
                 object_reader: ObjectReader | None = None) -> None:
        super().__init__(world_model, objective, workspace, object_reader)
        self.env = env.unwrapped
        for name in ("sim_state", "set_sim_state"):
            if not callable(getattr(self.env, name, None)):
                raise TypeError(f"the simulator oracle needs an env with {name}(), "
                                f"{type(self.env).__name__} has none")

    def rollout_fn(self, obs: Mapping[str, np.ndarray]) -> Callable[[Tensor], Tensor]:
        """The simulated frames' latents of candidate actions (the simulator is at ``obs``)."""
        return self.rollout

    def rollout(self, actions: Tensor) -> Tensor:
        """Encode the true frames after each candidate's actions ``(B, H, A)`` -> ``(B, H, N, D)``.

        The simulator is back in its starting state afterwards.
        """
        frames = [image_tensor(self.env.step(action)[0]["image"])
                  for sequence in candidates_from_here(self.env, actions) for action in sequence]
        with torch.no_grad():
            z = self.world_model.encode(torch.stack(frames))  # (B * H, N, D)
        return z.view(*actions.shape[:2], *z.shape[1:])
