"""Plan with an object model: where candidate actions send the cube, as the readers see it.

:class:`ObjectModelCosts` is :class:`~jepa_wm.planning.WorldModelCosts` with the latent predictor
replaced, in the cost, by an :class:`~jepa_wm.object_dynamics.ObjectDynamics`. At each step the
object reader reads the cube's position from the observation's latent (the frozen encoder's),
the robot's proprioception gives the grip site's, and the reader reads the cube's target from
the final goal image's latent; the model rolls each candidate forward from these (and the
previous step's readings, for the cube's and the hand's motion) and the cost after its last
action is, averaged over the model's members,

    d(cube, target) + contact_weight * d(hand, cube) + height_weight * |z_hand - z_cube|

(metres, distances in the table plane, ``z_cube`` the reader's height of the observed cube), plus
the workspace box's charge. The two small terms lead the hand to the cube; the first is the task.
This is the cost :class:`~jepa_wm.state_oracle.ObjectStateCost` computes from the simulator's
truth, here from images and a learned model: nothing privileged at planning time.

The observed energy toward the current goal image (what the MPC logs, and its arrival hold and
sub-goal switches read) stays the encoder's latent energy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from jepa_wm.object_dynamics import ObjectDynamics
from jepa_wm.object_reader import ObjectReader
from jepa_wm.planning import Goal, WorldModelCosts
from jepa_wm.world_model import WorldModel
from planners import ObjectiveConfig, WorkspaceBox


class ObjectModelCosts(WorldModelCosts):
    """``make_cost`` for :class:`planners.MPC` from an object reader and an object model.

    Args:
        world_model: its encoder reads the observations (the predictor is not used in the cost).
        object_reader: reads the cube's xyz from a latent.
        dynamics: the object model.
        target: the cube's target xyz ``(3,)`` (the reader's reading of the final goal image).
        objective, workspace: as :class:`~jepa_wm.planning.WorldModelCosts` (the workspace box and
            ``objective.hand_weight`` charge the plans as there).
        contact_weight: cost per metre between the hand and the cube in the table plane.
        height_weight: cost per metre between the hand's height and the cube's.
    """

    def __init__(self, world_model: WorldModel, object_reader: ObjectReader, dynamics: ObjectDynamics, target: Tensor,
                 objective: ObjectiveConfig = ObjectiveConfig(), workspace: WorkspaceBox | None = None, *,
                 contact_weight: float = 0.1, height_weight: float = 0.3) -> None:
        super().__init__(world_model, objective, workspace, object_reader)
        if contact_weight < 0 or height_weight < 0:
            raise ValueError(f"contact_weight and height_weight must be >= 0, got {contact_weight}, {height_weight}")
        self.dynamics = dynamics
        self.target = torch.as_tensor(target, dtype=torch.float32).reshape(3)[:2]
        self.contact_weight, self.height_weight = contact_weight, height_weight
        self._readings: list[tuple[np.ndarray, Tensor, Tensor]] = []  # (image, cube xyz, hand xyz), latest last

    def readings(self, obs: Mapping[str, np.ndarray]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The cube's xyz and the hand's xyz in ``obs`` and one step before ``(3,)`` each (m): the
        first observation of an episode is its own "one step before"."""
        image = obs["image"]
        if not self._readings or self._readings[-1][0] is not image:
            cube = self.object_position(obs).to(torch.float32)
            hand = torch.as_tensor(np.asarray(obs["state"][:3]), dtype=torch.float32)
            self._readings = [*self._readings[-1:], (image, cube, hand)]
        _, cube, hand = self._readings[-1]
        _, cube_before, hand_before = self._readings[0]
        return cube, cube_before, hand, hand_before

    def make_cost(self, obs: Mapping[str, np.ndarray], goal: Tensor | Goal) -> Callable[[Tensor], Tensor]:
        """Cost ``(B,)`` of candidate actions ``(B, H, A)`` from ``obs`` (``goal`` only for the hand term)."""
        cube, cube_before, hand, hand_before = self.readings(obs)
        penalty = self.penalty(obs, goal)
        target = self.target

        def cost(actions: Tensor) -> Tensor:
            cubes, hands = self.dynamics.rollout(cube[:2], cube_before[:2], hand, hand_before, actions)
            last_cube, last_hand = cubes[:, :, -1], hands[:, :, -1]  # (K, B, 2), (K, B, 3)
            total = (torch.linalg.vector_norm(last_cube - target.to(last_cube), dim=-1)
                     + self.contact_weight * torch.linalg.vector_norm(last_hand[..., :2] - last_cube, dim=-1)
                     + self.height_weight * (last_hand[..., 2] - cube[2]).abs()).mean(0)  # (B,)
            total = total.to(actions.dtype)
            return total if penalty is None else total + penalty(actions)

        return cost
