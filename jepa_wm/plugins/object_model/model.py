"""Plan with an object model: where candidate actions send the cube, as the readers see it.

:class:`ObjectModel` is a world model (:class:`jepa_wm.protocols.CostModel`) whose rollouts are the
cube's and the hand's positions, predicted by an :class:`~jepa_wm.plugins.object_model.dynamics.ObjectDynamics`
instead of latents by the JEPA predictor. At each step the
object reader reads the cube's position from the observation's latent (the frozen encoder's),
the robot's proprioception gives the grip site's, and the reader reads the cube's target from
the final goal image's latent; the model rolls each candidate forward from these (and the
previous step's readings, for the cube's and the hand's motion) and :class:`ObjectCost`, the cost
term, charges the state after its last action, averaged over the model's members,

    d(cube, target) + contact_weight * d(hand, cube) + height_weight * |z_hand - z_cube|

(metres, distances in the table plane, ``z_cube`` the reader's height of the observed cube). The two small terms lead the hand to the cube; the first is the task.
This is the cost :class:`~jepa_wm.diagnostics.state_oracle.ObjectStateCost` computes from the simulator's
truth, here from images and a learned model: nothing privileged at planning time.

The reader's reading of a still cube jitters from frame to frame as the arm moves (by 1-2.5 cm,
more than its bias, for a reader trained on 400 push episodes), and the model reads the cube's
motion from two consecutive positions, so the cube's position is filtered
(:meth:`ObjectModel.readings`, a Kalman filter per axis): predicted by the model from the
last estimate and the hand's observed move, corrected by the reading with the gain the reading
noise (``reading_noise``), the model's error (``model_error`` x the predicted move) and a still
cube's (``still_noise``) give.

The observed energy toward the current goal image (what the agent logs, and its arrival hold and
sub-goal switches read) stays the encoder's latent energy. In the plan config (push's recipe)::

    world_model: object_model_push      # configs/world_model/object_model_push.yaml
    costs:
      object: {_target_: jepa_wm.plugins.object_model.model.ObjectCost.build, weight: 1.0,
               contact_weight: 0.1, height_weight: 0.3}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from jepa_wm.planning.costs import (
    BuildContext,
    Candidates,
    check_prediction,
    check_weight,
)
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.plugins.object_model.dynamics import ObjectDynamics
from jepa_wm.plugins.object_reader.reader import ObjectReader
from jepa_wm.protocols import CostModel, Goal, Observation
from jepa_wm.world_model import EncoderOnly, WorldModel


def object_cost(cube_xy: Tensor, cube_z: Tensor | float, hand: Tensor, target_xy: Tensor, contact_weight: float,
                height_weight: float) -> Tensor:
    """``d(cube, target) + contact_weight * d(hand, cube) + height_weight * |z_hand - z_cube|`` (metres,
    distances in the table plane) of cubes ``(..., 2)`` at height ``cube_z`` and hands ``(..., 3)``, ``(...)``:
    this planner's cost and :class:`~jepa_wm.diagnostics.state_oracle.ObjectStateCost`'s."""
    return (torch.linalg.vector_norm(cube_xy - target_xy.to(cube_xy), dim=-1)
            + contact_weight * torch.linalg.vector_norm(hand[..., :2] - cube_xy, dim=-1)
            + height_weight * (hand[..., 2] - cube_z).abs())


@dataclass
class ObjectRollout:
    """Where each member of the object model puts the cube ``(K, B, H, 2)`` and the hand ``(K, B, H, 3)``
    after each planned action, and the observed cube's height ``cube_z`` (m)."""

    cubes: Tensor
    hands: Tensor
    cube_z: Tensor


