"""The MuJoCo tabletop tasks keep the env contract (envs/interface.py), for every registered one."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy.spatial.transform import Rotation

import envs
from envs.interface import POS_SCALE, ROT_SCALE
from envs.tasks.reach import MIN_START_DIST, ReachEnv

TASKS = envs.registered_tasks(backend="mujoco")


def rollout(env: gymnasium.Env, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images and states of a reset with ``seed`` followed by ``actions`` ``(T, 7)``."""
    obs, _ = env.reset(seed=seed)
    images, states = [obs["image"]], [obs["state"]]
    for action in actions:
        obs, *_ = env.step(action)
        images.append(obs["image"])
        states.append(obs["state"])
    return images, states


@pytest.fixture(scope="module", params=TASKS)
def env(request: pytest.FixtureRequest) -> gymnasium.Env:
    env = envs.make(request.param)
    yield env
    env.close()


def test_own_tasks_are_registered() -> None:
    assert {"reach", "push", "pick_place", "pick_place_multi"} <= set(TASKS)


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_check_env_passes_without_warnings(name: str, render_mode: str | None) -> None:
    env = gymnasium.make(envs.task_spec(name).gym_id, render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_rollout_different_seed_differs(name: str) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, size=(12, 7)).astype(np.float32)
    env_a, env_b = envs.make(name), envs.make(name)
    images_a, states_a = rollout(env_a, 7, actions)
    images_b, states_b = rollout(env_b, 7, actions)
    for image_a, image_b, state_a, state_b in zip(images_a, images_b, states_a, states_b):
        assert np.array_equal(image_a, image_b) and np.array_equal(state_a, state_b)
    assert np.array_equal(env_a.unwrapped.sim_state(), env_b.unwrapped.sim_state())
    images_c, states_c = rollout(env_b, 8, actions)
    assert not np.array_equal(images_a[0], images_c[0])
    assert not np.array_equal(states_a[0], states_c[0])
    env_a.close()
    env_b.close()


@pytest.mark.parametrize("name", TASKS)
def test_envs_make_equals_gymnasium_make(name: str) -> None:
    ours, theirs = envs.make(name), gymnasium.make(envs.task_spec(name).gym_id)
    assert type(ours.unwrapped) is type(theirs.unwrapped)
    assert ours.spec.max_episode_steps == theirs.spec.max_episode_steps == type(ours.unwrapped).max_episode_steps
    obs_a, _ = ours.reset(seed=3)
    obs_b, _ = theirs.reset(seed=3)
    assert np.array_equal(obs_a["image"], obs_b["image"]) and np.array_equal(obs_a["state"], obs_b["state"])
    ours.close()
    theirs.close()


def test_unknown_task_lists_known_names() -> None:
    with pytest.raises(ValueError, match="reach.*"):
        envs.make("no_such_task")


def test_bad_constructor_arguments_raise() -> None:
    with pytest.raises(ValueError, match="camera"):
        envs.make("reach", camera="ceiling")
    with pytest.raises(ValueError, match="image_size"):
        envs.make("reach", image_size=8)
    with pytest.raises(ValueError, match="render_mode"):
        ReachEnv(render_mode="human")


def test_observation_contract(env: gymnasium.Env) -> None:
    obs, info = env.reset(seed=0)
    assert info["is_success"] is False
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert "is_success" not in obs
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, envs.ManipulationEnv)
    assert unwrapped.instruction and unwrapped.task_name == env.spec.name
    sim = unwrapped.sim
    site = sim.data.site_xmat[sim.ids.grip_site].reshape(3, 3)
    np.testing.assert_allclose(obs["state"][:3], sim.data.site_xpos[sim.ids.grip_site], atol=1e-6)
    np.testing.assert_allclose(obs["state"][3:6], Rotation.from_matrix(site).as_euler("xyz"), atol=1e-5)
    assert obs["state"][6] == pytest.approx(0.09, abs=2e-3)  # reset opens the gripper fully
    objects = info["object_pos"]  # privileged: the manipulated object (or reach's marker) first
    assert objects.dtype == np.float32 and objects.shape == (3 * (len(unwrapped.cubes) + len(unwrapped.markers)),)
    if unwrapped.cubes:
        first = sim.cube_pos(getattr(unwrapped, "object", unwrapped.cubes[0]))
    else:
        first = sim.marker_pos(unwrapped.markers[0])
    np.testing.assert_allclose(objects[:3], first, atol=1e-6)
    if unwrapped.pads:  # where the object goes: the episode's target pad
        target = sim.pad_pos(getattr(unwrapped, "target", unwrapped.pads[0]))
        assert info["target_pos"].dtype == np.float32
        np.testing.assert_allclose(info["target_pos"], target, atol=1e-6)
    else:
        assert "target_pos" not in info


