"""Goal images come from the clean expert in a copy of the simulation, and match a real run."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import envs
from envs.goals import expert_goal_images

TASKS = envs.registered_tasks(backend="mujoco")
GOAL_NAMES = {
    "reach": ("final",),
    "push": ("behind", "pushed", "final"),
    "pick_place": ("at_cube", "closed", "grasped", "above_target", "placed", "final"),
    "pick_place_multi": ("at_cube", "closed", "grasped", "above_target", "placed", "final"),
}


class ScriptedPhases:
    """A stand-in simulator and expert: the expert walks through ``phases``, one per action, and
    the simulator counts the actions applied to it (images and states show that count)."""

    def __init__(self, phases: list[str], solved: bool = True) -> None:
        self.phases, self.solved = phases, solved
        self.acted = self.applied = 0

    @property
    def phase(self) -> str:
        return self.phases[max(self.acted - 1, 0)]

    def act(self) -> np.ndarray:
        self.acted += 1
        return np.full(7, self.acted, dtype=np.float32)

    def apply(self, action: np.ndarray) -> None:
        assert action[0] == self.acted  # the action just computed is the one applied
        self.applied += 1

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full((2, 2, 3), self.applied, dtype=np.uint8), np.full(7, self.applied, dtype=np.float32)

    def goals(self, capture: dict[str, str], max_steps: int = 20, restart_phase: str | None = None,
              every: int | None = None):
        return expert_goal_images(
            self, self.apply, self.observe, lambda: self.solved, capture, max_steps, restart_phase, label="fake",
            every=every,
        )


# The expert grips (carry), drops the object (back to approach), grips again and finishes.
DROPPING = ["approach", "approach", "lift", "carry", "approach", "lift", "carry", "place", "done", "done"]
CAPTURE = {"carry": "grasped", "place": "above_target", "done": "final"}


@pytest.mark.parametrize(("restart_phase", "grasped_step"), [("approach", 6), (None, 3)])
def test_a_restart_retakes_the_goals_captured_before_it(restart_phase: str | None, grasped_step: int) -> None:
    run = ScriptedPhases(DROPPING)
    goals = run.goals(CAPTURE, restart_phase=restart_phase)
    assert goals.names == ("grasped", "above_target", "final")
    assert goals.steps == (grasped_step, 7, 8)  # first step computed in the phase, before its action
    for image, state, step in zip(goals.images, goals.states, goals.steps, strict=True):
        assert (image == step).all() and (state == step).all()
    assert run.applied == 8  # stops at the final goal without applying its action


def test_goals_the_expert_never_reaches_get_the_last_frame(caplog: pytest.LogCaptureFixture) -> None:
    run = ScriptedPhases(["approach"] * 3 + ["carry"] * 30, solved=False)
    with caplog.at_level(logging.WARNING, logger="envs.goals"):
        goals = run.goals(CAPTURE, max_steps=10)
    assert run.applied == 10 and goals.steps == (3, 10, 10)
    assert (goals.images[1] == 10).all() and goals.images[2] is goals.images[1]
    assert "['above_target', 'final']" in caplog.text and "does not show success" in caplog.text


def test_extra_sub_goals_every_k_steps_counted_from_the_latest_goal() -> None:
    goals = ScriptedPhases(DROPPING).goals(CAPTURE, restart_phase="approach", every=1)
    # the restart at step 4 drops "start+1", "start+2" and "grasped"; counting starts again there
    assert goals.names == ("start+1", "grasped", "above_target", "final")
    assert goals.steps == (5, 6, 7, 8)
    for image, step in zip(goals.images, goals.steps, strict=True):
        assert (image == step).all()
    plain = ScriptedPhases(["approach"] * 5 + ["carry"] * 4 + ["done"]).goals(CAPTURE, every=2)
    assert plain.names == ("start+2", "start+4", "grasped", "grasped+2", "above_target", "final")
    assert plain.steps == (2, 4, 5, 7, 9, 9)
    sparse = ScriptedPhases(["approach"] * 5 + ["carry"] * 4 + ["done"]).goals(CAPTURE, every=4)
    assert sparse.names == ("grasped", "above_target", "final")  # "start+4", a step before "grasped", left out


def test_goal_capture_refuses_an_empty_capture_or_a_bad_step_count() -> None:
    with pytest.raises(ValueError, match="capture"):
        ScriptedPhases(DROPPING).goals({})
    with pytest.raises(ValueError, match="max_steps"):
        ScriptedPhases(DROPPING).goals(CAPTURE, max_steps=-1)
    with pytest.raises(ValueError, match="every must be a positive int"):
        ScriptedPhases(DROPPING).goals(CAPTURE, every=0)


@pytest.mark.parametrize("name", TASKS)
def test_goal_images_leave_the_env_untouched(name: str) -> None:
    env, twin = envs.make(name), envs.make(name)
    obs, _ = env.reset(seed=4)
    twin.reset(seed=4)
    state, rng_state = env.unwrapped.sim_state(), env.unwrapped.np_random.bit_generator.state
    goals = env.unwrapped.goal_images()
    assert np.array_equal(env.unwrapped.sim_state(), state)
    assert env.unwrapped.np_random.bit_generator.state == rng_state
    assert goals.names == GOAL_NAMES[name]
    assert goals.states.shape == (len(goals.names), 7) and goals.states.dtype == np.float32
    assert list(goals.steps) == sorted(goals.steps) and goals.steps[0] > 0
    for image in goals.images:
        assert image.shape == obs["image"].shape and image.dtype == np.uint8
        assert not np.array_equal(image, obs["image"])
    assert env.unwrapped.goal_images() is goals  # cached for the episode
    action = env.action_space.sample()
    after, twin_after = env.step(action)[0], twin.step(action)[0]
    assert np.array_equal(after["image"], twin_after["image"]) and np.array_equal(after["state"], twin_after["state"])
    env.reset(seed=5)
    assert env.unwrapped.goal_images() is not goals
    env.close()
    twin.close()


def test_extra_sub_goal_images_keep_the_tasks_goals() -> None:
    env = envs.make("push")
    env.reset(seed=3)
    goals, dense = env.unwrapped.goal_images(), env.unwrapped.goal_images(every=3)
    assert env.unwrapped.goal_images(every=3) is dense and env.unwrapped.goal_images() is goals  # cached apiece
    assert dense.names[-1] == "final" and len(dense.names) > len(goals.names)
    assert list(dense.steps) == sorted(dense.steps)
    for name, image, step in zip(goals.names, goals.images, goals.steps, strict=True):
        i = dense.names.index(name)
        assert dense.steps[i] == step and np.array_equal(dense.images[i], image)
    extra = [(n, s) for n, s in zip(dense.names, dense.steps, strict=True) if n not in goals.names]
    for name, step in extra:  # "<latest goal>+<steps since it>", every 3 steps
        base, offset = name.split("+")
        since = step - (0 if base == "start" else goals.steps[goals.names.index(base)])
        assert int(offset) == since and since % 3 == 0
    env.close()


def test_goals_are_the_episodes_whenever_they_are_asked_for() -> None:
    """Asked mid-episode, or after a state restore, the goals are still those of the episode's start."""
    env, twin = envs.make("push"), envs.make("push")
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.goal_images()
    env.reset(seed=7)
    twin.reset(seed=7)
    expected = twin.unwrapped.goal_images()
    start = env.unwrapped.sim_state()
    expert = env.unwrapped.make_expert()
    for _ in range(8):
        env.step(expert.act())
    late = env.unwrapped.goal_images()
    assert late.steps == expected.steps
    assert all(np.array_equal(a, b) for a, b in zip(late.images, expected.images, strict=True))
    env.unwrapped.set_sim_state(start)
    assert env.unwrapped.goal_images() is late
    env.close()
    twin.close()


