"""Calibrate the MPC's observed-energy thresholds from planned episodes with known distances.

``MPCConfig.arrival_energy``: below which observed energy the goal counts as reached. The MPC
loop can hold still once the encoded observation is close enough to the final goal's
latent (:class:`planners.MPCConfig` ``arrival_energy``). The threshold is read off planned
episodes whose true grip-to-object distances are known (``experiments/replay_plan.py`` replays
them): it is the lowest energy the planner observed anywhere farther than ``radius_m`` from the
object, so that no calibration observation outside the radius would have counted as arrived.
Calibrate on other seeds than the evaluation's, with the hold off (the hold keeps the hand
where it first arrived), and again for another encoder or objective (they set the energy's
scale). Tasks whose goal is an object on a target (push, pick_place) are not covered: their
arrival would be the object's distance to the target, not the hand's to the object.

``MPCConfig.far_energy``: above which observed energy the far planner plans. It is the
highest energy observed anywhere within ``radius_m`` of the object, so that no calibration
observation within the radius would have been planned as far.

>>> calibration = calibrate_arrival_energy(energies, distances, radius_m=0.02)
>>> calibration.threshold   # use as mpc.arrival_energy
>>> calibrate_far_energy(energies, distances, radius_m=0.03).threshold   # use as mpc.far_energy
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jepa_wm.evaluation.replay import ReplayStats


@dataclass(frozen=True)
class ArrivalCalibration:
    """The threshold and what it would have caught on the calibration episodes.

    Attributes:
        threshold: lowest energy observed farther than ``radius_m``; ``None`` when no
            observation was that far (nothing to calibrate against; not "never hold").
        radius_m: the arrival radius, metres.
        observations: observations on the final goal that were scored.
        within: of those, how many were within ``radius_m``.
        within_below: of those within, how many had an energy below ``threshold``.
        episodes_within: episodes that came within ``radius_m`` at some observation.
        episodes_below: episodes with some observation below ``threshold`` (all of them within).
    """

    threshold: float | None
    radius_m: float
    observations: int
    within: int
    within_below: int
    episodes_within: int
    episodes_below: int


def final_goal_steps(goal_indices: Sequence[int], final: int) -> list[int]:
    """Steps whose observed energy was measured toward the final goal (index ``final``): the MPC
    logs the energy toward the goal in force before a switch, so the switch step is left out."""
    return [t for t, g in enumerate(goal_indices) if g == final and (t == 0 or goal_indices[t - 1] == final)]


@dataclass(frozen=True)
class FarCalibration:
    """The far threshold and how often the far planner would have planned on the calibration episodes.

    Attributes:
        threshold: highest energy observed within ``radius_m``; ``None`` when no observation
            was that near.
        radius_m: the radius, metres.
        observations: observations on the final goal that were scored.
        above: of those, how many had an energy above ``threshold`` (all of them farther).
    """

    threshold: float | None
    radius_m: float
    observations: int
    above: int


def _flatten(energies: Sequence[Sequence[float]], distances: Sequence[Sequence[float]],
             radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    """All observations' energies and distances ``(sum T_e,)`` each, validated."""
    if not radius_m > 0:
        raise ValueError(f"radius_m must be positive, got {radius_m}")
    if len(energies) != len(distances) or not energies:
        raise ValueError(f"expected energies and distances for the same episodes (at least one), got "
                         f"{len(energies)} and {len(distances)}")
    for e, (energy, distance) in enumerate(zip(energies, distances, strict=True)):
        if len(energy) != len(distance):
            raise ValueError(f"episode {e}: {len(energy)} energies but {len(distance)} distances")
    energy_all = np.concatenate([np.asarray(e, dtype=float) for e in energies])  # (sum T_e,)
    distance_all = np.concatenate([np.asarray(d, dtype=float) for d in distances])
    if not (np.isfinite(energy_all).all() and np.isfinite(distance_all).all()):
        raise ValueError("energies and distances must be finite, got NaN or inf")
    return energy_all, distance_all


