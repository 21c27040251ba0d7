"""The planner's cost: a weighted sum of small terms, and the core terms.

Each term is one class with a ``weight``, a ``reset(goal, model)`` at the start of an episode and
``__call__(candidates) -> (B,)`` (:class:`jepa_wm.protocols.CostTerm`); :class:`WeightedSum` adds
them. A term is one entry of the plan config's ``costs`` block, built by its ``build`` class
method, which checks once what the term needs from the world model and the task::

    costs:
      energy: {_target_: jepa_wm.planning.costs.LatentEnergy.build, weight: 1.0, distance: l1, smoothing: [1, 3]}
      action: {_target_: jepa_wm.planning.costs.ActionCost.build, weight: 0.004, dims: [0, 1, 2]}
      workspace: {_target_: jepa_wm.planning.costs.WorkspaceCost.build, weight: 1.0, box: view}

``costs.<name>=null`` drops a term; a new term is a class with these three methods and a config
entry (``+costs.<name>={_target_: my_module.MyTerm.build, weight: ...}``). Plug-in terms live with
their plug-in (:mod:`jepa_wm.plugins.gripper_reader.cost`, :mod:`jepa_wm.plugins.object_reader.cost`,
:mod:`jepa_wm.plugins.object_model.model`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from jepa_wm.protocols import CostModel, CostTerm, Goal, Observation
from planners.objective import DISTANCES, Distance, kernel_sizes, latent_energy
from planners.workspace import WorkspaceBox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildContext:
    """What building a world model or a cost term may read: the task's env, the device, the task's name."""

    env: gym.Env
    device: torch.device
    task: str


def check_weight(weight: float, name: str) -> float:
    """``weight`` as a float ``>= 0``; ``ValueError`` naming the term otherwise."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise ValueError(f"costs.{name}.weight must be a number >= 0, got {weight!r}")
    return float(weight)


def check_prediction(model: CostModel, expected: str, name: str) -> None:
    """Raise ``ValueError`` unless ``model``'s rollouts are ``expected`` (``model.prediction``)."""
    found = getattr(model, "prediction", None)
    if found != expected:
        raise ValueError(f"costs.{name} scores predicted {expected}; the world model ({type(model).__name__}) "
                         f"predicts {found}: drop the term (costs.{name}=null) or pick a world model that predicts "
                         f"{expected}")


class Candidates:
    """Candidate action sequences at one observation toward one goal stage, as cost terms see them.

    Attributes:
        actions: ``(B, H, A)``.
        obs: the observation they start from.
        goal: the episode's goal; ``stage`` its stage in force.
        model: the world model; :attr:`predicted` is its rollout, computed once for all terms.
    """

    def __init__(self, actions: Tensor, obs: Observation, goal: Goal, stage: int, model: CostModel) -> None:
        self.actions, self.obs, self.goal, self.stage, self.model = actions, obs, goal, stage, model

    @cached_property
    def predicted(self) -> Any:
        """The world model's rollout of :attr:`actions` from :attr:`obs` (latents ``(B, H, N, D)``
        for latent models)."""
        return self.model.rollout(self.obs, self.actions)

    @property
    def goal_latent(self) -> Tensor:
        """The stage's latent ``(N, D)``."""
        return self.goal.latents[self.stage]

    @property
    def hand(self) -> Tensor:
        """The observed grip-site position ``(3,)`` (the robot's proprioception)."""
        return torch.as_tensor(self.obs["state"][:3], dtype=torch.float32)


class WeightedSum:
    """The planner's cost: ``sum_i weight_i * term_i(candidates)`` over the terms (zero weights skipped).

    Args:
        terms: the terms by name, in the order they are added.
    """

    def __init__(self, terms: Mapping[str, CostTerm]) -> None:
        if not terms:
            raise ValueError("the cost needs at least one term (costs: none given)")
        for name, term in terms.items():
            if not isinstance(term, CostTerm):
                raise TypeError(f"costs.{name} must be a cost term (weight, reset, __call__), got {type(term).__name__}")
            check_weight(term.weight, name)
        self.terms = dict(terms)

    def reset(self, goal: Goal, model: CostModel) -> None:
        """Tell every term the episode's goal."""
        for term in self.terms.values():
            term.reset(goal, model)

    def bind(self, model: CostModel, obs: Observation, goal: Goal, stage: int) -> BoundCost:
        """The cost function ``actions (B, H, A) -> (B,)`` the planner minimises at ``obs`` toward ``stage``."""
        return BoundCost(self, model, obs, goal, stage)

    def __call__(self, candidates: Candidates) -> Tensor:
        """Costs ``(B,)``."""
        total: Tensor | None = None
        for term in self.terms.values():
            if term.weight == 0:
                continue
            value = term.weight * term(candidates)  # (B,)
            total = value if total is None else total + value.to(total)
        if total is None:
            return candidates.actions.new_zeros(candidates.actions.shape[0])
        return total


class BoundCost:
    """A :class:`WeightedSum` at one observation and goal stage: a :class:`planners.protocols.CostFunction`."""

    def __init__(self, cost: WeightedSum, model: CostModel, obs: Observation, goal: Goal, stage: int) -> None:
        self.cost, self.model, self.obs, self.goal, self.stage = cost, model, obs, goal, stage

    @property
    def device(self) -> torch.device:
        """Where planners create candidates: the goal latents' device."""
        return self.goal.latents.device

    def __call__(self, actions: Tensor) -> Tensor:
        """Costs ``(B,)`` of candidate actions ``(B, H, A)``."""
        return self.cost(Candidates(actions, self.obs, self.goal, self.stage, self.model))


