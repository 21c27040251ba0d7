"""Calibrating the arrival energy: the lowest energy observed outside the arrival radius."""

from __future__ import annotations

import pytest

from jepa_wm.arrival import calibrate_arrival_energy, final_goal_steps


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


def test_final_goal_steps_skip_the_switch_step() -> None:
    assert final_goal_steps([0, 0, 1, 1, 2, 2, 2], final=2) == [5, 6]  # step 4 logged the energy toward goal 1
    assert final_goal_steps([0, 0, 0], final=0) == [0, 1, 2]
    assert final_goal_steps([0, 0, 1, 1], final=2) == []  # the final goal never came