def calibrate_far_energy(energies: Sequence[Sequence[float]], distances: Sequence[Sequence[float]],
                         radius_m: float) -> FarCalibration:
    """The far-planner threshold: the highest observed energy within ``radius_m`` of the object.

    Args: as :func:`calibrate_arrival_energy`; ``radius_m`` is the distance within which the
        planner (not the far planner) should always plan.

    Raises:
        ValueError: empty input, mismatched lengths, non-finite values, or a non-positive radius.
    """
    energy_all, distance_all = _flatten(energies, distances, radius_m)
    within = distance_all <= radius_m
    threshold = float(energy_all[within].max()) if within.any() else None
    above = int((energy_all > threshold).sum()) if threshold is not None else 0
    return FarCalibration(threshold=threshold, radius_m=radius_m, observations=int(energy_all.size), above=above)


def calibrate_arrival_energy(energies: Sequence[Sequence[float]], distances: Sequence[Sequence[float]],
                             radius_m: float) -> ArrivalCalibration:
    """The arrival threshold from per-episode observed energies and true distances.

    Args:
        energies: per episode, the observed energy toward the final goal at each scored
            observation, ``(T_e,)``.
        distances: per episode, the true grip-site to object distance at the same observations
            ``(T_e,)``, metres.
        radius_m: the distance within which the goal counts as reached (below the task's
            success distance, so that holding there succeeds).

    Raises:
        ValueError: empty input, mismatched lengths, non-finite values, or a non-positive radius.
    """
    energy_all, distance_all = _flatten(energies, distances, radius_m)
    outside = distance_all > radius_m
    threshold = float(energy_all[outside].min()) if outside.any() else None
    below = energy_all < threshold if threshold is not None else np.ones_like(energy_all, dtype=bool)
    ends = np.cumsum([len(e) for e in energies])[:-1]
    return ArrivalCalibration(
        threshold=threshold, radius_m=radius_m, observations=int(energy_all.size), within=int((~outside).sum()),
        within_below=int((below & ~outside).sum()),
        episodes_within=sum(bool((~o).any()) for o in np.split(outside, ends)),
        episodes_below=sum(bool(b.any()) for b in np.split(below, ends)),
    )


def final_goal_observations(episodes: Sequence[Mapping[str, Any]], replays: Sequence[ReplayStats],
                            ) -> tuple[list[list[float]], list[list[float]]]:
    """Per episode, the observed energies toward the final goal and the true grip-object distances
    at the same observations, from a ``plan.py`` results.json's episodes and their replays.

    Args:
        episodes: ``results["episodes"]`` (each with ``goal_names``, ``mpc.observed_energies`` and
            ``mpc.goal_indices``).
        replays: :func:`jepa_wm.evaluation.replay.replay_results` of the same episodes, in order.

    Raises:
        ValueError: replays missing, a task whose goal is an object on a target, or episodes
            without one observed energy per step.
    """
    if len(episodes) != len(replays):
        raise ValueError(f"expected one replay per episode, got {len(replays)} for {len(episodes)} episodes")
    if any(replay.target_final_m is not None for replay in replays):
        raise ValueError("the calibration distance is the grip site's to the object, which is the goal only in "
                         "tasks without a target (reach); this task's goal is the object on its target")
    energies, distances = [], []
    for episode, replay in zip(episodes, replays, strict=True):
        observed = episode["mpc"]["observed_energies"]
        if len(observed) != replay.steps:
            raise ValueError(f"episode {episode['seed']}: {len(observed)} observed energies for {replay.steps} "
                             f"steps (plan.py logs one per step)")
        steps = final_goal_steps(episode["mpc"]["goal_indices"], len(episode["goal_names"]) - 1)
        energies.append([observed[t] for t in steps])
        distances.append([replay.distances_m[t] for t in steps])
    return energies, distances

