"""Sub-goal schedule: switching by steps, by energy threshold, whichever first; the final goal stays."""

from __future__ import annotations

import pytest

from planners import SubgoalConfig, SubgoalSchedule


def _indices(schedule: SubgoalSchedule, energies: list[float | None]) -> list[int]:
    """Goal index in force at each step, updating after each step with its energy."""
    out = []
    for energy in energies:
        out.append(schedule.index)
        schedule.update(energy)
    return out


def test_switches_by_steps_like_the_paper() -> None:
    schedule = SubgoalSchedule(["grasped", "above", "final"], SubgoalConfig(steps_per_goal=(4, 10, 4)))
    indices = _indices(schedule, [None] * 25)
    assert indices == [0] * 4 + [1] * 10 + [2] * 11  # the final goal stays
    assert schedule.goal == "final" and schedule.is_final


def test_switches_by_threshold() -> None:
    schedule = SubgoalSchedule(["a", "b", "c"], SubgoalConfig(energy_threshold=0.1))
    indices = _indices(schedule, [0.5, 0.3, 0.05, 0.4, 0.09, 0.01, 0.01])
    assert indices == [0, 0, 0, 1, 1, 2, 2]


def test_whichever_comes_first() -> None:
    schedule = SubgoalSchedule(["a", "b", "c"], SubgoalConfig(steps_per_goal=(3, 3), energy_threshold=0.1))
    # goal a: energy never low -> leaves after 3 steps; goal b: low energy at its 2nd step.
    indices = _indices(schedule, [0.9, 0.9, 0.9, 0.9, 0.05, 0.9, 0.9])
    assert indices == [0, 0, 0, 1, 1, 2, 2]
    schedule.reset()
    assert schedule.index == 0 and schedule.goal == "a"


def test_single_goal_never_switches() -> None:
    schedule = SubgoalSchedule(["only"])
    assert not any(schedule.update(0.0) for _ in range(5))
    assert schedule.goal == "only"


@pytest.mark.parametrize("goals, config, match", [
    ([], SubgoalConfig(), "at least one goal"),
    (["a", "b"], SubgoalConfig(), "never leaves"),
    (["a", "b", "c"], SubgoalConfig(steps_per_goal=(4,)), "one entry per goal"),
])
def test_invalid_schedules_raise(goals, config, match) -> None:
    with pytest.raises(ValueError, match=match):
        SubgoalSchedule(goals, config)


def test_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SubgoalConfig(steps_per_goal=(4, 0))


def test_per_goal_thresholds_switch_only_where_set() -> None:
    # goal a: switches on arrival (energy below 0.1); goal b: no threshold, leaves after its 3 steps
    schedule = SubgoalSchedule(["a", "b", "c"], SubgoalConfig(steps_per_goal=(5, 3), energy_threshold=[0.1]))
    indices = _indices(schedule, [0.5, 0.05, 0.01, 0.01, 0.01, 0.01])
    assert indices == [0, 0, 1, 1, 1, 2]
    assert SubgoalConfig(energy_threshold=[0.1, None]).threshold(1) is None
    assert SubgoalConfig(energy_threshold=0.2).threshold(7) == 0.2


@pytest.mark.parametrize("config, match", [
    (SubgoalConfig(energy_threshold=[0.1]), "never leaves"),  # goal b has neither steps nor a threshold
    (SubgoalConfig(steps_per_goal=(2, 2), energy_threshold=[0.1, 0.1, 0.1, 0.1]), "4 entries for 3 goals"),
])
def test_invalid_per_goal_thresholds_raise(config, match) -> None:
    with pytest.raises(ValueError, match=match):
        SubgoalSchedule(["a", "b", "c"], config)


def test_threshold_list_needs_a_number() -> None:
    with pytest.raises(ValueError, match="at least one number"):
        SubgoalConfig(energy_threshold=[None, None])
