"""Predicted vs true energies along a planned episode (jepa_wm/diagnostics/oracle_agreement.py,
experiments/oracle_agreement.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import envs
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.diagnostics.oracle_agreement import candidate_actions, episode_agreement, summarize_agreement
from jepa_wm.diagnostics.simulator import SimulatorModel
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import EnergySettings, LatentEnergy, WeightedSum
from jepa_wm.planning.episode import run_episode
from jepa_wm.planning.goals import ImageGoals
from jepa_wm.planning.latent_model import LatentModel
from jepa_wm.planning.loading import load_planning_world_model
from tests.helpers import run_script, tiny_planner, write_tiny_world_model

IMG = 16
SEED = HELD_OUT_SEED_START


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_tiny_world_model(tmp_path_factory.mktemp("wm"), img_size=IMG)


@pytest.fixture(scope="module")
def planned(checkpoints):
    """A 4-step pick_place episode planned with the micro world model, as results.json records it."""
    world_model = load_planning_world_model(*checkpoints, image_size=IMG)
    env = envs.make("pick_place", image_size=IMG)
    agent = MPCAgent(LatentModel(world_model), tiny_planner(), WeightedSum({"energy": LatentEnergy()}))
    result = run_episode(env, agent, ImageGoals(steps_per_goal=(2, 1, 1, 1, 1)), seed=SEED, max_steps=4,
                         keep_frames=False)
    env.close()
    return world_model, result.as_dict()


def test_candidates_perturb_only_the_move_of_the_executed_action():
    action = np.array([0.2, -0.3, 0.95, 0.1, 0.0, 0.0, 1.0])
    batch = candidate_actions(action, 8, 0.5, torch.Generator().manual_seed(0))  # (8, 1, 7)
    assert batch.shape == (8, 1, 7)
    torch.testing.assert_close(batch[0, 0], torch.tensor(action, dtype=torch.float32))
    torch.testing.assert_close(batch[:, 0, 3:], batch[:1, 0, 3:].expand(8, 4))  # rotation, gripper as executed
    assert (batch[1:, 0, :3] != batch[0, 0, :3]).all() and batch.abs().max() <= 1.0
    with pytest.raises(ValueError, match="candidates must be >= 2"):
        candidate_actions(action, 1, 0.5, torch.Generator())
    with pytest.raises(ValueError, match="noise must be positive"):
        candidate_actions(action, 4, 0.0, torch.Generator())
    with pytest.raises(ValueError, match="7-D action"):
        candidate_actions(action[:4], 4, 0.5, torch.Generator())


def test_true_gripper_preference_is_the_simulators_and_the_replay_follows_the_episode(planned):
    world_model, episode = planned
    env = envs.make("pick_place", image_size=IMG)
    energy = EnergySettings("l1", [1, 3])  # the energy the episode planned with
    steps = episode_agreement(env, world_model, episode, energy=energy, candidates=6, noise=0.3)
    assert [s.step for s in steps] == [0, 1, 2, 3]
    assert [s.goal for s in steps] == ["at_cube", "at_cube", "closed", "grasped"]
    assert all(np.isnan(s.rank_correlation) or -1 <= s.rank_correlation <= 1 for s in steps)
    # step 0 by hand: the true energies of the executed action and of it with the gripper flipped
    fresh = envs.make("pick_place", image_size=IMG)
    obs, _ = fresh.reset(seed=SEED)
    goal = LatentModel(world_model).encode_goal(fresh.unwrapped.goal_images().images)[0]
    executed = torch.tensor(episode["mpc"]["actions"][0], dtype=torch.float32)
    flipped = executed.clone()
    flipped[6] = -flipped[6]
    down, up = executed.clone(), executed.clone()  # and of it moved 2.5 cm down / up
    down[2], up[2] = (down[2] - 0.5).clamp(-1, 1), (up[2] + 0.5).clamp(-1, 1)
    probes = torch.stack([executed, flipped, down, up])[:, None]  # (4, 1, 7)
    with torch.no_grad():
        energies = energy(SimulatorModel(fresh, world_model).rollout(obs, probes)[:, -1], goal)  # (4,)
    assert steps[0].gripper_gap_true == pytest.approx(float(energies[1] - energies[0]), abs=1e-6)
    assert steps[0].gripper_agrees == (np.sign(steps[0].gripper_gap_predicted) == np.sign(steps[0].gripper_gap_true))
    assert steps[0].height_gap_true == pytest.approx(float(energies[3] - energies[2]), abs=1e-6)
    assert steps[0].height_agrees == (np.sign(steps[0].height_gap_predicted) == np.sign(steps[0].height_gap_true))
    with pytest.raises(ValueError, match="height must be positive"):
        episode_agreement(env, world_model, episode, energy=energy, height=0.0)
    summary = summarize_agreement(steps)
    assert list(summary) == ["at_cube", "closed", "grasped"] and summary["at_cube"]["steps"] == 2
    assert summary["closed"]["gripper_agreement"] == float(steps[2].gripper_agrees)
    assert summary["closed"]["height_agreement"] == float(steps[2].height_agrees)
    with pytest.raises(ValueError, match="do not fit"):
        episode_agreement(env, world_model, {**episode, "goal_names": ["final"]})
    with pytest.raises(ValueError, match="at least one step"):
        summarize_agreement([])


def test_script_writes_the_summary_per_goal(checkpoints, planned, tmp_path, monkeypatch):
    _, episode = planned
    encoder, predictor = checkpoints
    config = {"task": {"name": "pick_place", "image_size": IMG, "camera": None, "max_episode_steps": None},
              "world_model": {"encoder": str(encoder), "predictor": str(predictor), "precision": "float32",
                              "check_fingerprint": True},
              "energy": {"distance": "l1", "smoothing": [1, 3]}}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"config": config, "episodes": [episode]}))
    run_script("oracle_agreement.py", f"results={results}", "candidates=4", "progress=false", monkeypatch=monkeypatch)
    written = json.loads((tmp_path / "agreement.json").read_text())
    assert list(written["summary"]) == ["at_cube", "closed", "grasped"] and len(written["steps"]) == 4
    assert written["predictor"] == str(predictor) and written["height"] == 0.5
    # older results recorded the energy's settings in their objective
    older = {**{k: v for k, v in config.items() if k != "energy"},
             "objective": {"distance": "l1", "smoothing": [1, 3], "action_weight": 0.0}}
    results.write_text(json.dumps({"config": older, "episodes": [episode]}))
    run_script("oracle_agreement.py", f"results={results}", "candidates=4", "progress=false",
               f"out={tmp_path / 'older.json'}", monkeypatch=monkeypatch)
    assert json.loads((tmp_path / "older.json").read_text())["steps"] == written["steps"]
    # another predictor to judge on the same episodes: predictor_checkpoint (the key `predictor` would be
    # taken for the configs/predictor group on the command line)
    with pytest.raises(SystemExit, match="none.pt"):
        run_script("oracle_agreement.py", f"results={results}", f"predictor_checkpoint={tmp_path / 'none.pt'}",
                   monkeypatch=monkeypatch)
    with pytest.raises(SystemExit, match="not found"):
        run_script("oracle_agreement.py", f"results={tmp_path / 'none.json'}", monkeypatch=monkeypatch)
