"""The simulator oracle scores candidates with the encoder's energy of the true next frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.planning import EpisodeConfig, image_tensor, load_planning_world_model, run_episode
from jepa_wm.simulator_costs import SimulatorCosts
from jepa_wm.world_model import EncoderOnly
from planners import latent_energy
from tests.helpers import tiny_planner, write_tiny_world_model

IMG = 16
SEED = HELD_OUT_SEED_START


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    return load_planning_world_model(*write_tiny_world_model(tmp_path_factory.mktemp("wm"), img_size=IMG),
                                     image_size=IMG)


def test_cost_is_the_energy_of_the_true_next_frame_and_leaves_the_env_as_it_was(world_model):
    env = envs.make("reach", image_size=IMG)
    obs, _ = env.reset(seed=SEED)
    goal = world_model.encode(image_tensor(env.unwrapped.goal_images().images[-1]))  # (N, D)
    start = env.unwrapped.sim_state()
    actions = torch.rand(3, 2, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (B, H, A)
    costs = SimulatorCosts(env, world_model).make_cost(obs, goal)(actions)  # (3,)
    np.testing.assert_array_equal(env.unwrapped.sim_state(), start)
    for candidate, cost in zip(actions, costs, strict=True):
        fresh = envs.make("reach", image_size=IMG)
        fresh.reset(seed=SEED)
        for action in candidate.numpy():
            image = fresh.step(action)[0]["image"]
        expected = latent_energy(world_model.encode(image_tensor(image))[None], goal)[0]
        torch.testing.assert_close(cost, expected)
    assert costs.unique().numel() == 3  # different candidates, different frames


def test_oracle_episode_replays_exactly(world_model):
    env = envs.make("reach", image_size=IMG, max_episode_steps=3)
    result = run_episode(env, world_model, tiny_planner(), EpisodeConfig(oracle=True), seed=SEED)
    replay = envs.make("reach", image_size=IMG)
    replay.reset(seed=SEED)
    for action, frame in zip(result.mpc["actions"], result.frames[1:], strict=True):
        np.testing.assert_array_equal(replay.step(np.asarray(action, dtype=np.float32))[0]["image"], frame)


def test_the_encoder_alone_plans_with_the_oracle_as_the_whole_world_model_does(world_model, tmp_path):
    """The oracle uses only the encoder: with ``predictor_path=None`` (``world_model.predictor=null``)
    an encoder is judged as a planning energy before any predictor is trained on it."""
    encoder_path, _ = write_tiny_world_model(tmp_path, img_size=IMG)  # the fixture's encoder (same seed)
    encoder_only = load_planning_world_model(encoder_path, None, image_size=IMG)
    assert isinstance(encoder_only, EncoderOnly)
    runs = [run_episode(envs.make("reach", image_size=IMG, max_episode_steps=3), model, tiny_planner(),
                        EpisodeConfig(oracle=True), seed=SEED, keep_frames=False)
            for model in (world_model, encoder_only)]
    np.testing.assert_array_equal(runs[0].mpc["actions"], runs[1].mpc["actions"])
    with pytest.raises(RuntimeError, match="oracle=true"):
        encoder_only.rollout(torch.zeros(1, 4), torch.zeros(1, 7), torch.zeros(1, 1, 7))
    with pytest.raises(ValueError, match="task.image_size=16"):
        load_planning_world_model(encoder_path, None, image_size=32)


def test_env_without_simulator_state_is_refused(world_model):
    import gymnasium as gym

    with pytest.raises(TypeError, match="sim_state"):
        SimulatorCosts(gym.make("CartPole-v1"), world_model)
