"""The contracts of planning, written down once.

Planning toward a goal joins three parts, each behind a contract here:

* :class:`CostModel` -- the world model as the planner's cost needs it: encode an observation,
  encode goal images, roll out a batch of candidate action sequences from an observation. The
  JEPA encoder + predictor implement it (:class:`jepa_wm.planning.latent_model.LatentModel`);
  push's object model (:mod:`jepa_wm.plugins.object_model`) and the simulator as the model
  (:mod:`jepa_wm.diagnostics.simulator`, privileged) are other implementations, picked in config.
* :class:`Goal` -- what the agent plans toward: goal stages (sub-goals, then the final goal) as
  latents in the model's space, and when to move from one stage to the next. A
  :class:`GoalSource` makes each episode's goal: from the env's goal images
  (:class:`jepa_wm.planning.goals.ImageGoals`) or from a sentence
  (:class:`jepa_wm.language.goals.TextGoals`), picked in config (``goal=image|text``).
* :class:`Agent` -- the step API a robot loop calls: ``reset(goal, observation)`` then
  ``act(observation) -> AgentStep`` once per control step
  (:class:`jepa_wm.planning.agent.MPCAgent`). :func:`jepa_wm.planning.episode.run_episode` is
  such a loop over a simulated env; a ROS node is another.

The planner's cost is a :class:`jepa_wm.planning.costs.WeightedSum` of :class:`CostTerm` s.

:class:`LatentWorldModel` is the tensor-level interface of the JEPA model itself
(:class:`jepa_wm.world_model.WorldModel`), which :class:`~jepa_wm.planning.latent_model.LatentModel`
wraps.

Shapes: ``B`` candidates, ``C`` context frames, ``H`` planned actions, ``G`` goal stages,
``N`` tokens per frame, ``D`` token width, ``S`` state size, ``A`` action size. An observation
is an env dict ``{"image": (H, W, 3) uint8, "state": (7,) float}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from planners.subgoals import SubgoalConfig

Observation = Mapping[str, np.ndarray]


def check_observation(obs: object, image_hw: Sequence[int] | None = None) -> None:
    """``ValueError`` (one line, what was expected and what came) unless ``obs`` is an observation:
    ``{"image": uint8 (H, W, 3), "state": finite float (S,)}``, the image ``image_hw`` when given."""
    if not isinstance(obs, Mapping) or not {"image", "state"} <= set(obs):
        keys = sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__
        raise ValueError(f"an observation must be a mapping with 'image' and 'state', got {keys}")
    image, state = obs["image"], obs["state"]
    shape = "(H, W, 3)" if image_hw is None else f"({image_hw[0]}, {image_hw[1]}, 3)"
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3
            or (image_hw is not None and image.shape[:2] != tuple(image_hw))):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"observation image must be a uint8 numpy array {shape}, got {got}")
    values = np.asarray(state)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"observation state must be a 1-D numeric array, got {values.dtype} {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"observation state must be finite, got {values.tolist()}")


@runtime_checkable
class CostModel(Protocol):
    """The world model behind a planner's cost.

    Attributes:
        prediction: what :meth:`rollout` returns, for cost terms to check: ``"latents"``
            (``(B, H, N, D)``), or a plug-in's own kind (``"object"``).
        pos_scale: metres the grip site moves per position action unit (cost terms that follow
            the planned hand positions read it).
        device: where latents and predictions live.
    """

    prediction: str
    pos_scale: float
    device: torch.device

    def reset(self) -> None:
        """Forget what was carried between observations (start of an episode)."""
        ...

    def encode(self, obs: Observation) -> Tensor:
        """The observation's latent ``(N, D)`` (computed once per observation)."""
        ...

    def encode_goal(self, images: Sequence[np.ndarray]) -> Tensor:
        """Goal images, each uint8 ``(H, W, 3)`` like the observations -> goal latents ``(G, N, D)``."""
        ...

    def rollout(self, obs: Observation, actions: Tensor) -> Any:
        """What follows ``obs`` under each candidate ``actions`` ``(B, H, A)``: for latent models the
        predicted latents ``(B, H, N, D)``; for other models what their cost terms read. Called
        once per plan with the candidates of one planner iteration."""
        ...


@runtime_checkable
class Goal(Protocol):
    """Goal stages in order (sub-goals, then the final goal) and their switching schedule.

    Attributes:
        names: one name per stage, ``(G,)``.
        latents: the stages' latents ``(G, N, D)`` in the cost model's space.
        images: the stages' images ``(H, W, 3)`` uint8 when the goal came from images, else
            ``None`` (a goal from a sentence has none).
        schedule: when to move on (steps per stage, energy thresholds).
        gripper: each stage's gripper command (+1 closed, -1 open) when the goal source knows it
            without images (a goal from a sentence: the expert's at that stage), else ``None``.
    """

    names: tuple[str, ...]
    latents: Tensor
    images: tuple[np.ndarray, ...] | None
    schedule: SubgoalConfig
    gripper: tuple[float, ...] | None


