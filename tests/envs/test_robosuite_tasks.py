"""robosuite-backed tasks keep the env contract (envs/interface.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy.spatial.transform import Rotation

import envs
from envs.interface import POS_SCALE, ROT_SCALE, Expert, ManipulationEnv

pytestmark = pytest.mark.robosuite

TASKS = ("robosuite_lift", "robosuite_stack", "robosuite_pick_place_can")
EXPERT_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def made():
    """One env per task, made on first use and shared by the tests of this module.

    Anti-aliasing is off to keep the module fast; ``test_make_arguments`` renders with it.
    """
    cache: dict[str, object] = {}

    def get(task: str):
        if task not in cache:
            cache[task] = envs.make(task, antialias=False)
        return cache[task]

    yield get
    for env in cache.values():
        env.close()


def rollout(env, seed: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(T+1, H, W, 3)``, states ``(T+1, 7)`` and sim states ``(T+1, S)`` of a seeded rollout."""
    obs, _ = env.reset(seed=seed)
    images, states, sims = [obs["image"]], [obs["state"]], [env.unwrapped.sim_state()]
    for action in actions:
        obs, *_ = env.step(action)
        images.append(obs["image"])
        states.append(obs["state"])
        sims.append(env.unwrapped.sim_state())
    return np.stack(images), np.stack(states), np.stack(sims)


def test_registration_does_not_import_robosuite():
    code = "import sys, envs; assert 'robosuite_lift' in envs.registered_tasks(); print('robosuite' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert envs.registered_tasks(backend="robosuite") == sorted(TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_check_env(task, made):
    check_env(made(task).unwrapped)


@pytest.mark.parametrize("task", TASKS)
def test_step_observation_and_contract(task, made):
    env = made(task)
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, ManipulationEnv)
    assert unwrapped.task_name == task and unwrapped.instruction and unwrapped.camera == "agentview"
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert set(obs) == {"image", "state"}
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert isinstance(info["is_success"], bool) and not terminated and not truncated
    num_objects = 2 if task == "robosuite_stack" else 1  # the moved object first, then the target cube
    assert info["object_pos"].shape == (3 * num_objects,) and info["object_pos"].dtype == np.float32
    np.testing.assert_allclose(info["object_pos"][:3], unwrapped.object_pose()[0], atol=1e-6)
    if unwrapped.place_target() is None:  # lifting: no place to put the object
        assert "target_pos" not in info
    else:
        np.testing.assert_allclose(info["target_pos"], unwrapped.place_target(), atol=1e-6)
    assert np.array_equal(env.render(), obs["image"])
    sim_state = unwrapped.sim_state()
    assert sim_state.dtype == np.float64 and sim_state.ndim == 1
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6, dtype=np.float32))


@pytest.mark.parametrize("task", TASKS)
def test_state_matches_robosuite_observations(task, made):
    """State = robot0_eef_pos, Euler xyz of robot0_eef_quat (x, y, z, w), finger distance."""
    env = made(task)
    obs, _ = env.reset(seed=1)
    raw = env.unwrapped._sim_env._get_observations(force_update=True)
    np.testing.assert_allclose(obs["state"][:3], raw["robot0_eef_pos"], atol=1e-6)
    rotation = Rotation.from_quat(raw["robot0_eef_quat"])  # scipy is scalar-last too
    from_state = Rotation.from_euler("xyz", obs["state"][3:6])
    np.testing.assert_allclose(from_state.as_matrix(), rotation.as_matrix(), atol=1e-5)
    fingers = raw["robot0_gripper_qpos"]
    assert obs["state"][6] == pytest.approx(fingers[0] - fingers[1], abs=1e-6)
    assert 0.0 < obs["state"][6] < 0.09  # metres between the Panda's fingers


def test_image_is_upright(made):
    env = made("robosuite_lift")
    obs, _ = env.reset(seed=0)
    sim = env.unwrapped._sim_env.sim
    raw = sim.render(width=64, height=64, camera_name="agentview")  # robosuite's own, bottom-up
    assert np.array_equal(obs["image"], raw[::-1]) and not np.array_equal(obs["image"], raw)
    # agentview looks over the white table top at the robot: the table fills the bottom rows.
    brightness = obs["image"].mean(axis=(1, 2))
    assert brightness[-16:].mean() > 200 > brightness[:16].mean()


