"""pick_place_multi's scenes: the default scene unchanged, palettes, held-out pairs, goals of other pairs."""

from __future__ import annotations

import hashlib
import itertools
import logging
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.scene import CAMERAS
from envs.scene.props import CUBE_HALF, PAD_HALF, PAD_THICKNESS, PARKED_PAD_Z
from envs.scene.view import project
from envs.tasks.pick_place import LAYOUT_HALF, MIN_DIST
from envs.tasks.pick_place_multi import LANG_HELD_OUT_PAIRS, PAD_GAP, SceneSettings, sample_layout

# default_scene_digest() at commit dc82359, before the scene had settings: instructions, robot
# and simulator states of expert rollouts (physics only: images depend on the OpenGL back-end).
# Record again with `python -m tests.envs.test_pick_place_multi` in a checkout of that commit.
DEFAULT_SCENE_DIGEST = "61e51ac98bfce7936d1941fd54c60075f6bec9955a2f780a7a1f2649c12866b3"
LANG = {"palette": "lang"}
BOX_CORNERS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))  # (8, 3)


def default_scene_digest() -> str:
    """sha256 over three seeds (and one reset with options) of the default scene's rollouts."""
    env = envs.make("pick_place_multi")
    digest = hashlib.sha256()
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        digest.update(env.unwrapped.instruction.encode())
        expert = env.unwrapped.make_expert(noise=0.3, seed=seed)
        for _ in range(25):
            for array in (obs["state"], info["object_pos"], info["target_pos"], env.unwrapped.sim_state()):
                digest.update(array.tobytes())
            obs, _, _, _, info = env.step(expert.act())
    env.reset(seed=5, options={"object": "green", "target": "yellow"})
    digest.update(env.unwrapped.instruction.encode() + env.unwrapped.sim_state().tobytes())
    env.close()
    return digest.hexdigest()


def one_line(error: pytest.ExceptionInfo) -> bool:
    return "\n" not in str(error.value)


@pytest.fixture(scope="module")
def lang_env():
    env = envs.make("pick_place_multi", **LANG, pairs="all")
    yield env
    env.close()


def test_default_scene_is_the_one_before_settings() -> None:
    assert default_scene_digest() == DEFAULT_SCENE_DIGEST


def test_default_settings_are_the_two_by_two_scene() -> None:
    env = envs.make("pick_place_multi")
    env.reset(seed=0)
    unwrapped = env.unwrapped
    assert unwrapped.settings == SceneSettings(("red", "green"), ("blue", "yellow"), 2, 2, (), "all")
    assert unwrapped.scene_cubes == unwrapped.cubes == ("red", "green")
    assert unwrapped.scene_pads == unwrapped.pads == ("blue", "yellow")
    env.close()


@pytest.mark.parametrize(
    "kwargs",
    [LANG, {**LANG, "pairs": "held_out"}, {**LANG, "num_cubes": 2, "num_pads": 3, "camera": "front+side"},
     {"cube_colours": ["red", "green", "blue", "yellow", "purple", "orange", "cyan"], "num_cubes": 3}],
)
@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_check_env_passes_for_the_new_scenes(kwargs: dict, render_mode: str | None) -> None:
    env = envs.make("pick_place_multi", render_mode=render_mode, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


def test_same_seed_same_scene_and_rollout() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 7)).astype(np.float32)
    env_a, env_b = envs.make("pick_place_multi", **LANG), envs.make("pick_place_multi", **LANG)
    images = []
    for env in (env_a, env_b):
        obs, _ = env.reset(seed=4)
        images.append([obs["image"]] + [env.step(action)[0]["image"] for action in actions])
    a, b = env_a.unwrapped, env_b.unwrapped
    assert (a.instruction, a.scene_cubes, a.scene_pads) == (b.instruction, b.scene_cubes, b.scene_pads)
    assert np.array_equal(a.sim_state(), b.sim_state()) and np.array_equal(images[0], images[1])
    scenes = set()
    for seed in range(10):
        env_b.reset(seed=seed)
        scenes.add((b.instruction, b.scene_cubes, b.scene_pads))
    assert len(scenes) >= 8
    env_a.close()
    env_b.close()


def test_scene_holds_the_pair_drawn_from_the_palettes(lang_env) -> None:
    env = lang_env.unwrapped
    seen = set()
    for seed in range(60):
        _, info = lang_env.reset(seed=seed)
        assert len(env.scene_cubes) == len(env.scene_pads) == 3
        assert env.object in env.scene_cubes and env.target in env.scene_pads
        assert env.instruction == f"put the {env.object} cube on the {env.target} pad"
        assert env.scene_pairs == tuple((c, p) for c in env.scene_cubes for p in env.scene_pads)
        assert info["object_pos"].shape == (9,)
        np.testing.assert_allclose(info["object_pos"][:3], env.sim.cube_pos(env.object), atol=1e-6)
        np.testing.assert_allclose(info["target_pos"], env.sim.pad_pos(env.target), atol=1e-6)
        seen.add((env.object, env.target))
    assert len(seen) == 16  # every pair of the 4 x 4 palette
    env_2x3 = envs.make("pick_place_multi", **LANG, num_cubes=2, num_pads=3)
    _, info = env_2x3.reset(seed=0)
    assert len(env_2x3.unwrapped.scene_cubes) == 2 and info["object_pos"].shape == (6,)
    env_2x3.close()


