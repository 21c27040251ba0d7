"""The simulator as the world model: its rollouts are the encoder's latents of the true future frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import envs
from jepa_wm.data import HELD_OUT_SEED_START
from jepa_wm.diagnostics.simulator import SimulatorModel
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import Candidates, LatentEnergy, WeightedSum
from jepa_wm.planning.episode import run_episode
from jepa_wm.planning.goals import ImageGoals
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.planning.runner import PlanSetupError, build
from jepa_wm.world_model import EncoderOnly, image_tensor
from planners import latent_energy
from tests.helpers import ROOT, tiny_planner, write_tiny_world_model

IMG = 16
SEED = HELD_OUT_SEED_START


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    return load_planning_world_model(*write_tiny_world_model(tmp_path_factory.mktemp("wm"), img_size=IMG),
                                     image_size=IMG)


def _agent(env: gym.Env, world_model) -> MPCAgent:
    """Latent MPC on the latent energy, with the simulator as the model."""
    return MPCAgent(SimulatorModel(env, world_model), tiny_planner(), WeightedSum({"energy": LatentEnergy()}))


def test_latents_are_the_encoded_true_frames_and_the_env_is_left_as_it_was(world_model):
    env = envs.make("reach", image_size=IMG)
    obs, _ = env.reset(seed=SEED)
    model = SimulatorModel(env, world_model)
    assert model.prediction == "latents"
    goal = ImageGoals().goal(model, env.unwrapped.goal_images())
    start = env.unwrapped.sim_state()
    actions = torch.rand(3, 2, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (B, H, A)
    candidates = Candidates(actions, obs, goal, 0, model)
    latents = candidates.predicted  # (B, H, N, D)
    np.testing.assert_array_equal(env.unwrapped.sim_state(), start)
    costs = LatentEnergy()(candidates)  # (3,)
    assert latents.shape[:2] == (3, 2)
    for candidate, z, cost in zip(actions, latents, costs, strict=True):
        fresh = envs.make("reach", image_size=IMG)
        fresh.reset(seed=SEED)
        for action, z_step in zip(candidate.numpy(), z, strict=True):
            image = fresh.step(action)[0]["image"]
            torch.testing.assert_close(z_step, world_model.encode(image_tensor(image)))
        expected = latent_energy(world_model.encode(image_tensor(image))[None], goal.latents[-1])[0]
        torch.testing.assert_close(cost, expected)  # the energy of the last true frame
        fresh.close()
    assert costs.unique().numel() == 3  # different candidates, different frames
    env.close()


def test_oracle_episode_replays_exactly(world_model):
    env = envs.make("reach", image_size=IMG, max_episode_steps=3)
    result = run_episode(env, _agent(env, world_model), ImageGoals(), seed=SEED)
    assert result.steps == 3
    replay = envs.make("reach", image_size=IMG)
    replay.reset(seed=SEED)
    for action, frame in zip(result.mpc["actions"], result.frames[1:], strict=True):
        np.testing.assert_array_equal(replay.step(np.asarray(action, dtype=np.float32))[0]["image"], frame)


def test_the_encoder_alone_plans_with_the_simulator_as_the_whole_world_model_does(world_model, tmp_path):
    """The simulator as the model uses only the encoder: with ``predictor_path=None`` (``world_model.predictor=null``)
    an encoder is judged as a planning energy before any predictor is trained on it."""
    encoder_path, predictor_path = write_tiny_world_model(tmp_path, img_size=IMG)  # the fixture's encoder (same seed)
    encoder_only = load_planning_world_model(encoder_path, None, image_size=IMG)
    assert isinstance(encoder_only, EncoderOnly)
    runs = []
    for model in (world_model, encoder_only):
        env = envs.make("reach", image_size=IMG, max_episode_steps=3)
        runs.append(run_episode(env, _agent(env, model), ImageGoals(), seed=SEED, keep_frames=False))
    np.testing.assert_array_equal(runs[0].mpc["actions"], runs[1].mpc["actions"])
    with pytest.raises(RuntimeError, match="only an encoder"):
        encoder_only.rollout(torch.zeros(1, 4), torch.zeros(1, 7), torch.zeros(1, 1, 7))
    with pytest.raises(ValueError, match="task.image_size=16"):
        load_planning_world_model(encoder_path, None, image_size=32)

    # in the plan config: world_model=oracle_tiny_2cam (no predictor) builds it; a latent pair without one is refused
    def resolve(*overrides: str) -> dict:
        base = ["task=reach", f"task.image_size={IMG}", f"world_model.encoder={encoder_path}",
                "world_model.camera=null", "world_model.precision=float32"]
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name="plan", overrides=[*base, *overrides]), resolve=True)

    cpu = torch.device("cpu")
    setup = build(resolve("world_model=oracle_tiny_2cam"), cpu)
    setup.env.close()
    assert isinstance(setup.agent.model, SimulatorModel) and isinstance(setup.agent.model.world_model, EncoderOnly)
    assert setup.agent.model.env is setup.env.unwrapped  # the episodes' env
    setup = build(resolve("world_model=oracle_tiny_2cam", f"world_model.predictor={predictor_path}"), cpu)
    setup.env.close()  # with a predictor (its pooling read from it), still the simulator as the model
    assert isinstance(setup.agent.model, SimulatorModel)
    with pytest.raises(PlanSetupError, match="world_model.predictor=null: a latent world model needs a predictor"):
        build(resolve("world_model=tiny", "world_model.predictor=null"), cpu)


def test_env_without_simulator_state_is_refused(world_model):
    with pytest.raises(ValueError, match=r"needs an env with sim_state\(\), CartPoleEnv has none"):
        SimulatorModel(gym.make("CartPole-v1"), world_model)