@dataclass(frozen=True)
class EpisodeGoal:
    """An episode's goal and what the results keep about where it came from.

    Attributes:
        goal: the :class:`Goal` the agent plans toward.
        record: plain data for ``results.json`` (e.g. ``{"source": "text", "instruction": ...}``).
    """

    goal: Goal
    record: dict[str, Any]


@runtime_checkable
class GoalSource(Protocol):
    """Where each episode's goal comes from; built once per run, asked once per episode."""

    def check_task(self, names: Sequence[str], task: str) -> None:
        """Raise ``ValueError`` unless its settings fit a task whose goal stages are ``names`` (at build time)."""
        ...

    def episode_goal(self, env: Any, model: CostModel, obs: Observation, seed: int) -> EpisodeGoal:
        """The goal of the episode ``env`` was just reset into (seed ``seed``, first observation ``obs``)."""
        ...


@dataclass
class AgentStep:
    """What :meth:`Agent.act` decided at one observation.

    Attributes:
        action: the action to execute, float32 ``(A,)``.
        plan: the plan it came from ``(H, A)`` (``None`` when the agent held still on arrival
            or executed a queued action of an earlier plan).
        cost: that plan's cost (``None`` without a plan).
        energy: the observed energy at this observation toward the goal stage in force when it came
            (before a switch at this step).
        goal_index: the goal stage the action serves (after a switch at this step).
        arrived: whether the agent held still because the goal counted as reached.
        time_s: wall-clock seconds of the call.
    """

    action: np.ndarray
    plan: Tensor | None
    cost: float | None
    energy: float | None
    goal_index: int
    arrived: bool
    time_s: float


@runtime_checkable
class Agent(Protocol):
    """A stateful planner a control loop calls once per step."""

    def reset(self, goal: Goal, obs: Observation, seed: int | None = None) -> None:
        """Start planning toward ``goal`` from the first observation ``obs`` (reseed with ``seed``)."""
        ...

    def act(self, obs: Observation) -> AgentStep:
        """The next action for ``obs``; each call counts as one executed step."""
        ...


@runtime_checkable
class CostTerm(Protocol):
    """One term of the planner's cost, weighted and summed by
    :class:`jepa_wm.planning.costs.WeightedSum`.

    A term is built once (its rules against the cost model checked then), told the goal at
    the start of each episode (:meth:`reset`) and evaluated on candidates (:meth:`__call__`).

    Attributes:
        weight: its factor in the sum (``>= 0``).
    """

    weight: float

    def reset(self, goal: Goal, model: CostModel) -> None:
        """Prepare for an episode toward ``goal`` (e.g. read a target from each stage)."""
        ...

    def __call__(self, candidates: Any) -> Tensor:
        """Unweighted costs ``(B,)`` of :class:`jepa_wm.planning.costs.Candidates` (actions,
        observation, goal stage, and the model's rollout, computed once for all terms)."""
        ...


@runtime_checkable
class LatentWorldModel(Protocol):
    """What :class:`jepa_wm.world_model.WorldModel` offers: tensors in, latents out."""

    def encode(self, images: Tensor) -> Tensor:
        """Images ``(..., 3, H, W)`` torch tensors (uint8, or float in [0, 1]) -> latents
        ``(..., N, D)`` on the model's device. Env observations are ``(H, W, 3)`` numpy:
        ``torch.from_numpy(obs["image"]).permute(2, 0, 1)``."""
        ...

    def rollout(
        self, z_context: Tensor, states: Tensor, actions: Tensor, *, past_actions: Tensor | None = None
    ) -> Tensor:
        """Predict the latents that follow the context under each candidate action sequence.

        Args:
            z_context: ``(C, N, D)`` context latents shared by all candidates (or
                ``(B, C, N, D)``); the last one is the current observation.
            states: raw states of the context frames, ``(C, S)`` (or ``(B, C, S)``).
            actions: raw candidate actions ``(B, H, A)``; the first is taken at the last
                context frame.
            past_actions: the ``C - 1`` actions executed between the context frames,
                ``(C - 1, A)`` (or ``(B, C - 1, A)``); needed only when ``C > 1``.

        Returns:
            ``(B, H, N, D)``: entry ``k`` is the latent after action ``k``; differentiable with
            respect to ``actions`` (sampling planners call it under ``torch.no_grad()``).
        """
        ...
