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

The reader's reading of a still cube jitters from frame to frame as the arm moves (by 1-2.5 cm,
more than its bias, for a reader trained on 400 push episodes), and the model reads the cube's
motion from two consecutive positions, so the cube's position is filtered
(:meth:`ObjectModelCosts.readings`, a Kalman filter per axis): predicted by the model from the
last estimate and the hand's observed move, corrected by the reading with the gain the reading
noise (``reading_noise``), the model's error (``model_error`` x the predicted move) and a still
cube's (``still_noise``) give.

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


def object_cost(cube_xy: Tensor, cube_z: Tensor | float, hand: Tensor, target_xy: Tensor, contact_weight: float,
                height_weight: float) -> Tensor:
    """``d(cube, target) + contact_weight * d(hand, cube) + height_weight * |z_hand - z_cube|`` (metres,
    distances in the table plane) of cubes ``(..., 2)`` at height ``cube_z`` and hands ``(..., 3)``, ``(...)``:
    this planner's cost and :class:`~jepa_wm.state_oracle.ObjectStateCost`'s."""
    return (torch.linalg.vector_norm(cube_xy - target_xy.to(cube_xy), dim=-1)
            + contact_weight * torch.linalg.vector_norm(hand[..., :2] - cube_xy, dim=-1)
            + height_weight * (hand[..., 2] - cube_z).abs())


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
        reading_noise: the object reader's error per axis (m, standard deviation).
        model_error: the model's error per axis as a fraction of the cube's predicted move.
        still_noise: a still cube's position noise per step (m, standard deviation).
    """

    def __init__(self, world_model: WorldModel, object_reader: ObjectReader, dynamics: ObjectDynamics, target: Tensor,
                 objective: ObjectiveConfig = ObjectiveConfig(), workspace: WorkspaceBox | None = None, *,
                 contact_weight: float = 0.1, height_weight: float = 0.3, reading_noise: float = 0.015,
                 model_error: float = 0.3, still_noise: float = 0.002) -> None:
        super().__init__(world_model, objective, workspace, object_reader)
        if min(contact_weight, height_weight, model_error, still_noise) < 0 or not reading_noise > 0:
            raise ValueError("contact_weight, height_weight, model_error and still_noise must be >= 0 and "
                             f"reading_noise > 0, got {contact_weight}, {height_weight}, {model_error}, {still_noise}, "
                             f"{reading_noise}")
        self.dynamics = dynamics
        self.target = torch.as_tensor(target, dtype=torch.float32).reshape(3)[:2]
        self.contact_weight, self.height_weight = contact_weight, height_weight
        self.reading_noise, self.model_error, self.still_noise = reading_noise, model_error, still_noise
        self._image: np.ndarray | None = None
        self._cubes: list[Tensor] = []  # filtered cube xyz, latest last (the last two)
        self._hands: list[Tensor] = []  # observed grip-site xyz, latest last (the last three)
        self._variance = torch.zeros(3)  # (3,) the estimate's variance per axis

    def readings(self, obs: Mapping[str, np.ndarray]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The cube's filtered xyz and the hand's xyz in ``obs`` and one step before ``(3,)`` each (m).

        The first observation of an episode is its own "one step before" and the reading its estimate.
        At each new observation the model predicts the cube from the last two estimates and hands,
        with the hand's observed move as the action; the reading corrects the prediction by the
        Kalman gain ``P / (P + reading_noise²)``, ``P`` the estimate's variance plus
        ``still_noise² + (model_error x predicted move)²``. The cube's height is predicted unchanged.
        """
        image = obs["image"]
        if self._image is not image:
            self._image = image
            reading = self.object_position(obs).to(torch.float32)
            hand = torch.as_tensor(np.asarray(obs["state"][:3]), dtype=torch.float32)
            if not self._cubes:
                self._cubes, self._hands = [reading], [hand]
                self._variance = torch.full((3,), self.reading_noise ** 2)
            else:
                self._update(reading, hand)
        hands = self._hands[-2:]
        return self._cubes[-1], self._cubes[0], hands[-1], hands[0]

    def _update(self, reading: Tensor, hand: Tensor) -> None:
        """One step of the filter with a new reading ``(3,)`` and hand ``(3,)``."""
        cube, cube_before = self._cubes[-1], self._cubes[0]
        last_hand, hand_before = self._hands[-1], self._hands[-2] if len(self._hands) > 1 else self._hands[-1]
        move = ((hand - last_hand) / self.dynamics.pos_scale)[None, None]  # (1, 1, 3) the hand's observed move
        with torch.no_grad():
            cubes, _ = self.dynamics.rollout(cube[:2], cube_before[:2], last_hand, hand_before, move)
        predicted = torch.cat([cubes[:, 0, 0].mean(0), cube[2:]])  # (3,)
        process = self.still_noise ** 2 + (self.model_error * (predicted - cube)) ** 2
        prior = self._variance + process
        gain = prior / (prior + self.reading_noise ** 2)
        self._cubes = [cube, predicted + gain * (reading - predicted)]
        self._variance = (1 - gain) * prior
        self._hands = [*self._hands[-2:], hand]

    def make_cost(self, obs: Mapping[str, np.ndarray], goal: Tensor | Goal) -> Callable[[Tensor], Tensor]:
        """Cost ``(B,)`` of candidate actions ``(B, H, A)`` from ``obs`` (``goal`` only for the hand term)."""
        cube, cube_before, hand, hand_before = self.readings(obs)
        penalty = self.penalty(obs, goal)
        target = self.target

        def cost(actions: Tensor) -> Tensor:
            cubes, hands = self.dynamics.rollout(cube[:2], cube_before[:2], hand, hand_before, actions)
            total = object_cost(cubes[:, :, -1], cube[2], hands[:, :, -1], target, self.contact_weight,
                                self.height_weight).mean(0)  # (B,) over the members' (K, B)
            total = total.to(actions.dtype)
            return total if penalty is None else total + penalty(actions)

        return cost
