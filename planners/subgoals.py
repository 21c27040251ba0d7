"""Sub-goal schedule: which goal the planner aims at, step by step.

V-JEPA 2-AC does pick-and-place with two sub-goal images (object grasped; object near the
target) and then the final goal image, switching after 4, 10 and 4 steps. Here a goal
switches after its number of steps **or** as soon as the energy toward it falls below a
threshold, whichever comes first; the final goal stays for the rest of the episode.

Goals are opaque (images, latents, anything the cost builder understands).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

G = TypeVar("G")


@dataclass(frozen=True)
class SubgoalConfig:
    """When to move on to the next goal.

    Args:
        steps_per_goal: steps spent on each goal, one entry per goal (the paper's
            ``(4, 10, 4)``); the final goal's entry does not switch anything (the final goal
            stays) and may be left out. ``None``: no switching by steps.
        energy_threshold: switch as soon as the energy toward the current goal is below
            this; ``None``: no switching by energy.
    """

    steps_per_goal: Sequence[int] | None = None
    energy_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.steps_per_goal is not None:
            steps = tuple(int(s) for s in self.steps_per_goal)
            if any(s <= 0 for s in steps):
                raise ValueError(f"steps_per_goal must be positive, got {list(steps)}")
            object.__setattr__(self, "steps_per_goal", steps)


class SubgoalSchedule(Generic[G]):
    """Walks through ``goals`` (sub-goals first, the final goal last).

    Args:
        goals: the goals in order, at least one.
        config: switching rules; with more than one goal at least one rule must be set.

    Call :meth:`update` once per executed step with the energy toward the current goal.
    """

    def __init__(self, goals: Sequence[G], config: SubgoalConfig = SubgoalConfig()) -> None:
        goals = list(goals)
        if not goals:
            raise ValueError("SubgoalSchedule needs at least one goal")
        steps = config.steps_per_goal
        if steps is not None and len(steps) not in (len(goals) - 1, len(goals)):
            raise ValueError(f"steps_per_goal needs one entry per goal ({len(goals)}, or {len(goals) - 1} "
                             f"without the final goal's), got {list(steps)}")
        if len(goals) > 1 and steps is None and config.energy_threshold is None:
            raise ValueError("with sub-goals, set steps_per_goal or energy_threshold (or both): "
                             "otherwise the schedule never leaves the first goal")
        self.goals = goals
        self.config = config
        self.index = 0
        self.steps_on_goal = 0

    @property
    def goal(self) -> G:
        """The current goal."""
        return self.goals[self.index]

    @property
    def is_final(self) -> bool:
        """Whether the current goal is the final one."""
        return self.index == len(self.goals) - 1

    def reset(self) -> None:
        """Back to the first goal."""
        self.index = 0
        self.steps_on_goal = 0

    def update(self, energy: float | None = None) -> bool:
        """Count one executed step toward the current goal; switch when a rule says so.

        Args:
            energy: the energy toward the current goal after this step (``None`` skips the
                threshold rule for this step).

        Returns:
            Whether the schedule moved on to the next goal.
        """
        self.steps_on_goal += 1
        if self.is_final:
            return False
        steps, threshold = self.config.steps_per_goal, self.config.energy_threshold
        by_steps = steps is not None and self.steps_on_goal >= steps[self.index]
        by_energy = threshold is not None and energy is not None and energy < threshold
        if by_steps or by_energy:
            self.index += 1
            self.steps_on_goal = 0
            return True
        return False
