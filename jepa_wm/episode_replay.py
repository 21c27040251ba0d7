"""Replay planned episodes in the simulator to see how far each one got (failure analysis).

``results.json`` of ``experiments/plan.py`` holds every episode's seed and executed actions, and
the envs are deterministic per seed, so replaying the actions reproduces the episode exactly.
During the replay the true state is read (privileged, never seen by the planner): the grip
site's distance to the task's object (the manipulated cube, or ``reach``'s marker:
``info["object_pos"][:3]``) and how far the object rose above its start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

REACHED_M = 0.02  # grip site within 2 cm of the object centre: the hand got to it
LIFTED_M = 0.03  # object centre 3 cm above its start: it was picked up


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
    """

    seed: int
    success: bool
    steps: int
    closest_m: float
    final_m: float
    max_lift_m: float


def replay_episode(env: gym.Env, seed: int, actions: Sequence[Sequence[float]]) -> ReplayStats:
    """Reset ``env`` with ``seed``, execute ``actions`` (each ``(7,)``) and measure them.

    Raises:
        ValueError: no actions, or an action the env refuses.
    """
    if len(actions) == 0:
        raise ValueError(f"episode {seed} has no actions to replay")
    _obs, info = env.reset(seed=seed)
    start_z = float(info["object_pos"][2])
    distances, heights = [], []
    for action in actions:
        obs, _reward, _terminated, _truncated, info = env.step(np.asarray(action, dtype=np.float32))
        distances.append(float(np.linalg.norm(obs["state"][:3] - info["object_pos"][:3])))
        heights.append(float(info["object_pos"][2]))
    return ReplayStats(seed=seed, success=bool(info["is_success"]), steps=len(actions), closest_m=min(distances),
                       final_m=distances[-1], max_lift_m=max(0.0, max(heights) - start_z))


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
    """Counts and medians over episodes: success, reached (closest < 2 cm), lifted (> 3 cm)."""
    if not stats:
        raise ValueError("summarize_replays needs at least one episode")
    return {
        "episodes": len(stats),
        "success": sum(s.success for s in stats),
        "reached": sum(s.closest_m < REACHED_M for s in stats),
        "lifted": sum(s.max_lift_m > LIFTED_M for s in stats),
        "median_closest_m": float(np.median([s.closest_m for s in stats])),
        "median_final_m": float(np.median([s.final_m for s in stats])),
    }


def as_records(stats: Sequence[ReplayStats]) -> list[dict[str, Any]]:
    """JSON-ready per-episode records."""
    return [asdict(s) for s in stats]