def test_action_is_the_delta_between_states(env: gymnasium.Env) -> None:
    """V-JEPA 2-AC convention: away from the workspace limits, action * scale ~ next state - state."""
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(1)
    pos_errors, rot_errors = [], []
    for _ in range(15):
        action = rng.uniform(-0.4, 0.4, size=7).astype(np.float32)
        action[:3] -= 2 * (obs["state"][:3] - np.array([0.0, 0.0, 0.15])) / POS_SCALE * 0.2  # stay central
        action = np.clip(action, -1, 1)
        next_obs, *_ = env.step(action)
        delta = next_obs["state"] - obs["state"]
        pos_errors.append(np.abs(delta[:3] - action[:3] * POS_SCALE).max())
        rot_errors.append(np.abs(delta[3:6] - action[3:6] * ROT_SCALE).max())
        obs = next_obs
    assert np.mean(pos_errors) < 2e-3 and np.mean(rot_errors) < 0.02


def test_gripper_command_is_absolute(env: gymnasium.Env) -> None:
    env.reset(seed=2)
    close = np.zeros(7, np.float32)
    close[6] = 1.0
    for _ in range(3):
        obs, *_ = env.step(close)
    assert obs["state"][6] < 0.005
    for _ in range(3):
        obs, *_ = env.step(-close)
    assert obs["state"][6] == pytest.approx(0.09, abs=2e-3)


def test_invalid_action_raises(env: gymnasium.Env) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(7, np.nan, np.float32))


def test_render_returns_the_observed_image() -> None:
    env = envs.make("push", render_mode="rgb_array", image_size=48)
    obs, _ = env.reset(seed=4)
    assert np.array_equal(env.render(), obs["image"]) and obs["image"].shape == (48, 48, 3)
    env.close()
    env.close()  # closing twice is fine


@pytest.mark.parametrize("camera", ["front", "top", "side"])
def test_images_are_upright(camera: str) -> None:
    """A cube far from the front/side camera (or at +y seen from the top) sits in the upper half."""
    env = envs.make("push", camera=camera)
    far_axis = 0 if camera == "side" else 1  # the side camera looks along -x, the others along +y
    rows = []
    for sign in (1.0, -1.0):
        env.reset(seed=0)
        sim = env.unwrapped.sim
        xy = np.zeros(2)
        xy[far_axis] = -0.14 * sign if camera == "side" else 0.14 * sign
        sim.place_cube("red", xy)
        sim.set_pad("blue", np.array([0.5, 0.5]))  # out of view
        sim.forward()
        image = env.unwrapped._render(sim).astype(int)
        red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)  # (H, W)
        assert red.sum() >= 8, f"cube hardly visible from {camera}: {red.sum()} px"
        rows.append(np.nonzero(red)[0].mean())
    assert rows[0] < 32 < rows[1]
    env.close()


def test_shadows_mark_where_things_are_on_the_table() -> None:
    """The sun casts a shadow straight down: raising a cube moves it up the front image while its
    shadow stays where the cube is on the table (the depth cue one oblique camera lacks otherwise)."""
    env = envs.make("push")
    env.reset(seed=0)
    sim = env.unwrapped.sim
    sim.set_pad("blue", np.array([0.5, 0.5]))  # out of view
    sim.place_cube("red", np.array([0.5, -0.5]))
    sim.forward()
    empty = env.unwrapped._render(sim).astype(int)
    cube_rows, shadow_rows = [], []
    for z in (0.12, 0.24):
        sim.place_cube("red", np.array([0.05, 0.05]), z=z)
        sim.forward()
        image = env.unwrapped._render(sim).astype(int)
        red = image[..., 0] > image[..., 1] + 40  # (H, W)
        shadow = ((empty - image).sum(-1) > 40) & ~red  # darker table, not the cube
        assert shadow.sum() >= 10, f"no shadow under a cube at z={z}: {shadow.sum()} px"
        cube_rows.append(np.nonzero(red)[0].mean())
        shadow_rows.append(np.nonzero(shadow)[0].mean())
    env.close()
    cube_moved = cube_rows[0] - cube_rows[1]
    assert cube_moved > 6 and abs(shadow_rows[0] - shadow_rows[1]) < cube_moved / 3


def test_sim_state_replays_bit_for_bit() -> None:
    env = envs.make("pick_place")
    env.reset(seed=5)
    actions = np.random.default_rng(5).uniform(-1, 1, size=(10, 7)).astype(np.float32)
    for action in actions[:4]:
        env.step(action)
    state = env.unwrapped.sim_state()
    assert state.dtype == np.float64 and state.ndim == 1
    later = [env.step(a)[0] for a in actions[4:]]
    env.unwrapped.set_sim_state(state)
    replay = [env.step(a)[0] for a in actions[4:]]
    for a, b in zip(later, replay):
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["state"], b["state"])
    with pytest.raises(ValueError, match="shape"):
        env.unwrapped.set_sim_state(state[:-1])
    env.close()


def test_reach_markers_start_away_from_the_hand() -> None:
    """The marker is drawn at least MIN_START_DIST from the start grip site (not from the origin)."""
    env = envs.make("reach")
    distances = []
    for seed in range(100):
        obs, info = env.reset(seed=seed)
        distances.append(np.linalg.norm(obs["state"][:3] - info["object_pos"][:3]))
    env.close()
    assert min(distances) >= MIN_START_DIST


