"""Replay planned episodes in the simulator to see how far each one got (failure analysis).

``results.json`` of ``experiments/plan.py`` holds every episode's seed and executed actions, and
the envs are deterministic per seed, so replaying the actions reproduces the episode exactly.
During the replay the true state is read (privileged, never seen by the planner): the grip
site's distance to the task's object (the manipulated cube, or ``reach``'s marker:
``info["object_pos"][:3]``), how far the object rose above its start and moved across the
table, and, for tasks with a target (``info["target_pos"]``: push, pick_place), the object's
distance to it in the table plane. Given the steps' goal indices, it also measures how near the
hand came to each goal's pose: the grip site's distance to where the expert's grip site was when
that goal image was taken (``GoalImages.states``), over the steps the goal was the planner's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

REACHED_M = 0.02  # grip site within 2 cm of the object centre: the hand got to it
LIFTED_M = 0.03  # object centre 3 cm above its start: it was picked up
MOVED_M = 0.02  # object centre 2 cm from its start in the table plane: it was pushed or carried
AT_GOAL_POSE_M = 0.03  # grip site within 3 cm of the expert's at a goal image: the hand took that pose


@dataclass(frozen=True)
class ReplayStats:
    """What one replayed episode reached, from the simulator's true state.

    Attributes:
        seed: the episode's env seed.
        success: the env's success flag after the last action (must match the recorded one).
        steps: actions replayed.
        closest_m: smallest grip-site to object distance over the episode, metres.
        final_m: that distance after the last action.
        max_lift_m: highest object centre above its start height (0 for a marker).
        max_moved_m: farthest the object centre got from its start in the table plane (xy).
        target_start_m, target_closest_m, target_final_m: object-to-target distance in the
            table plane at the start, smallest and final; ``None`` for tasks without a target.
        distances_m: grip-site to object distance at every observation, from the reset's
            (``steps + 1`` values; entry ``t`` is where action ``t`` was chosen).
        goal_pose_closest_m: goal name -> smallest distance of the grip site to the expert's
            grip site at that goal image, over the observations that followed the actions
            planned toward it; goals never planned toward are left out (empty without goal indices).
        grip_pos_m, object_pos_m: the grip site's and the object's xyz (metres, world frame) at
            every observation, from the reset's (``steps + 1`` rows of 3): the paths, to see how
            an episode went (the hand circling the cube, a cube knocked past the pad).
    """

    seed: int
    success: bool
    steps: int
    closest_m: float
    final_m: float
    max_lift_m: float
    max_moved_m: float = 0.0
    target_start_m: float | None = None
    target_closest_m: float | None = None
    target_final_m: float | None = None
    distances_m: list[float] = field(default_factory=list)
    goal_pose_closest_m: dict[str, float] = field(default_factory=dict)
    grip_pos_m: list[list[float]] = field(default_factory=list)
    object_pos_m: list[list[float]] = field(default_factory=list)


def replay_episode(env: gym.Env, seed: int, actions: Sequence[Sequence[float]],
                   goal_indices: Sequence[int] | None = None, goal_names: Sequence[str] | None = None,
                   every: int | None = None) -> ReplayStats:
    """Reset ``env`` with ``seed``, execute ``actions`` (each ``(7,)``) and measure them.

    Args:
        goal_indices: the goal each action was planned toward (index into the env's goal
            images, ``env.unwrapped.goal_images(every)``); ``None`` skips the goal poses.
        goal_names: the recorded goal names, checked against the env's.
        every: extra sub-goal images every this many expert steps, as results planned before the
            planning-core refactor could have (``config.subgoals.every``); ``None`` otherwise.

    Raises:
        ValueError: no actions, an action the env refuses, goal indices that do not fit the
            actions or the env's goals, or goal names other than the env's.
    """
    if len(actions) == 0:
        raise ValueError(f"episode {seed} has no actions to replay")
    obs, info = env.reset(seed=seed)
    goal_poses = None if goal_indices is None else _goal_poses(env, seed, len(actions), goal_indices, goal_names, every)
    start = np.asarray(info["object_pos"][:3], dtype=float)
    target = np.asarray(info["target_pos"][:2], dtype=float) if "target_pos" in info else None  # pads stay put
    distances, heights, moved, to_target = [float(np.linalg.norm(obs["state"][:3] - start))], [], [], []
    grips, objects = [_xyz(obs["state"])], [_xyz(start)]
    goal_pose_closest: dict[str, float] = {}
    for step, action in enumerate(actions):
        obs, _reward, _terminated, _truncated, info = env.step(np.asarray(action, dtype=np.float32))
        if goal_poses is not None:
            name, pose = goal_poses[step]
            gap = float(np.linalg.norm(obs["state"][:3] - pose))
            goal_pose_closest[name] = min(gap, goal_pose_closest.get(name, np.inf))
        obj = np.asarray(info["object_pos"][:3], dtype=float)
        grips.append(_xyz(obs["state"]))
        objects.append(_xyz(obj))
        distances.append(float(np.linalg.norm(obs["state"][:3] - obj)))
        heights.append(float(obj[2]))
        moved.append(float(np.linalg.norm(obj[:2] - start[:2])))
        if target is not None:
            to_target.append(float(np.linalg.norm(obj[:2] - target)))
    targets = {} if target is None else {"target_start_m": float(np.linalg.norm(start[:2] - target)),
                                         "target_closest_m": min(to_target), "target_final_m": to_target[-1]}
    return ReplayStats(seed=seed, success=bool(info["is_success"]), steps=len(actions), closest_m=min(distances[1:]),
                       final_m=distances[-1], max_lift_m=max(0.0, max(heights) - float(start[2])),
                       max_moved_m=max(moved), distances_m=distances, goal_pose_closest_m=goal_pose_closest,
                       grip_pos_m=grips, object_pos_m=objects, **targets)


def _xyz(position: np.ndarray) -> list[float]:
    """The first three entries (xyz) as floats, rounded to 0.1 mm (the files stay small)."""
    return [round(float(v), 4) for v in position[:3]]


def _goal_poses(env: gym.Env, seed: int, steps: int, goal_indices: Sequence[int], goal_names: Sequence[str] | None,
                every: int | None) -> list[tuple[str, np.ndarray]]:
    """Per action, the name of the goal it was planned toward and the expert's grip site ``(3,)`` there."""
    goals = env.unwrapped.goal_images(every)
    if goal_names is not None and tuple(goal_names) != tuple(goals.names):
        raise ValueError(f"episode {seed}: recorded goals {list(goal_names)}, the env's are {list(goals.names)}: "
                         f"this env does not reproduce the planned episode")
    if len(goal_indices) != steps or not all(0 <= int(i) < len(goals.names) for i in goal_indices):
        raise ValueError(f"episode {seed}: expected {steps} goal indices in [0, {len(goals.names)}), "
                         f"got {len(goal_indices)}: {list(goal_indices)[:10]}")
    return [(goals.names[int(i)], np.asarray(goals.states[int(i)][:3], dtype=float)) for i in goal_indices]