def test_props_lie_apart_in_view_and_absent_ones_are_parked_out_of_sight(lang_env) -> None:
    env = lang_env.unwrapped
    for seed in range(20):
        lang_env.reset(seed=seed)
        cubes = np.array([env.sim.cube_pos(c) for c in env.scene_cubes])
        pads = np.array([env.sim.pad_pos(p) for p in env.scene_pads])
        centres = np.concatenate([cubes[:, :2], pads[:, :2]])
        dists = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(centres))
        assert dists.min() >= MIN_DIST and np.abs(centres).max() <= LAYOUT_HALF
        assert np.all(pads[:, 2] == PAD_THICKNESS) and np.allclose(cubes[:, 2], CUBE_HALF)  # on the table
        gaps = np.abs(pads[:, None, :2] - pads[None, :, :2]).max(axis=-1) + np.eye(len(pads))
        assert gaps.min() >= 2 * PAD_HALF + PAD_GAP  # pads never overlap
        shown = np.concatenate([(cubes[:, None] + CUBE_HALF * BOX_CORNERS).reshape(-1, 3),
                                (pads[:, None] + PAD_HALF * BOX_CORNERS * (1, 1, 0)).reshape(-1, 3)])
        for camera in CAMERAS:  # every present prop lies whole inside every camera's image
            pixels = project(env.sim, camera, shown, 64)
            assert np.all((pixels >= 0) & (pixels <= 64)), camera
        for color in set(env.cubes) - set(env.scene_cubes):
            for camera in CAMERAS:
                pixels = project(env.sim, camera, env.sim.cube_pos(color) + CUBE_HALF * BOX_CORNERS, 64)
                assert not np.any(np.all((pixels >= 0) & (pixels <= 64), axis=-1)), (color, camera)
        for color in set(env.pads) - set(env.scene_pads):
            assert env.sim.pad_pos(color)[2] == PARKED_PAD_Z  # under the table top


def test_parked_props_leave_the_image_unchanged() -> None:
    env = envs.make("pick_place_multi", **LANG, camera="front+side")
    obs, _ = env.reset(seed=1)
    unwrapped = env.unwrapped
    parked_cube = next(c for c in unwrapped.cubes if c not in unwrapped.scene_cubes)
    parked_pad = next(p for p in unwrapped.pads if p not in unwrapped.scene_pads)
    unwrapped.sim.park_cube(parked_cube, 5)
    unwrapped.sim.set_pad(parked_pad, np.array([0.3, 0.3]))  # still under the table, elsewhere
    unwrapped.sim.forward()
    assert np.array_equal(unwrapped._render(unwrapped.sim), obs["image"])
    env.close()


def test_pairs_train_never_draws_a_held_out_pair_and_held_out_only_those() -> None:
    drawn = {}
    for pairs in ("train", "held_out"):
        env = envs.make("pick_place_multi", **LANG, pairs=pairs)
        drawn[pairs] = set()
        for seed in range(80):
            env.reset(seed=seed)
            drawn[pairs].add((env.unwrapped.object, env.unwrapped.target))
            assert set(env.unwrapped.instruction_pairs) == {
                p for p in env.unwrapped.scene_pairs if (p in LANG_HELD_OUT_PAIRS) == (pairs == "held_out")}
        env.close()
    assert drawn["held_out"] == set(LANG_HELD_OUT_PAIRS)
    assert len(drawn["train"]) == 12 and not drawn["train"] & set(LANG_HELD_OUT_PAIRS)
    assert envs.make("pick_place_multi", **LANG).unwrapped.settings.pairs == "train"  # the preset trains


@pytest.mark.parametrize("seed", range(3))
def test_expert_puts_the_named_cube_on_the_named_pad_in_three_by_three_scenes(seed: int) -> None:
    env = envs.make("pick_place_multi", **LANG, pairs="all")
    pair = [("blue", "red"), ("yellow", "yellow"), ("red", "green")][seed]
    env.reset(seed=seed, options={"object": pair[0], "target": pair[1]})
    expert, truncated = env.unwrapped.make_expert(), False
    others = {c: env.unwrapped.sim.cube_pos(c) for c in env.unwrapped.scene_cubes if c != pair[0]}
    while not truncated:
        _, _, _, truncated, info = env.step(expert.act())
    assert info["is_success"]  # from the simulator: the named cube rests on the named pad
    for color, start in others.items():  # the distractors stayed where they were
        np.testing.assert_allclose(env.unwrapped.sim.cube_pos(color)[:2], start[:2], atol=0.01)
    env.close()


def test_clean_expert_solves_95_percent_of_three_by_three_scenes() -> None:
    env = envs.make("pick_place_multi", **LANG, pairs="all")
    successes = []
    for seed in range(20):
        env.reset(seed=seed)
        expert, truncated = env.unwrapped.make_expert(), False
        while not truncated:
            _, _, _, truncated, info = env.step(expert.act())
        successes.append(info["is_success"])
    env.close()
    assert np.mean(successes) >= 0.95, f"the expert solved {sum(successes)}/20"


