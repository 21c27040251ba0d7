"""Scripted experts: the clean expert solves every task; noise is reproducible and correlated."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs.experts import ExpertNoise, grasp_yaw

TASKS = envs.registered_tasks(backend="mujoco")
SEEDS = range(20)  # fixed evaluation set


def run_expert(env, seed: int, noise: float = 0.0, expert_seed: int | None = None) -> tuple[bool, np.ndarray]:
    """Success at the end of one full episode, and the actions taken ``(T, 7)``."""
    env.reset(seed=seed)
    expert = env.unwrapped.make_expert(noise=noise, seed=expert_seed)
    assert isinstance(expert, envs.Expert)
    actions, truncated = [], False
    while not truncated:
        actions.append(expert.act())
        _, _, terminated, truncated, info = env.step(actions[-1])
        assert not terminated
    return bool(info["is_success"]), np.stack(actions)


@pytest.mark.parametrize("name", TASKS)
def test_clean_expert_succeeds_on_95_percent(name: str) -> None:
    env = envs.make(name)
    successes = [run_expert(env, seed)[0] for seed in SEEDS]
    env.close()
    assert np.mean(successes) >= 0.95, f"{name}: expert solved {sum(successes)}/{len(successes)}"


def test_expert_actions_are_valid_and_phases_end_in_done() -> None:
    env = envs.make("pick_place")
    env.reset(seed=0)
    expert = env.unwrapped.make_expert()
    phases = []
    for _ in range(40):
        action = expert.act()
        assert action.shape == (7,) and action.dtype == np.float32 and env.action_space.contains(action)
        phases.append(expert.phase)
        env.step(action)
    assert phases[0] == "approach" and phases[-1] == "done"
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p][:5] == [
        "approach", "descend", "grasp", "lift", "carry",
    ]
    env.close()


def test_noisy_expert_is_reproducible_and_differs_from_clean() -> None:
    env = envs.make("push")
    _, clean = run_expert(env, seed=3)
    success_a, noisy_a = run_expert(env, seed=3, noise=0.2, expert_seed=11)
    success_b, noisy_b = run_expert(env, seed=3, noise=0.2, expert_seed=11)
    _, noisy_c = run_expert(env, seed=3, noise=0.2, expert_seed=12)
    assert np.array_equal(noisy_a, noisy_b) and success_a == success_b
    assert not np.array_equal(noisy_a, clean) and not np.array_equal(noisy_a, noisy_c)
    env.close()


def test_clean_expert_leaves_the_env_generator_alone() -> None:
    env = envs.make("reach")
    env.reset(seed=0)
    before = env.unwrapped.np_random.bit_generator.state
    env.unwrapped.make_expert(noise=0.0)
    assert env.unwrapped.np_random.bit_generator.state == before
    with pytest.raises(ValueError, match="noise"):
        env.unwrapped.make_expert(noise=-0.1)
    env.close()


def test_expert_noise_has_the_requested_std_and_correlation() -> None:
    noise = ExpertNoise(0.3, 0.6, np.random.default_rng(0))
    samples = np.stack([noise.sample() for _ in range(4000)])  # (4000, 7)
    assert samples.std() == pytest.approx(0.3, rel=0.1)
    lag1 = np.mean([np.corrcoef(samples[:-1, i], samples[1:, i])[0, 1] for i in range(7)])
    assert lag1 == pytest.approx(0.6, abs=0.05)
    with pytest.raises(ValueError, match="correlation"):
        ExpertNoise(0.1, 1.0, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("cube_yaw", "expected"), [(0.0, 0.0), (0.5, 0.5), (1.2, 1.2 - np.pi / 2), (-1.0, -1.0 + np.pi / 2)]
)
def test_grasp_yaw_lines_fingers_up_with_the_nearest_faces(cube_yaw: float, expected: float) -> None:
    assert grasp_yaw(cube_yaw) == pytest.approx(expected)