def read_plan_results(path: str | Path, required: Sequence[str] = ("config.task", "episodes")) -> dict[str, Any]:
    """The payload of a ``plan.py`` ``results.json`` at ``path``, with the ``required`` entries
    (dotted paths, e.g. ``"config.world_model"``) checked to be there.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not JSON, or a required entry is missing (the message names them all).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} not found: expected the results.json of experiments/plan.py")
    try:
        results = json.loads(path.read_text())
        for key in required:
            entry = results
            for part in key.split("."):
                entry = entry[part]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a results.json of experiments/plan.py (expected JSON with "
                         f"{', '.join(required[:-1])} and {required[-1]}): {type(err).__name__}: {err}") from None
    return results


def replay_results(env: gym.Env, results: Mapping[str, Any]) -> list[ReplayStats]:
    """Replay every episode of a ``results.json`` payload (with the goal poses when the episodes
    record their ``mpc.goal_indices``; ``config.subgoals.every`` as planned, in older results).

    Raises:
        ValueError: the payload has no episodes, or a replay's success differs from the
            recorded one (the env or its version is not the one that planned).
    """
    episodes = results.get("episodes") or []
    if not episodes:
        raise ValueError("expected a plan.py results.json with a non-empty 'episodes' list, got none")
    every = ((results.get("config") or {}).get("subgoals") or {}).get("every")
    stats = []
    for episode in episodes:
        indices = episode["mpc"].get("goal_indices")
        replay = replay_episode(env, int(episode["seed"]), episode["mpc"]["actions"], goal_indices=indices,
                                goal_names=episode.get("goal_names"), every=every)
        if replay.success != bool(episode["success"]):
            raise ValueError(f"episode {episode['seed']}: replay success {replay.success}, recorded "
                             f"{episode['success']}: this env does not reproduce the planned episode")
        stats.append(replay)
    return stats


def summarize_replays(stats: Sequence[ReplayStats]) -> dict[str, Any]:
    """Counts and medians over episodes: success, reached (closest < 2 cm), lifted (> 3 cm),
    moved (> 2 cm across the table), with a target the object's distances to it and, with goal
    poses, per goal: episodes that planned toward it, those whose hand came within 3 cm of the
    expert's pose there, and the median closest distance."""
    if not stats:
        raise ValueError("summarize_replays needs at least one episode")
    summary = {
        "episodes": len(stats),
        "success": sum(s.success for s in stats),
        "reached": sum(s.closest_m < REACHED_M for s in stats),
        "lifted": sum(s.max_lift_m > LIFTED_M for s in stats),
        "moved": sum(s.max_moved_m > MOVED_M for s in stats),
        "median_closest_m": float(np.median([s.closest_m for s in stats])),
        "median_final_m": float(np.median([s.final_m for s in stats])),
    }
    if all(s.target_final_m is not None for s in stats):
        summary["median_target_start_m"] = float(np.median([s.target_start_m for s in stats]))
        summary["median_target_closest_m"] = float(np.median([s.target_closest_m for s in stats]))
        summary["median_target_final_m"] = float(np.median([s.target_final_m for s in stats]))
    names = list(dict.fromkeys(name for s in stats for name in s.goal_pose_closest_m))  # in goal order
    if names:
        summary["goal_poses"] = {}
        for name in names:
            closest = [s.goal_pose_closest_m[name] for s in stats if name in s.goal_pose_closest_m]
            summary["goal_poses"][name] = {"episodes": len(closest),
                                           "within_3cm": sum(c < AT_GOAL_POSE_M for c in closest),
                                           "median_closest_m": float(np.median(closest))}
    return summary


def as_records(stats: Sequence[ReplayStats]) -> list[dict[str, Any]]:
    """JSON-ready per-episode records."""
    return [asdict(s) for s in stats]