# ---------------------------------------------------------------------- core terms
@dataclass(frozen=True)
class EnergySettings:
    """The latent energy: V-JEPA 2-AC's distance of a latent to a goal latent, averaged over tokens and channels.

    Args:
        distance: ``"l1"`` (mean absolute difference, the paper's) or ``"l2"`` (mean squared difference).
        smoothing: odd side ``k`` of a box blur over each camera view's token grid before the distance (1: none,
            the paper's), or several sizes: the mean of their energies (:func:`planners.objective.latent_energy`).
    """

    distance: Distance = "l1"
    smoothing: int | Sequence[int] = 1

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"energy.distance must be one of {DISTANCES}, got {self.distance!r}")
        object.__setattr__(self, "smoothing", kernel_sizes(self.smoothing))

    def __call__(self, z: Tensor, goal: Tensor) -> Tensor:
        """Energies ``(M,)`` of latents ``(M, N, D)`` to the goal latent ``(N, D)``."""
        return latent_energy(z, goal, self.distance, self.smoothing)


class LatentEnergy:
    """The latent energy of the last predicted frame to the goal stage's latent (V-JEPA 2-AC's planning energy).

    Args:
        energy: distance and smoothing.
        weight: its factor in the cost.
    """

    def __init__(self, energy: EnergySettings = EnergySettings(), weight: float = 1.0) -> None:
        self.energy, self.weight = energy, check_weight(weight, "energy")

    @classmethod
    def build(cls, context: BuildContext, model: CostModel, *, weight: float = 1.0, distance: Distance = "l1",
              smoothing: int | Sequence[int] = 1) -> LatentEnergy:
        check_prediction(model, "latents", "energy")
        return cls(EnergySettings(distance, smoothing), weight)

    def reset(self, goal: Goal, model: CostModel) -> None:
        """Nothing to prepare."""

    def __call__(self, candidates: Candidates) -> Tensor:
        z_pred = candidates.predicted  # (B, H, N, D)
        return self.energy(z_pred[:, -1], candidates.goal_latent)  # (B,)


class ActionCost:
    """``mean_t sum_{i in dims} |a[t, i]|`` (action units): among moves the energy scores alike, the smaller wins.

    Args:
        dims: the action dimensions it counts (default: delta xyz).
        weight: its factor in the cost.
    """

    def __init__(self, dims: Sequence[int] = (0, 1, 2), weight: float = 0.0) -> None:
        dims = tuple(int(d) for d in dims)
        if not dims or min(dims) < 0 or len(set(dims)) != len(dims):
            raise ValueError(f"costs.action.dims must be distinct non-negative action indices, got {list(dims)}")
        self.dims, self.weight = dims, check_weight(weight, "action")

    @classmethod
    def build(cls, context: BuildContext, model: CostModel, *, weight: float, dims: Sequence[int] = (0, 1, 2)
              ) -> ActionCost:
        term, action_dim = cls(dims, weight), context.env.action_space.shape[0]
        if max(term.dims) >= action_dim:
            raise ValueError(f"costs.action.dims {list(term.dims)} out of range for {action_dim}-D actions")
        return term

    def reset(self, goal: Goal, model: CostModel) -> None:
        """Nothing to prepare."""

    def __call__(self, candidates: Candidates) -> Tensor:
        return candidates.actions[..., list(self.dims)].abs().sum(-1).mean(-1)  # (B,)


class WorkspaceCost:
    """The planned grip-site positions' L1 distance (action units) to a box, averaged over the plan's steps.

    Positions come from the observed proprioception plus the planned deltas; zero inside the box, so
    the other terms alone choose among plans that stay in (:class:`planners.workspace.WorkspaceBox`).

    Args:
        box: the box.
        weight: its factor in the cost.
    """

    def __init__(self, box: WorkspaceBox, weight: float = 1.0) -> None:
        self.box, self.weight = box, check_weight(weight, "workspace")

    @classmethod
    def build(cls, context: BuildContext, model: CostModel, *, weight: float = 1.0,
              box: str | Sequence[Sequence[float]] = "view") -> WorkspaceCost:
        """``box``: ``"view"`` (the part of the workspace the task's camera sees, ``env.unwrapped.view_box``)
        or ``[[x, y, z], [x, y, z]]`` (low and high corners, m)."""
        if box == "view":
            if not hasattr(context.env.unwrapped, "view_box"):
                raise ValueError(f"costs.workspace.box=view: task {context.task!r} defines no view box; give "
                                 "[[x, y, z], [x, y, z]] or drop the term (costs.workspace=null)")
            low, high = context.env.unwrapped.view_box
            return cls(WorkspaceBox(np.asarray(low).tolist(), np.asarray(high).tolist()), weight)
        if isinstance(box, str) or not isinstance(box, Sequence) or len(box) != 2:
            raise ValueError(f"costs.workspace.box must be 'view' or [[x, y, z], [x, y, z]] (low, high), got {box!r}")
        return cls(WorkspaceBox(box[0], box[1]), weight)

    def reset(self, goal: Goal, model: CostModel) -> None:
        """Nothing to prepare."""

    def __call__(self, candidates: Candidates) -> Tensor:
        return self.box.cost(candidates.hand, candidates.actions, pos_scale=candidates.model.pos_scale)  # (B,)