class ObjectModel(LatentModel):
    """The encoder, an object reader and an object model as the planner's world model (push's default).

    Args:
        world_model: its encoder reads the observations (the predictor is not used).
        object_reader: reads the cube's xyz from a latent.
        dynamics: the object model.
        reading_noise: the object reader's error per axis (m, standard deviation).
        model_error: the model's error per axis as a fraction of the cube's predicted move.
        still_noise: a still cube's position noise per step (m, standard deviation).
    """

    prediction = "object"

    def __init__(self, world_model: WorldModel | EncoderOnly, object_reader: ObjectReader, dynamics: ObjectDynamics, *,
                 reading_noise: float = 0.015, model_error: float = 0.3, still_noise: float = 0.002) -> None:
        super().__init__(world_model)
        if min(model_error, still_noise) < 0 or not reading_noise > 0:
            raise ValueError("world_model.model_error and still_noise must be >= 0 and reading_noise > 0, got "
                             f"{model_error}, {still_noise}, {reading_noise}")
        self.object_reader, self.dynamics = object_reader, dynamics
        self.reading_noise, self.model_error, self.still_noise = reading_noise, model_error, still_noise
        self.reset()

    @classmethod
    def build(cls, context: BuildContext, *, encoder: str, predictor: str | None, object_reader: str | None,
              dynamics: str, precision: str = "float32", check_fingerprint: bool = True, any_task: bool = False,
              reading_noise: float = 0.015, model_error: float = 0.3, still_noise: float = 0.002,
              **attachments: Any) -> ObjectModel:
        """Load the pair, its object reader and the object model (trained on this task unless ``any_task``)."""
        if object_reader is None:
            raise ValueError("the object model reads the cube with an object reader, and the world model pair has none "
                             "(world_model.object_reader=null): train one with experiments/train_object_reader.py")
        world_model = cls.load(context, encoder, predictor, precision, check_fingerprint, any_task)
        reader, _ = ObjectReader.load(object_reader, encoder_fingerprint=world_model.encoder.fingerprint(),
                                      target="object")
        model, meta = ObjectDynamics.load(dynamics)
        if meta.get("task") != context.task and not any_task:
            raise ValueError(f"the object model {dynamics} was trained on {meta.get('task')!r} episodes, not "
                             f"{context.task!r}: train one with `python experiments/train_object_dynamics.py "
                             f"task={context.task}` (or world_model.any_task=true)")
        return cls(world_model, reader.to(context.device), model, reading_noise=reading_noise,
                   model_error=model_error, still_noise=still_noise)

    def reset(self) -> None:
        """Forget the cached latent and the filter's estimates."""
        super().reset()
        self._image: np.ndarray | None = None
        self._cubes: list[Tensor] = []  # filtered cube xyz, latest last (the last two)
        self._hands: list[Tensor] = []  # observed grip-site xyz, latest last (the last three)
        self._variance = torch.zeros(3)  # (3,) the estimate's variance per axis

    def read_object(self, latents: Tensor) -> Tensor:
        """Where the reader puts the cube ``(M, 3)`` (m) in latents ``(M, N, D)``."""
        with torch.no_grad():
            return self.object_reader(latents)

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
            reading = self.read_object(self.encode(obs)[None])[0].to(torch.float32)
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

    def rollout(self, obs: Observation, actions: Tensor) -> ObjectRollout:
        """The cube's and the hand's predicted positions after candidate actions ``(B, H, A)`` from ``obs``."""
        cube, cube_before, hand, hand_before = self.readings(obs)
        cubes, hands = self.dynamics.rollout(cube[:2], cube_before[:2], hand, hand_before, actions)
        return ObjectRollout(cubes, hands, cube[2])


class ObjectCost:
    """The object model's cost after the last planned action: :func:`object_cost` toward the cube's target,
    the reader's reading of the final goal image, averaged over the model's members.

    Args:
        contact_weight: per metre between the hand and the cube in the table plane.
        height_weight: per metre between the hand's height and the cube's.
        weight: its factor in the cost.
    """

    def __init__(self, contact_weight: float = 0.1, height_weight: float = 0.3, weight: float = 1.0) -> None:
        if min(contact_weight, height_weight) < 0:
            raise ValueError(f"costs.object.contact_weight and height_weight must be >= 0, got {contact_weight}, "
                             f"{height_weight}")
        self.contact_weight, self.height_weight = contact_weight, height_weight
        self.weight = check_weight(weight, "object")
        self.target: Tensor | None = None  # (2,)

    @classmethod
    def build(cls, context: BuildContext, model: CostModel, *, weight: float = 1.0, contact_weight: float = 0.1,
              height_weight: float = 0.3) -> ObjectCost:
        check_prediction(model, "object", "object")
        return cls(contact_weight, height_weight, weight)

    def reset(self, goal: Goal, model: CostModel) -> None:
        """The cube's target: where the reader puts it in the final goal stage."""
        assert isinstance(model, ObjectModel)
        target = model.read_object(goal.latents)[-1]  # (3,) all stages read in one batch, the final one kept
        self.target = torch.as_tensor(target, dtype=torch.float32).reshape(3)[:2]

    def __call__(self, candidates: Candidates) -> Tensor:
        assert self.target is not None, "reset(goal, model) first"
        predicted: ObjectRollout = candidates.predicted
        total = object_cost(predicted.cubes[:, :, -1], predicted.cube_z, predicted.hands[:, :, -1], self.target,
                            self.contact_weight, self.height_weight).mean(0)  # (B,) over the members' (K, B)
        return total.to(candidates.actions.dtype)
