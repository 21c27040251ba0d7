"""What matching the goal images' hand poses can achieve: a privileged bound for goal-image planning.

The planners of ``plan.py`` drive the hand toward the poses the goal images show (the latent
energy, and the hand-pull cost term with the hand reader). :func:`follow_goal_poses` does that
perfectly: it servoes the grip site in straight lines through the TRUE grip-site positions of the
goal images (``GoalImages.states``, recorded when the expert's run took them), each for the
steps the planner's sub-goal schedule gives it (the expert's steps times ``hint_scale``), with
optional Gaussian error on each pose (a hand reader's). Replayed with
:func:`jepa_wm.evaluation.replay.replay_episode`, its episodes say how many a planner that takes
every goal pose exactly would solve: if that is low, no better predictor or reader of the hand
fixes the task, and the plan must react to where the object is. Privileged (it reads the expert's
true poses): a diagnostic (``experiments/privileged_bounds.py``), never a policy.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.interface import ACTION_DIM, POS_SCALE
from jepa_wm.planning.goals import hint_steps


def follow_goal_poses(env: gym.Env, seed: int, *, every: int | None = None, hint_scale: float = 3.0,
                      pose_noise_m: float = 0.0, gripper: float = 1.0, max_steps: int | None = None) -> np.ndarray:
    """Run one episode that servoes the grip site through the goal images' true poses.

    Args:
        env: a task env with ``goal_images`` (``env.unwrapped``); reset here with ``seed``.
        seed: the episode's env seed; also seeds the pose noise.
        every: extra goal images every this many expert steps (``env.unwrapped.goal_images(every)``).
        hint_scale: steps on each sub-goal = the expert's steps to it times this (plan.py's
            ``goal.hint_scale``); the final goal's pose is held to the end.
        pose_noise_m: standard deviation (m, per axis) of the error added to each goal pose.
        gripper: the gripper command held throughout (push: closed, +1).
        max_steps: steps to run; ``None``: the env's time limit.

    Returns:
        The executed actions, float32 ``(T, 7)``: delta xyz toward the current pose, at most one
        action unit (5 cm) per axis, rotation still.

    Raises:
        ValueError: a negative ``pose_noise_m``, a non-positive ``hint_scale``, or no step limit.
    """
    if pose_noise_m < 0:
        raise ValueError(f"pose_noise_m must be >= 0 (metres), got {pose_noise_m}")
    if not hint_scale > 0:
        raise ValueError(f"hint_scale must be positive, got {hint_scale}")
    limit = max_steps or (env.spec.max_episode_steps if env.spec else None)
    if not limit:
        raise ValueError("follow_goal_poses needs max_steps or an env with a time limit")
    obs, _info = env.reset(seed=seed)
    goals = env.unwrapped.goal_images(every=every)
    rng = np.random.default_rng(seed)
    poses = goals.states[:, :3].astype(float) + rng.normal(0.0, pose_noise_m, (len(goals.names), 3))  # (G, 3)
    ends = np.cumsum(hint_steps(goals.steps, hint_scale))  # step at which each sub-goal is left
    actions = []
    for step in range(limit):
        pose = poses[min(int(np.searchsorted(ends, step, side="right")), len(poses) - 1)]
        move = (pose - obs["state"][:3]) / POS_SCALE  # action units
        move /= max(1.0, float(np.abs(move).max()))  # a straight line, at most 1 per axis
        action = np.zeros(ACTION_DIM, dtype=np.float32)
        action[:3], action[6] = move, gripper
        actions.append(action)
        obs, _reward, terminated, truncated, _info = env.step(action)
        if terminated or truncated:
            break
    return np.stack(actions)
