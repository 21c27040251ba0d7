"""One planning episode: a short loop over a simulated env and an agent, and its record.

>>> result = run_episode(env, agent, ImageGoals(), seed=HELD_OUT_SEED_START)
>>> summarize([result])["success_rate"]

Per episode: reset the env with a held-out seed, ask the goal source for the episode's goal (the
env's goal images, or a sentence: :class:`jepa_wm.protocols.GoalSource`), reset the agent, then
``agent.act(obs)`` and ``env.step(action)`` until the time limit. Success is read from
``info["is_success"]`` only after the last step: the agent never sees it and the episode never
stops early on success.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from envs.interface import HELD_OUT_SEED_START
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.protocols import GoalSource
from planners.base import check_positive_int

logger = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    """One episode: ``success`` from the env after the last step, per-step timings and energies.

    ``final_state`` is the robot state ``(7,)`` observed after the last step and
    ``final_object_pos`` the env's true object positions ``(3 * K,)`` then (``info["object_pos"]``,
    the manipulated object first; the marker in ``reach``): for failure analysis, never seen by
    the planner. ``goal`` is what the goal source records (e.g. the instruction). ``frames`` are the
    observations ``(steps + 1)`` x uint8 ``(H, W, 3)`` and ``goal_images`` the episode's goal images
    (none for a goal from a sentence), for videos; they are left out of :meth:`as_dict`.
    """

    seed: int
    success: bool
    steps: int
    goal_names: tuple[str, ...]
    steps_per_goal: tuple[int, ...] | None
    time_per_action_s: list[float]  # wall time of each action: its observed energy, then the plan or the hold
    mpc: dict[str, Any]  # planners.MPCLog.as_dict() but act_times_s (= time_per_action_s)
    goal: dict[str, Any] = field(default_factory=dict)
    final_state: list[float] = field(default_factory=list)
    final_object_pos: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    goal_images: tuple[np.ndarray, ...] = field(default=(), repr=False)

    @property
    def median_time_per_action_s(self) -> float:
        return float(np.median(self.time_per_action_s))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (no images)."""
        return {
            "seed": self.seed, "success": self.success, "steps": self.steps, "goal": self.goal,
            "goal_names": list(self.goal_names),
            "steps_per_goal": None if self.steps_per_goal is None else list(self.steps_per_goal),
            "median_time_per_action_s": self.median_time_per_action_s, "time_per_action_s": self.time_per_action_s,
            "final_state": self.final_state, "final_object_pos": self.final_object_pos, "mpc": self.mpc,
        }


def check_planning_seed(seed: object) -> None:
    """``ValueError`` unless ``seed`` is an int ``>= HELD_OUT_SEED_START`` (lower seeds are training episodes)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int >= {HELD_OUT_SEED_START} (a held-out seed), got {seed!r}")
    if seed < HELD_OUT_SEED_START:
        raise ValueError(f"planning seeds must be held out (>= {HELD_OUT_SEED_START}), got {seed}: "
                         f"lower seeds are training episodes")


def run_episode(env: gym.Env, agent: MPCAgent, goals: GoalSource, seed: int, *, max_steps: int | None = None,
                keep_frames: bool = True, progress: bool = False) -> EpisodeResult:
    """One episode of ``env`` from ``reset(seed=seed)`` toward the goal ``goals`` gives for it.

    Args:
        env: a task from :func:`envs.make` (time-limited).
        agent: the agent; reset here with the episode's goal and reseeded with ``seed``.
        goals: where the episode's goal comes from (goal images, a sentence) and its sub-goal schedule.
        seed: a held-out seed (``>= HELD_OUT_SEED_START``).
        max_steps: steps at most; ``None``: the env's time limit.
        keep_frames: keep observations and goal images for videos.
        progress: tqdm bar over the steps.
    """
    check_planning_seed(seed)
    if max_steps is not None:
        check_positive_int(max_steps, "max_steps")
    obs, info = env.reset(seed=seed)
    episode_goal = goals.episode_goal(env, agent.model, obs, seed)
    goal = episode_goal.goal
    agent.reset(goal, obs, seed=seed)
    limit = max_steps or env.spec.max_episode_steps
    frames = [obs["image"]] if keep_frames else []
    for _ in tqdm(range(limit), desc=f"episode {seed}", disable=not progress):
        step = agent.act(obs)
        obs, _reward, terminated, truncated, info = env.step(step.action)
        if keep_frames:
            frames.append(obs["image"])
        if terminated or truncated:
            break
    log = agent.log.as_dict()
    step_times = log.pop("act_times_s")  # recorded as time_per_action_s
    success = bool(info["is_success"])  # read once, after the episode
    logger.info("seed %d: success %s after %d steps, median %.3f s per action", seed, success,
                len(step_times), float(np.median(step_times)))
    return EpisodeResult(
        seed=seed, success=success, steps=len(step_times), goal_names=goal.names,
        steps_per_goal=goal.schedule.steps_per_goal, time_per_action_s=step_times, mpc=log, goal=episode_goal.record,
        final_state=np.asarray(obs["state"], dtype=float).tolist(),
        final_object_pos=np.asarray(info["object_pos"], dtype=float).tolist(),
        frames=frames, goal_images=tuple(goal.images or ()) if keep_frames else (),
    )


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Success rate and the median / 95th percentile of the time per action over all steps."""
    if not results:
        raise ValueError("summarize needs at least one episode result")
    times = np.concatenate([r.time_per_action_s for r in results])
    return {
        "episodes": len(results),
        "success_rate": float(np.mean([r.success for r in results])),
        "median_time_per_action_s": float(np.median(times)),
        "p95_time_per_action_s": float(np.percentile(times, 95)),
    }
