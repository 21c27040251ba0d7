"""Sub-goal schedule: which goal the planner aims at, step by step.

V-JEPA 2-AC does pick-and-place with two sub-goal images (object grasped; object near the
target) and then the final goal image, switching after 4, 10 and 4 steps. Here a goal
switches after its number of steps **or** as soon as the energy toward it falls below a
threshold (one for all goals, or one per goal), whichever comes first; the final goal stays
for the rest of the episode.

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
            this: one number for every goal, or one entry per goal (``None`` entries: that
            goal switches by steps only; like ``steps_per_goal``, the final goal's entry may
            be left out, and a shorter list leaves the goals after it without a threshold);
            ``None``: no switching by energy.
    """

    steps_per_goal: Sequence[int] | None = None
    energy_threshold: float | Sequence[float | None] | None = None

    def __post_init__(self) -> None:
        if self.steps_per_goal is not None:
            steps = tuple(int(s) for s in self.steps_per_goal)
            if any(s <= 0 for s in steps):
                raise ValueError(f"steps_per_goal must be positive, got {list(steps)}")
            object.__setattr__(self, "steps_per_goal", steps)
        threshold = self.energy_threshold
        if threshold is not None and not isinstance(threshold, (int, float)):
            thresholds = tuple(None if t is None else float(t) for t in threshold)
            if not thresholds or all(t is None for t in thresholds):
                raise ValueError(f"energy_threshold as a list needs at least one number, got {list(threshold)}")
            object.__setattr__(self, "energy_threshold", thresholds)

    def threshold(self, index: int) -> float | None:
        """The energy threshold of goal ``index`` (``None``: none)."""
        threshold = self.energy_threshold
        if threshold is None or isinstance(threshold, (int, float)):
            return threshold
        return threshold[index] if index < len(threshold) else None


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
        if len(goals) > 1 and steps is None and any(config.threshold(i) is None for i in range(len(goals) - 1)):
            raise ValueError("with sub-goals, set steps_per_goal or energy_threshold (or both; an energy threshold "
                             "for every sub-goal without steps): otherwise the schedule never leaves some goal")
        thresholds = config.energy_threshold
        if isinstance(thresholds, tuple) and len(thresholds) > len(goals):
            raise ValueError(f"energy_threshold has {len(thresholds)} entries for {len(goals)} goals: "
                             f"{list(thresholds)}")
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
        steps, threshold = self.config.steps_per_goal, self.config.threshold(self.index)
        by_steps = steps is not None and self.steps_on_goal >= steps[self.index]
        by_energy = threshold is not None and energy is not None and energy < threshold
        if by_steps or by_energy:
            self.index += 1
            self.steps_on_goal = 0
            return True
        return False
