"""Replaying recorded episodes reproduces them and measures reach / lift from the true state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import envs
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.evaluation.replay import replay_episode, replay_results, summarize_replays
from tests.helpers import ROOT

SEED = HELD_OUT_SEED_START


def _expert_episode(task: str, seed: int, steps: int) -> dict:
    """A results.json-like episode record of the clean expert."""
    env = envs.make(task)
    env.reset(seed=seed)
    expert = env.unwrapped.make_expert(noise=0.0)
    actions, info = [], {}
    for _ in range(steps):
        actions.append(expert.act().tolist())
        _obs, _r, _term, _trunc, info = env.step(np.asarray(actions[-1], dtype=np.float32))
    return {"seed": seed, "success": bool(info["is_success"]), "mpc": {"actions": actions}}


def test_an_expert_pick_and_place_reaches_lifts_and_succeeds() -> None:
    episode = _expert_episode("pick_place", SEED, 40)
    stats = replay_results(envs.make("pick_place"), {"episodes": [episode]})
    assert episode["success"] and stats[0].success and stats[0].steps == 40
    assert stats[0].closest_m < 0.02 and stats[0].max_lift_m > 0.05  # grasped and carried
    summary = summarize_replays(stats)
    assert [summary[k] for k in ("episodes", "success", "reached", "lifted")] == [1, 1, 1, 1]
    assert summary["median_closest_m"] == stats[0].closest_m


def test_distances_are_the_true_grip_site_to_object_distances() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 7)).tolist()
    stats = replay_episode(envs.make("reach"), SEED, actions)
    env = envs.make("reach")
    obs, info = env.reset(seed=SEED)
    distances = [np.linalg.norm(obs["state"][:3] - info["object_pos"][:3])]
    grips, objects = [obs["state"][:3]], [info["object_pos"][:3]]
    for action in actions:
        obs, _r, _t, _tr, info = env.step(np.asarray(action, dtype=np.float32))
        distances.append(np.linalg.norm(obs["state"][:3] - info["object_pos"][:3]))
        grips.append(obs["state"][:3])
        objects.append(info["object_pos"][:3])
    assert stats.closest_m == pytest.approx(min(distances[1:])) and stats.final_m == pytest.approx(distances[-1])
    assert stats.distances_m == pytest.approx(distances)  # at every observation, the reset's first
    np.testing.assert_allclose(stats.grip_pos_m, grips, rtol=0, atol=1e-4)  # the paths, rounded to 0.1 mm
    np.testing.assert_allclose(stats.object_pos_m, objects, rtol=0, atol=1e-4)
    assert stats.max_lift_m == 0.0  # the marker floats where it is


def test_a_replay_that_disagrees_with_the_record_is_an_error() -> None:
    episode = _expert_episode("pick_place", SEED, 40)
    with pytest.raises(ValueError, match="replay success True, recorded False"):
        replay_results(envs.make("pick_place"), {"episodes": [{**episode, "success": False}]})
    with pytest.raises(ValueError, match="non-empty 'episodes'"):
        replay_results(envs.make("pick_place"), {"episodes": []})


def test_replay_script_writes_its_summary_and_calibrates_the_thresholds(tmp_path: Path) -> None:
    episode = _expert_episode("reach", SEED + 1, 30)
    distances = replay_episode(envs.make("reach"), SEED + 1, episode["mpc"]["actions"]).distances_m
    # observed energies as plan.py logs them (one per step): here 10x the true distance, one goal
    episode["mpc"].update(observed_energies=[10 * d for d in distances[:30]], goal_indices=[0] * 30)
    episode["goal_names"] = ["final"]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"config": {"task": {"name": "reach", "image_size": 64}}, "episodes": [episode]}))
    subprocess.run([sys.executable, str(ROOT / "experiments/replay_plan.py"), f"results={results}",
                    "arrival_radius=0.02", "far_radius=0.05"], check=True, cwd=tmp_path, capture_output=True)
    written = json.loads((tmp_path / "replay.json").read_text())
    assert written["summary"]["success"] == 1 and len(written["episodes"]) == 1
    arrival = written["summary"]["arrival"]
    assert arrival["observations"] == 30 and arrival["episodes_within"] == 1
    assert arrival["threshold"] == pytest.approx(10 * min(d for d in distances[:30] if d > 0.02))
    assert written["summary"]["far"]["threshold"] == pytest.approx(10 * max(d for d in distances[:30] if d <= 0.05))


def test_replay_script_rejects_a_file_that_is_not_plan_results(tmp_path: Path) -> None:
    for name, text in (("broken.json", "{not json"), ("other.json", json.dumps({"summary": {}}))):
        (tmp_path / name).write_text(text)
        run = subprocess.run([sys.executable, str(ROOT / "experiments/replay_plan.py"), f"results={tmp_path / name}"],
                             cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode != 0 and "Traceback" not in run.stderr
        assert "is not a results.json of experiments/plan.py (expected JSON with config.task" in run.stderr


def test_an_expert_push_moves_the_cube_onto_the_pad() -> None:
    episode = _expert_episode("push", SEED, 40)
    stats = replay_results(envs.make("push"), {"episodes": [episode]})[0]
    env = envs.make("push")
    _obs, info = env.reset(seed=SEED)
    start = np.linalg.norm(info["object_pos"][:2] - info["target_pos"][:2])
    assert episode["success"] and stats.target_start_m == pytest.approx(start) and start > 0.1
    assert stats.target_closest_m < 0.04 and stats.target_final_m < 0.04 and stats.max_moved_m > 0.08
    assert stats.max_lift_m < 0.01  # pushed, not lifted
    summary = summarize_replays([stats])
    assert summary["moved"] == 1 and summary["median_target_final_m"] == stats.target_final_m
    reach = replay_episode(envs.make("reach"), SEED, [[0.0] * 7])
    assert reach.target_final_m is None and "median_target_final_m" not in summarize_replays([reach])


def test_goal_poses_measure_the_hand_against_the_expert_at_each_goal_image() -> None:
    episode = _expert_episode("push", SEED, 40)
    env = envs.make("push")
    env.reset(seed=SEED)
    goals = env.unwrapped.goal_images()
    assert goals.names == ("behind", "pushed", "final") and goals.steps[-1] < 40
    # the planner's schedule: action t toward the goal whose image the expert takes next
    indices = [min(int(np.searchsorted(goals.steps, t + 1)), 2) for t in range(40)]
    stats = replay_episode(envs.make("push"), SEED, episode["mpc"]["actions"], goal_indices=indices,
                           goal_names=goals.names)
    # the noiseless expert passes exactly where it was when each image was taken
    assert stats.goal_pose_closest_m == pytest.approx({"behind": 0.0, "pushed": 0.0, "final": 0.0}, abs=1e-6)
    still = replay_episode(envs.make("push"), SEED, [[0.0] * 7] * 3, goal_indices=[0, 0, 0])
    start = env.reset(seed=SEED)[0]["state"][:3]
    assert still.goal_pose_closest_m == pytest.approx({"behind": np.linalg.norm(start - goals.states[0][:3])}, abs=1e-3)
    summary = summarize_replays([stats, still])
    behind = still.goal_pose_closest_m["behind"]
    assert summary["goal_poses"]["behind"] == {"episodes": 2, "within_3cm": 1 + (behind < 0.03),
                                               "median_closest_m": pytest.approx(behind / 2)}
    assert summary["goal_poses"]["pushed"]["episodes"] == 1
    with pytest.raises(ValueError, match=r"recorded goals \['final'\], the env's are \['behind', 'pushed', 'final'\]"):
        replay_episode(envs.make("push"), SEED, [[0.0] * 7], goal_indices=[0], goal_names=["final"])
    with pytest.raises(ValueError, match=r"expected 1 goal indices in \[0, 3\)"):
        replay_episode(envs.make("push"), SEED, [[0.0] * 7], goal_indices=[3])