def test_action_is_euler_delta_in_world_frame(made):
    """Position goal moves by POS_SCALE per unit; the orientation goal is R_euler @ R_now, unclipped."""
    env = made("robosuite_stack")
    env.reset(seed=2)
    unwrapped = env.unwrapped
    robot = unwrapped._sim_env.robots[0]
    controller = robot.part_controllers["right"]
    sim = unwrapped._sim_env.sim
    site = sim.data.site_xpos[unwrapped._eef_site].copy()
    site_rotation = sim.data.site_xmat[unwrapped._eef_site].reshape(3, 3).copy()
    # Euler angles whose rotation vector has a component above 1 unit: robosuite would clip it.
    action = np.array([0.6, -0.4, 0.2, 1.0, 1.0, -1.0, -1.0], dtype=np.float32)
    rotation = Rotation.from_euler("xyz", action[3:6] * ROT_SCALE)
    assert np.abs(rotation.as_rotvec()).max() > ROT_SCALE
    env.step(action)
    base = robot.base_ori.T  # world -> controller frame (identity for the Panda here)
    expected_pos = base @ (site - robot.base_pos) + base @ (POS_SCALE * action[:3])
    np.testing.assert_allclose(controller.goal_pos, expected_pos, atol=1e-9)
    expected_rot = base @ rotation.as_matrix() @ site_rotation
    np.testing.assert_allclose(controller.goal_ori, expected_rot, atol=1e-6)  # robosuite goes via float32 quats


@pytest.mark.parametrize("task", TASKS)
def test_seeded_rollouts_are_identical(task, made):
    env = made(task)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(6, 7)).astype(np.float32)
    first = rollout(env, 5, actions)
    other = envs.make(task, antialias=False)
    try:
        second = rollout(other, 5, actions)
    finally:
        other.close()
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    different_seed, _ = env.reset(seed=6)
    assert not np.array_equal(env.unwrapped.sim_state(), first[2][0])
    assert not np.array_equal(different_seed["image"], first[0][0])


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds(task, made):
    env = made(task)
    limit = env.spec.max_episode_steps
    for seed in EXPERT_SEEDS:
        env.reset(seed=seed)
        expert = env.unwrapped.make_expert(noise=0.0, seed=seed)
        assert isinstance(expert, Expert)
        phases = []
        for _ in range(limit):
            action = expert.act()
            assert action.shape == (7,) and action.dtype == np.float32 and np.abs(action).max() <= 1
            if not phases or phases[-1] != expert.phase:
                phases.append(expert.phase)
            _, _, _, _, info = env.step(action)
            if expert.phase == "done":
                break
        assert phases[-1] == "done", f"{task} seed {seed}: expert stuck in {phases}"
        assert info["is_success"], f"{task} seed {seed}: expert finished without success ({phases})"
        assert phases[:4] == ["approach", "descend", "grasp", "lift"]


@pytest.mark.parametrize("task", TASKS)
def test_goal_images_leave_env_untouched(task, made):
    env = made(task)
    unwrapped = env.unwrapped
    action = np.full(7, 0.3, dtype=np.float32)
    env.reset(seed=3)
    expected, *_ = env.step(action)

    obs, _ = env.reset(seed=3)
    sim_state, rng_state = unwrapped.sim_state(), env.np_random.bit_generator.state
    goals = unwrapped.goal_images()
    assert unwrapped.goal_images() is goals  # cached for the episode
    expected_names = ("final",) if task == "robosuite_lift" else ("grasped", "above_target", "final")
    assert goals.names == expected_names
    assert all(image.shape == (64, 64, 3) and image.dtype == np.uint8 for image in goals.images)
    assert goals.states.shape == (len(expected_names), 7)
    assert list(goals.steps) == sorted(goals.steps) and goals.steps[0] > 0
    assert not np.array_equal(goals.final, obs["image"])
    assert unwrapped._goal_env._is_success()  # the final image shows the task done
    # this env's state, generator and controller are as before: the next step is the same
    assert np.array_equal(unwrapped.sim_state(), sim_state)
    assert env.np_random.bit_generator.state == rng_state
    after, *_ = env.step(action)
    assert np.array_equal(after["image"], expected["image"]) and np.array_equal(after["state"], expected["state"])


def test_make_arguments():
    env = envs.make("robosuite_lift", image_size=32, camera="frontview")
    try:
        obs, _ = env.reset(seed=0)
        assert obs["image"].shape == (32, 32, 3)
        assert env.unwrapped.camera == "frontview" and env.unwrapped.image_size == 32
    finally:
        env.close()
        env.close()  # closing twice is allowed
    with pytest.raises(ValueError, match="camera"):
        envs.make("robosuite_lift", camera="no_such_camera")
    with pytest.raises(ValueError, match="image_size"):
        envs.make("robosuite_lift", image_size=0)
    with pytest.raises(ValueError, match="set by"):
        envs.make("robosuite_lift", hard_reset=True)
