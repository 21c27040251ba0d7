"""Replay planned episodes in the simulator to see how far each one got (failure analysis).

``results.json`` of ``experiments/plan.py`` holds every episode's seed and executed actions, and
the envs are deterministic per seed, so replaying the actions reproduces the episode exactly.
During the replay the true state is read (privileged, never seen by the planner): the grip
site's distance to the task's object (the manipulated cube, or ``reach``'s marker:
``info["object_pos"][:3]``), how far the object rose above its start and moved across the
table, and, for tasks with a target (``info["target_pos"]``: push, pick_place), the object's
distance to it in the table plane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

REACHED_M = 0.02  # grip site within 2 cm of the object centre: the hand got to it
LIFTED_M = 0.03  # object centre 3 cm above its start: it was picked up
MOVED_M = 0.02  # object centre 2 cm from its start in the table plane: it was pushed or carried


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


def replay_episode(env: gym.Env, seed: int, actions: Sequence[Sequence[float]]) -> ReplayStats:
    """Reset ``env`` with ``seed``, execute ``actions`` (each ``(7,)``) and measure them.

    Raises:
        ValueError: no actions, or an action the env refuses.
    """
    if len(actions) == 0:
        raise ValueError(f"episode {seed} has no actions to replay")
    obs, info = env.reset(seed=seed)
    start = np.asarray(info["object_pos"][:3], dtype=float)
    target = np.asarray(info["target_pos"][:2], dtype=float) if "target_pos" in info else None  # pads stay put
    distances, heights, moved, to_target = [float(np.linalg.norm(obs["state"][:3] - start))], [], [], []
    for action in actions:
        obs, _reward, _terminated, _truncated, info = env.step(np.asarray(action, dtype=np.float32))
        obj = np.asarray(info["object_pos"][:3], dtype=float)
        distances.append(float(np.linalg.norm(obs["state"][:3] - obj)))
        heights.append(float(obj[2]))
        moved.append(float(np.linalg.norm(obj[:2] - start[:2])))
        if target is not None:
            to_target.append(float(np.linalg.norm(obj[:2] - target)))
    targets = {} if target is None else {"target_start_m": float(np.linalg.norm(start[:2] - target)),
                                         "target_closest_m": min(to_target), "target_final_m": to_target[-1]}
    return ReplayStats(seed=seed, success=bool(info["is_success"]), steps=len(actions), closest_m=min(distances[1:]),
                       final_m=distances[-1], max_lift_m=max(0.0, max(heights) - float(start[2])),
                       max_moved_m=max(moved), distances_m=distances, **targets)


def replay_results(env: gym.Env, results: Mapping[str, Any]) -> list[ReplayStats]:
    """Replay every episode of a ``results.json`` payload.

    Raises:
        ValueError: the payload has no episodes, or a replay's success differs from the
            recorded one (the env or its version is not the one that planned).
    """
    episodes = results.get("episodes") or []
    if not episodes:
        raise ValueError("expected a plan.py results.json with a non-empty 'episodes' list, got none")
    stats = []
    for episode in episodes:
        replay = replay_episode(env, int(episode["seed"]), episode["mpc"]["actions"])
        if replay.success != bool(episode["success"]):
            raise ValueError(f"episode {episode['seed']}: replay success {replay.success}, recorded "
                             f"{episode['success']}: this env does not reproduce the planned episode")
        stats.append(replay)
    return stats


def summarize_replays(stats: Sequence[ReplayStats]) -> dict[str, Any]:
    """Counts and medians over episodes: success, reached (closest < 2 cm), lifted (> 3 cm),
    moved (> 2 cm across the table) and, with a target, the object's distances to it."""
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
    return summary


def as_records(stats: Sequence[ReplayStats]) -> list[dict[str, Any]]:
    """JSON-ready per-episode records."""
    return [asdict(s) for s in stats]