def test_goal_images_for_another_pair_of_the_same_scene(caplog: pytest.LogCaptureFixture) -> None:
    env = envs.make("pick_place_multi", **LANG, pairs="all")
    env.reset(seed=2)
    unwrapped = env.unwrapped
    own_pair, start = (unwrapped.object, unwrapped.target), unwrapped.sim_state()
    other = next(p for p in unwrapped.scene_pairs if p[0] != own_pair[0] and p[1] != own_pair[1])
    with caplog.at_level(logging.WARNING, logger="envs.goals"):
        own, theirs = unwrapped.goal_images(), unwrapped.goal_images_for(*other)
    assert not caplog.records  # every final goal image shows its pair's cube resting on its pad
    assert own.names == theirs.names and not np.array_equal(own.images[-1], theirs.images[-1])
    assert unwrapped.goal_images_for(*own_pair) is own and unwrapped.goal_images_for(*other) is theirs
    assert (unwrapped.object, unwrapped.target) == own_pair and np.array_equal(unwrapped.sim_state(), start)
    assert unwrapped.goal_images() is own
    absent = next(c for c in unwrapped.cubes if c not in unwrapped.scene_cubes)
    with pytest.raises(ValueError, match="this scene has cubes") as error:
        unwrapped.goal_images_for(absent, own_pair[1])
    assert one_line(error)
    env.reset(seed=3)
    assert unwrapped.goal_images_for(*unwrapped.scene_pairs[0]) is not theirs  # a new episode, new goals
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"palette": "huge"}, "palette must be one of"),
        ({"cube_colours": ["red", "mauve"]}, "cube_colours must be distinct colours"),
        ({"pad_colours": ["blue", "blue"]}, "pad_colours must be distinct colours"),
        ({"cube_colours": "red"}, "cube_colours must be a list"),
        ({"num_cubes": 4, **LANG}, r"num_cubes must be one of \[2, 3\]"),
        ({"num_pads": 3}, "num_pads=3 needs between 3 and"),
        ({"held_out_pairs": [["red", "red"]]}, r"held-out pair \['red', 'red'\] is not"),
        ({"held_out_pairs": [["red", "blue", "x"]]}, "held_out_pairs must be a list of"),
        ({"pairs": "some"}, "pairs must be one of"),
        ({"pairs": "held_out"}, "pairs='held_out' leaves no"),
        ({**LANG, "cube_colours": ["purple", "orange"], "num_cubes": 2}, "held-out pair"),
    ],
)
def test_bad_settings_give_one_line_errors(kwargs: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match) as error:
        envs.make("pick_place_multi", **kwargs)
    assert one_line(error)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"object": "purple"}, r"object must be one of \['red', 'green', 'blue', 'yellow'\], got 'purple'"),
        ({"target": "white"}, "target must be one of"),
        ({"object": "red", "target": "green"}, "pairs='train' excludes object='red' with target='green'"),
        ({"colour": "red"}, "reset options are 'object' and 'target'"),
    ],
)
def test_bad_reset_options_give_one_line_errors(options: dict, match: str) -> None:
    env = envs.make("pick_place_multi", **LANG)
    with pytest.raises(ValueError, match=match) as error:
        env.reset(seed=0, options=options)
    assert one_line(error)
    env.reset(seed=0, options={"object": "red", "target": "blue"})  # still usable; a held-in pair is granted
    assert env.unwrapped.instruction == "put the red cube on the blue pad"
    env.close()


def test_options_choose_any_pair_the_setting_allows() -> None:
    env = envs.make("pick_place_multi", **LANG, pairs="held_out")
    env.reset(seed=0, options={"object": "blue"})
    assert (env.unwrapped.object, env.unwrapped.target) == ("blue", "yellow")  # its only held-out pad
    env.reset(seed=0, options={"target": "red"})
    assert env.unwrapped.object == "green"
    env.close()


def test_sample_layout_keeps_its_distances() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        points = sample_layout(rng, 3, 3)
        assert points.shape == (6, 2) and np.abs(points).max() <= LAYOUT_HALF
        dists = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(6)
        pads = points[3:]
        assert dists.min() >= MIN_DIST
        assert (np.abs(pads[:, None] - pads[None]).max(axis=-1) + np.eye(3)).min() >= 2 * PAD_HALF + PAD_GAP


def test_settings_come_from_the_task_config() -> None:
    config = {"name": "pick_place_multi", "image_size": 64, "camera": None, "palette": "lang", "num_cubes": 2,
              "cube_colours": None, "pairs": "held_out"}
    env = envs.make_from_config(config)
    settings = env.unwrapped.settings
    assert (settings.num_cubes, settings.num_pads, settings.pairs) == (2, 3, "held_out")
    assert settings.held_out_pairs == LANG_HELD_OUT_PAIRS
    env.close()


if __name__ == "__main__":
    print(default_scene_digest())
