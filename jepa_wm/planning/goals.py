"""Goals from images: the stages' latents and when to move from one to the next.

An env's :class:`envs.interface.GoalImages` (sub-goal images, then the final goal, each with the
expert's step at capture) become an :class:`ImageGoal` (the :class:`jepa_wm.protocols.Goal`
contract) through :class:`ImageGoals`, which holds the schedule settings:

>>> goals = ImageGoals(steps_per_goal=(30, 6, 6, 12, 6), energy_threshold=(0.03,))
>>> goal = goals.goal(model, env.unwrapped.goal_images())
>>> agent.reset(goal, obs)

A stage is left after its number of steps, or as soon as the observed energy toward it falls below
its threshold; without explicit steps, each sub-goal gets the expert's steps to it times
``hint_scale`` (V-JEPA 2-AC switches after 4, 10 and 4 steps of its episodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from envs.interface import GoalImages
from jepa_wm.protocols import CostModel, EpisodeGoal, Observation
from planners.subgoals import SubgoalConfig, SubgoalSchedule


@dataclass(frozen=True)
class ImageGoal:
    """Goal stages built from images (:class:`jepa_wm.protocols.Goal`).

    Attributes:
        names: one per stage ``(G,)``; latents ``(G, N, D)``; images uint8 ``(H, W, 3)`` each; schedule;
        gripper: each stage's gripper command when known without images (see the protocol).
    """

    names: tuple[str, ...]
    latents: Tensor
    images: tuple[np.ndarray, ...] | None
    schedule: SubgoalConfig
    gripper: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.names) != len(self.latents) or (self.images is not None and len(self.images) != len(self.names)):
            raise ValueError(f"expected one latent and one image per goal stage ({len(self.names)}), got "
                             f"{len(self.latents)} latents and {None if self.images is None else len(self.images)} images")
        if self.gripper is not None and (len(self.gripper) != len(self.names)
                                         or any(g not in (-1.0, 1.0) for g in self.gripper)):
            raise ValueError(f"gripper must give -1 (open) or +1 (closed) for each of the {len(self.names)} stages, "
                             f"got {self.gripper!r}")


def hint_steps(steps: Sequence[int], hint_scale: float) -> tuple[int, ...]:
    """Steps on each sub-goal (the final goal has none): the expert's steps between goal captures
    (``steps``, cumulative: ``GoalImages.steps``) times ``hint_scale``, at least 1 each."""
    gaps = np.diff(np.asarray(steps), prepend=0)[:-1]  # expert steps spent on each sub-goal
    return tuple(max(1, round(hint_scale * int(g))) for g in gaps)


@dataclass(frozen=True)
class ImageGoals:
    """How goal images become an :class:`ImageGoal`: the sub-goal schedule's settings.

    Args:
        steps_per_goal: steps on each sub-goal; ``None`` derives them from the goal images' step
            hints (the expert's steps between captures) times ``hint_scale``.
        hint_scale: how much slower than the clean expert the planner may be.
        energy_threshold: also leave a stage once the observed energy toward it falls below this:
            one number for all, or one entry per stage (``None`` entries: by steps only).
    """

    steps_per_goal: Sequence[int] | None = None
    hint_scale: float = 3.0
    energy_threshold: float | Sequence[float | None] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.hint_scale, bool) or not isinstance(self.hint_scale, (int, float)) or not self.hint_scale > 0:
            raise ValueError(f"goal.hint_scale must be a number > 0, got {self.hint_scale!r}")
        checked = SubgoalConfig(self.steps_per_goal, self.energy_threshold)  # raises on bad values
        object.__setattr__(self, "steps_per_goal", checked.steps_per_goal)
        object.__setattr__(self, "energy_threshold", checked.energy_threshold)

    def check_task(self, names: Sequence[str], task: str) -> None:
        """Raise ``ValueError`` unless explicit steps and per-stage thresholds fit a task with the goal
        stages ``names`` (a single-goal task ignores them)."""
        per_stage = isinstance(self.energy_threshold, tuple)
        if len(names) == 1 or (self.steps_per_goal is None and not per_stage):
            return
        try:  # steps derived from the hints: any positive numbers stand in for them
            SubgoalSchedule(list(names), SubgoalConfig(self.steps_per_goal or (1,) * len(names),
                                                       self.energy_threshold))
        except ValueError as err:
            raise ValueError(f"goal: task {task!r} has the goal stages {list(names)}; {err}") from None

    def schedule(self, goals: GoalImages) -> SubgoalConfig:
        """When to move between the stages of ``goals`` (a single goal never switches)."""
        return self.stage_schedule(goals.names, goals.steps)

    def stage_schedule(self, names: Sequence[str], expert_steps: Sequence[int] | None) -> SubgoalConfig:
        """When to move between the stages ``names``, given the expert's cumulative steps to each
        (``None``: unknown, then by ``steps_per_goal`` and thresholds only)."""
        if len(names) == 1:
            return SubgoalConfig()
        steps = self.steps_per_goal
        if steps is None and expert_steps is not None:
            steps = hint_steps(expert_steps, self.hint_scale)
        return SubgoalConfig(steps_per_goal=steps, energy_threshold=self.energy_threshold)

    @classmethod
    def build(cls, context: Any, model: CostModel, *, instruction: str | None = None, templates: str | None = None,
              **settings: Any) -> ImageGoals:
        """From config (``configs/goal/image.yaml``): the settings above (the build context and model are unused).

        Raises:
            ValueError: ``instruction`` or ``templates`` given: they belong to goals from sentences.
        """
        given = [name for name, value in (("instruction", instruction), ("language.templates", templates))
                 if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} set, but goal=image plans toward the env's goal images: add "
                             f"goal=text to plan toward sentences")
        return cls(**settings)

    def goal(self, model: CostModel, goals: GoalImages) -> ImageGoal:
        """The goal of ``goals``, encoded by ``model`` (latents ``(G, N, D)``)."""
        return ImageGoal(tuple(goals.names), model.encode_goal(goals.images), tuple(goals.images), self.schedule(goals))

    def episode_goal(self, env: Any, model: CostModel, obs: Observation, seed: int) -> EpisodeGoal:
        """The :class:`~jepa_wm.protocols.GoalSource` step: the env's goal images of this episode."""
        return EpisodeGoal(self.goal(model, env.unwrapped.goal_images()), {"source": "images"})
