"""Calibrating the MPC thresholds: arrival (the lowest energy outside a radius) and far (the highest inside)."""

from __future__ import annotations

import pytest

from jepa_wm.evaluation.arrival import (
    calibrate_arrival_energy,
    calibrate_far_energy,
    final_goal_observations,
    final_goal_steps,
)
from jepa_wm.evaluation.replay import ReplayStats


def test_threshold_is_the_lowest_energy_outside_the_radius() -> None:
    energies = [[0.5, 0.2, 0.05, 0.01], [0.4, 0.12, 0.3]]
    distances = [[0.30, 0.04, 0.015, 0.005], [0.20, 0.03, 0.01]]  # episode 2's 0.3 at 1 cm: a noisy energy
    calibration = calibrate_arrival_energy(energies, distances, radius_m=0.02)
    assert calibration.threshold == 0.12  # episode 2 at 3 cm
    assert (calibration.observations, calibration.within, calibration.within_below) == (7, 3, 2)
    assert (calibration.episodes_within, calibration.episodes_below) == (2, 1)
    assert calibrate_arrival_energy([[0.1]], [[0.01]], radius_m=0.02).threshold is None  # never outside


def test_far_threshold_is_the_highest_energy_within_the_radius() -> None:
    energies = [[0.5, 0.2, 0.05, 0.01], [0.4, 0.12, 0.3]]
    distances = [[0.30, 0.04, 0.015, 0.005], [0.20, 0.03, 0.01]]
    far = calibrate_far_energy(energies, distances, radius_m=0.03)
    assert far.threshold == 0.3 and (far.observations, far.above) == (7, 2)  # 0.5 and 0.4, both far
    assert calibrate_far_energy([[0.1]], [[0.5]], radius_m=0.03).threshold is None  # never within
    with pytest.raises(ValueError, match="radius_m"):
        calibrate_far_energy([[0.1]], [[0.01]], radius_m=-1)


def test_final_goal_observations_pair_energies_with_replayed_distances() -> None:
    replay = ReplayStats(seed=0, success=True, steps=3, closest_m=0.01, final_m=0.01, max_lift_m=0.0, max_moved_m=0.0,
                         target_start_m=None, target_closest_m=None, target_final_m=None,
                         distances_m=[0.2, 0.1, 0.01, 0.01])
    episode = {"seed": 0, "goal_names": ["sub", "final"],
               "mpc": {"observed_energies": [0.9, 0.5, 0.2], "goal_indices": [0, 1, 1]}}
    assert final_goal_observations([episode], [replay]) == ([[0.2]], [[0.01]])  # step 1 scored the sub-goal
    with pytest.raises(ValueError, match="one replay per episode"):
        final_goal_observations([episode], [])
    with pytest.raises(ValueError, match="2 observed energies for 3 steps"):
        final_goal_observations([{**episode, "mpc": {"observed_energies": [0.9, 0.5], "goal_indices": [0, 1]}}],
                                [replay])


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
        final_goal_observations([episode], [pushed])


def test_final_goal_steps_skip_the_switch_step() -> None:
    assert final_goal_steps([0, 0, 1, 1, 2, 2, 2], final=2) == [5, 6]  # step 4 logged the energy toward goal 1
    assert final_goal_steps([0, 0, 0], final=0) == [0, 1, 2]
    assert final_goal_steps([0, 0, 1, 1], final=2) == []  # the final goal never came