def test_multi_instruction_names_the_chosen_pair() -> None:
    env = envs.make("pick_place_multi")
    env.reset(seed=0, options={"object": "red", "target": "blue"})
    assert env.unwrapped.instruction == "put the red cube on the blue pad"
    pairs = set()
    for seed in range(30):
        env.reset(seed=seed)
        pairs.add((env.unwrapped.object, env.unwrapped.target))
        assert env.unwrapped.instruction == f"put the {env.unwrapped.object} cube on the {env.unwrapped.target} pad"
    assert len(pairs) == 4
    with pytest.raises(ValueError, match="object"):
        env.reset(seed=0, options={"object": "purple"})
    with pytest.raises(ValueError, match="options"):
        env.reset(seed=0, options={"colour": "red"})
    env.close()


def test_success_is_the_named_cube_on_the_named_pad() -> None:
    env = envs.make("pick_place_multi")
    env.reset(seed=1, options={"object": "green", "target": "yellow"})
    sim = env.unwrapped.sim
    sim.place_cube("red", sim.pad_pos("yellow")[:2])  # the wrong cube on the pad
    sim.forward()
    assert not env.step(np.zeros(7, np.float32))[4]["is_success"]
    sim.place_cube("red", np.array([-0.2, 0.2]))
    sim.place_cube("green", sim.pad_pos("yellow")[:2] + 0.01, yaw=0.3)
    sim.forward()
    _, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
    assert info["is_success"] and reward == 1.0 and not terminated
    env.close()


def test_grasp_holds_under_random_motion() -> None:
    """Once the expert has lifted the cube, fast random motions of the hand do not shake it loose."""
    env = envs.make("pick_place")
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.0], np.float32)  # full speed, half turn rate
    for seed in range(4):
        env.reset(seed=seed)
        expert = env.unwrapped.make_expert()
        while expert.phase != "carry":
            env.step(expert.act())
        sim = env.unwrapped.sim
        start = sim.cube_pos("red") - sim.ee_pos
        for _ in range(30):
            action = rng.uniform(-1, 1, size=7).astype(np.float32) * scale
            action[2] = abs(action[2]) if sim.ee_pos[2] < 0.08 else action[2]  # the cube stays off the table
            action[6] = 1.0
            env.step(action)
        assert sim.fingers_touching("red") == 2
        assert np.linalg.norm(sim.cube_pos("red") - sim.ee_pos - start) < 0.01
    env.close()


def test_make_from_config_keeps_defaults_for_nulls_and_applies_overrides() -> None:
    task = {"name": "reach", "image_size": 64, "camera": None, "max_episode_steps": None}
    env = envs.make_from_config(task, image_size=32)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (32, 32, 3)
    assert env.spec.max_episode_steps == envs.task_spec("reach").max_episode_steps
    env.close()
    with pytest.raises(ValueError, match="needs a 'name'"):
        envs.make_from_config({"image_size": 64})


def test_several_cameras_stack_their_views_top_to_bottom() -> None:
    """``camera="front+side"``: each view as its own camera renders it, front on top; the env
    still passes gymnasium's checker and repeats per seed."""
    both = envs.make("push", image_size=32, camera="front+side")
    obs, _ = both.reset(seed=3)
    assert obs["image"].shape == (64, 32, 3) == both.observation_space["image"].shape
    assert both.unwrapped.image_hw == (64, 32) and both.unwrapped.cameras == ("front", "side")
    for row, camera in enumerate(("front", "side")):
        single = envs.make("push", image_size=32, camera=camera)
        np.testing.assert_array_equal(single.reset(seed=3)[0]["image"], obs["image"][32 * row:32 * (row + 1)])
    assert not np.array_equal(obs["image"][:32], obs["image"][32:])
    front = envs.make("push", image_size=32)
    front.reset(seed=3)
    np.testing.assert_array_equal(both.unwrapped.view_box[0], front.unwrapped.view_box[0])  # the first camera's
    assert both.unwrapped.goal_images().images[-1].shape == (64, 32, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(envs.make("push", image_size=32, camera="front+side").unwrapped, skip_render_check=True)
    for bad in ("front+ceiling", "front+front", "+", ""):
        with pytest.raises(ValueError, match="joined by '\\+'"):
            envs.make("push", camera=bad)


@pytest.mark.parametrize("bad_reset", [{"seed": -1}, {"options": {"bogus": 1}}])
def test_a_failed_reset_asks_for_another_and_the_env_works_after_it(bad_reset: dict) -> None:
    """gymnasium's passive checker used to break the env for good after a first reset that raised."""
    env = envs.make("reach", image_size=16)
    with pytest.raises((ValueError, gymnasium.error.Error)):
        env.reset(**bad_reset)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(np.zeros(7, np.float32))
    env.reset(seed=3)
    for _ in range(2):
        obs, *_ = env.step(np.zeros(7, np.float32))
    assert obs["image"].shape == (16, 16, 3)
    env.close()
