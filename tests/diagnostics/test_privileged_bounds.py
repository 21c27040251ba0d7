"""Privileged bounds: the goal-pose follower and MPC with the simulator's true object cost."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import envs
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.diagnostics.goal_pose_follower import follow_goal_poses
from jepa_wm.diagnostics.state_oracle import ObjectStateCost, plan_with_true_state
from jepa_wm.evaluation.replay import replay_episode
from planners import ActionSpace, make_planner
from tests.helpers import run_script

IMG = 16
SEED = HELD_OUT_SEED_START
PUSH_SPACE = ActionSpace(dim=7, planned_dims=(0, 1, 2), held_value=(0, 0, 0, 1))  # as push plans: fingers closed


@pytest.fixture()
def push_env():
    env = envs.make("push", image_size=IMG)
    yield env
    env.close()


def test_following_every_true_goal_pose_replays_the_expert_and_a_1cm_error_does_not(push_env):
    exact = follow_goal_poses(push_env, SEED, every=1, hint_scale=1.0)  # one pose per expert step, its timing
    assert exact.shape == (80, 7) and np.abs(exact).max() <= 1.0 + 1e-6
    assert (exact[:, 6] == 1.0).all() and (exact[:, 3:6] == 0.0).all()  # fingers closed, rotation still
    assert replay_episode(push_env, SEED, exact).success
    noisy = follow_goal_poses(push_env, SEED, every=1, hint_scale=1.0, pose_noise_m=0.01)
    assert not replay_episode(push_env, SEED, noisy).success
    np.testing.assert_array_equal(noisy, follow_goal_poses(push_env, SEED, every=1, hint_scale=1.0, pose_noise_m=0.01))


def test_follower_spends_hint_scale_times_the_expert_steps_on_each_goal(push_env):
    push_env.reset(seed=SEED)
    goals = push_env.unwrapped.goal_images()
    actions = follow_goal_poses(push_env, SEED, hint_scale=2.0, max_steps=2 * goals.steps[0] + 1)
    push_env.reset(seed=SEED)
    for action in actions[:-1]:
        obs = push_env.step(action)[0]
    assert np.linalg.norm(obs["state"][:3] - goals.states[0, :3]) < 0.01  # at the first pose when leaving it
    assert np.abs(actions[-1, :3]).max() > 0.1  # then on toward the next


@pytest.mark.parametrize("kwargs, match", [({"pose_noise_m": -0.01}, "pose_noise_m"),
                                           ({"hint_scale": 0.0}, "hint_scale")])
def test_follower_refuses_bad_settings(push_env, kwargs, match):
    with pytest.raises(ValueError, match=match):
        follow_goal_poses(push_env, SEED, **kwargs)


def test_state_cost_is_the_true_distances_after_each_candidate_and_leaves_the_env_as_it_was(push_env):
    push_env.reset(seed=SEED)
    costs = ObjectStateCost(push_env, contact_weight=0.1, height_weight=0.3)
    start = push_env.unwrapped.sim_state()
    actions = torch.rand(3, 2, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (B, H, A)
    values = costs.make_cost({}, None)(actions)
    np.testing.assert_array_equal(push_env.unwrapped.sim_state(), start)
    for candidate, value in zip(actions, values, strict=True):
        fresh = envs.make("push", image_size=IMG)
        fresh.reset(seed=SEED)
        for action in candidate.numpy():
            fresh.step(action.astype(np.float64))
        sim = fresh.unwrapped.sim
        cube, pad, hand = sim.cube_pos("red"), sim.pad_pos("blue"), sim.ee_pos
        expected = (np.linalg.norm(cube[:2] - pad[:2]) + 0.1 * np.linalg.norm(hand[:2] - cube[:2])
                    + 0.3 * abs(hand[2] - cube[2]))
        assert float(value) == pytest.approx(expected, rel=1e-6)
        fresh.close()


def test_mpc_with_the_true_state_drives_the_cost_down(push_env):
    planner = make_planner("cem", PUSH_SPACE, num_samples=32, iterations=2, topk=4, horizon=1, seed=0)
    actions = plan_with_true_state(push_env, planner, SEED, max_steps=8)
    assert actions.shape == (8, 7) and (actions[:, 6] == 1.0).all()
    push_env.reset(seed=SEED)
    costs = ObjectStateCost(push_env)
    before = costs.state_cost()
    for action in actions:
        push_env.step(action)
    assert costs.state_cost() < before - 0.01  # the hand went toward the cube
    np.testing.assert_array_equal(actions, plan_with_true_state(push_env, planner, SEED, max_steps=8))


def test_state_cost_needs_a_task_with_an_object_and_a_pad():
    env = envs.make("reach", image_size=IMG)
    with pytest.raises(ValueError, match="cube and a target pad"):
        ObjectStateCost(env)
    env.close()


def test_script_writes_the_replayed_episodes_and_refuses_an_unknown_policy(tmp_path, monkeypatch):
    run_script("privileged_bounds.py", "policy=follow", "episodes=2", "follow.every=1", "follow.hint_scale=1",
               "task.image_size=16", "progress=false", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch)
    written = json.loads((tmp_path / "bounds.json").read_text())
    assert written["config"]["policy"] == "follow" and written["summary"]["episodes"] == 2
    assert [e["seed"] for e in written["episodes"]] == [SEED, SEED + 1]
    assert written["summary"]["success"] == sum(e["success"] for e in written["episodes"])
    with pytest.raises(SystemExit, match="unknown policy 'bogus'; choose one of follow, state_mpc"):
        run_script("privileged_bounds.py", "policy=bogus", f"hydra.run.dir={tmp_path}", monkeypatch=monkeypatch)