@pytest.mark.parametrize("name", TASKS)
def test_goals_are_frames_of_a_successful_expert_run(name: str) -> None:
    """Running the clean expert in the env itself reproduces each goal frame at its step."""
    env = envs.make(name)
    obs, info = env.reset(seed=6)
    goals = env.unwrapped.goal_images()
    expert = env.unwrapped.make_expert()
    frames, states, successes = [obs["image"]], [obs["state"]], [info["is_success"]]
    for _ in range(goals.steps[-1]):
        obs, _, _, _, info = env.step(expert.act())
        frames.append(obs["image"])
        states.append(obs["state"])
        successes.append(info["is_success"])
    for image, step, state in zip(goals.images, goals.steps, goals.states):
        assert np.array_equal(frames[step], image) and np.array_equal(states[step], state)
    assert successes[goals.steps[-1]], "the final goal image must show the task solved"
    if len(goals.names) > 1:  # the first sub-goal is on the way, not yet solved
        assert not successes[goals.steps[0]]
    env.close()


def test_push_subgoals_show_the_gripper_behind_the_cube_then_the_cube_on_the_pad() -> None:
    env = envs.make("push")
    env.reset(seed=2)
    sim = env.unwrapped.sim
    cube, pad = sim.cube_pos("red")[:2].copy(), sim.pad_pos("blue")[:2]
    behind, pushed, final = env.unwrapped.goal_images().states
    push_direction = (pad - cube) / np.linalg.norm(pad - cube)
    assert (cube - behind[:2]) @ push_direction > 0.02 and behind[2] < 0.05  # low, on the far side
    assert np.linalg.norm(pushed[:2] - pad) < 0.08 and pushed[2] < 0.05  # still low, next to the pad
    assert final[2] > pushed[2] + 0.03  # retreated upwards
    env.close()


def test_pick_place_subgoals_show_the_grasp_the_lift_and_the_placing() -> None:
    env = envs.make("pick_place")
    env.reset(seed=2)
    cube = env.unwrapped.sim.cube_pos("red")
    goals = env.unwrapped.goal_images()
    at_cube, closed, grasped, above, placed, final = goals.states
    assert np.linalg.norm(at_cube[:3] - cube) < 0.015 and at_cube[6] > 0.08  # open hand around the cube
    assert np.linalg.norm(closed[:3] - cube) < 0.015
    for state in (closed, grasped, above, placed):
        assert state[6] < 0.06  # fingers closed on the 5 cm cube
    assert grasped[2] > 0.1 and above[2] > 0.1  # lifted
    pad = env.unwrapped.sim.pad_pos("blue")
    assert np.linalg.norm(above[:2] - pad[:2]) < 0.02
    assert np.linalg.norm(placed[:2] - pad[:2]) < 0.02 and placed[2] < 0.04  # lowered onto the pad
    assert final[6] > 0.08  # released
    env.close()
