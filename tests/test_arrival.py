"""Calibrating the arrival energy: the lowest energy observed outside the arrival radius."""

from __future__ import annotations

import pytest

from jepa_wm.arrival import calibrate_arrival_energy, calibrate_from_replays, final_goal_steps
from jepa_wm.episode_replay import ReplayStats


def test_threshold_is_the_lowest_energy_outside_the_radius() -> None:
    energies = [[0.5, 0.2, 0.05, 0.01], [0.4, 0.12, 0.3]]
    distances = [[0.30, 0.04, 0.015, 0.005], [0.20, 0.03, 0.01]]  # episode 2's 0.3 at 1 cm: a noisy energy
    calibration = calibrate_arrival_energy(energies, distances, radius_m=0.02)
    assert calibration.threshold == 0.12  # episode 2 at 3 cm
    assert (calibration.observations, calibration.within, calibration.within_below) == (7, 3, 2)
    assert (calibration.episodes_within, calibration.episodes_below) == (2, 1)
    assert calibrate_arrival_energy([[0.1]], [[0.01]], radius_m=0.02).threshold is None  # never outside


def test_bad_calibration_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="same episodes"):
        calibrate_arrival_energy([[0.1]], [], radius_m=0.02)
    with pytest.raises(ValueError, match="episode 0: 2 energies but 1 distances"):
        calibrate_arrival_energy([[0.1, 0.2]], [[0.01]], radius_m=0.02)
    with pytest.raises(ValueError, match="radius_m"):
        calibrate_arrival_energy([[0.1]], [[0.01]], radius_m=0)
    with pytest.raises(ValueError, match="finite"):
        calibrate_arrival_energy([[float("nan")]], [[0.01]], radius_m=0.02)
    pushed = ReplayStats(seed=0, success=False, steps=1, closest_m=0.1, final_m=0.1, max_lift_m=0.0,
                         target_start_m=0.2, target_closest_m=0.2, target_final_m=0.2, distances_m=[0.1, 0.1])
    episode = {"seed": 0, "goal_names": ["final"], "mpc": {"observed_energies": [0.1], "goal_indices": [0]}}
    with pytest.raises(ValueError, match="without a target"):  # push / pick_place: the hand is not the goal
        calibrate_from_replays([episode], [pushed], radius_m=0.02)


def test_final_goal_steps_skip_the_switch_step() -> None:
    assert final_goal_steps([0, 0, 1, 1, 2, 2, 2], final=2) == [5, 6]  # step 4 logged the energy toward goal 1
    assert final_goal_steps([0, 0, 0], final=0) == [0, 1, 2]
    assert final_goal_steps([0, 0, 1, 1], final=2) == []  # the final goal never came
