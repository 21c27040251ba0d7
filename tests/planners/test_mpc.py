"""The MPC loop on a toy 2-D point mass (x_{t+1} = x_t + a_t): it reaches goals and sub-goals."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from planners import MPC, ActionSpace, MPCConfig, SubgoalConfig, SubgoalSchedule, available_planners, make_planner

SPACE = ActionSpace(dim=2)  # box [-1, 1] per axis


class PointMass:
    """Gymnasium-style toy env: position (2,), action (2,) clipped to [-1, 1]."""

    def __init__(self, start: tuple[float, float], goal: tuple[float, float], tol: float = 0.05) -> None:
        self.pos = np.array(start, dtype=np.float32)
        self.goal = np.array(goal, dtype=np.float32)
        self.tol = tol
        self.trajectory = [self.pos.copy()]

    def step(self, action: np.ndarray):
        assert action.shape == (2,) and action.dtype == np.float32
        self.pos = self.pos + np.clip(action, -1, 1)
        self.trajectory.append(self.pos.copy())
        done = bool(np.linalg.norm(self.pos - self.goal) < self.tol)
        return self.pos.copy(), -float(np.linalg.norm(self.pos - self.goal)), done, False, {}


def make_cost(obs: np.ndarray, goal: torch.Tensor):
    """Squared distance to the goal summed over the planned positions: (B, H, 2) -> (B,).

    (Summing over steps keeps a horizon longer than needed from postponing the move.)"""
    start = torch.as_tensor(obs)

    def cost(actions: torch.Tensor) -> torch.Tensor:
        return (start + actions.cumsum(dim=1) - goal).square().sum(dim=(1, 2))

    return cost


def distance_energy(obs: np.ndarray, goal: torch.Tensor) -> float:
    """Squared distance of the observed position to the goal."""
    return float((torch.as_tensor(obs) - goal).square().sum())


PLANNER_SETTINGS = {
    "cem": dict(horizon=3, num_samples=200, iterations=5),
    "icem": dict(horizon=3, num_samples=100, iterations=4),
    "mppi": dict(horizon=3, num_samples=200, iterations=5),
    "gradient": dict(horizon=3, iterations=25, lr=0.2, num_restarts=2),
}


@pytest.mark.parametrize("name", available_planners())
def test_mpc_reaches_goal(name) -> None:
    env = PointMass(start=(4.0, -3.0), goal=(0.0, 0.0))
    planner = make_planner(name, SPACE, seed=0, **PLANNER_SETTINGS[name])
    mpc = MPC(planner, make_cost, MPCConfig(execute_steps=1))
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    log = mpc.run(env.pos.copy(), env.step, max_steps=15)
    assert np.linalg.norm(env.pos) < 0.05, env.trajectory
    assert 4 <= len(log.actions) < 15  # needs at least 4 unit steps, stops once there
    assert len(log.plan_steps) == len(log.energies) == len(log.plan_times_s) == len(log.actions)
    assert log.energies[-1] < log.energies[0]
    assert all(SPACE.contains(torch.as_tensor(a)) for a in log.actions)


def test_execute_several_actions_per_plan_and_warm_start() -> None:
    env = PointMass(start=(3.0, 2.0), goal=(0.0, 0.0))
    planner = make_planner("cem", SPACE, seed=1, **PLANNER_SETTINGS["cem"])
    mpc = MPC(planner, make_cost, MPCConfig(execute_steps=2, warm_start=True, warm_start_fill="last"))
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    log = mpc.run(env.pos.copy(), env.step, max_steps=12)
    assert np.linalg.norm(env.pos) < 0.05
    assert log.plan_steps == list(range(0, len(log.actions), 2))
    assert len(log.as_dict()["actions"]) == len(log.actions)


def test_subgoals_by_threshold_are_visited_in_order() -> None:
    env = PointMass(start=(0.0, 0.0), goal=(0.0, -2.0))
    goals = [torch.tensor([2.0, 2.0]), torch.tensor([0.0, -2.0])]
    planner = make_planner("cem", SPACE, seed=0, **PLANNER_SETTINGS["cem"])
    mpc = MPC(planner, make_cost, energy_fn=distance_energy)
    mpc.reset(SubgoalSchedule(goals, SubgoalConfig(energy_threshold=0.01)))
    log = mpc.run(env.pos.copy(), env.step, max_steps=20)
    passed = min(np.linalg.norm(p - np.array([2.0, 2.0])) for p in env.trajectory)
    assert passed < 0.2  # went through the sub-goal
    assert np.linalg.norm(env.pos - env.goal) < 0.05  # and ended at the final goal
    assert log.goal_indices[0] == 0 and log.goal_indices[-1] == 1
    assert log.goal_indices == sorted(log.goal_indices)


def test_subgoals_by_steps() -> None:
    env = PointMass(start=(0.0, 0.0), goal=(9.0, 9.0))  # never reached: run all steps
    goals = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])]
    planner = make_planner("cem", SPACE, seed=0, **PLANNER_SETTINGS["cem"])
    mpc = MPC(planner, make_cost, MPCConfig(execute_steps=2))
    mpc.reset(SubgoalSchedule(goals, SubgoalConfig(steps_per_goal=(3, 2))))
    log = mpc.run(env.pos.copy(), env.step, max_steps=9)
    assert log.goal_indices == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    # a switch drops the rest of the plan: re-planned at steps 0, 2, 3 (switch), 5 (switch), 7
    assert log.plan_steps == [0, 2, 3, 5, 7]


def test_mpc_validates_its_use() -> None:
    planner = make_planner("cem", SPACE, seed=0, horizon=1, num_samples=20, iterations=1)
    with pytest.raises(ValueError, match="execute_steps"):
        MPC(planner, make_cost, MPCConfig(execute_steps=2))
    with pytest.raises(RuntimeError, match="reset"):
        MPC(planner, make_cost).act(np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="warm_start_fill"):
        MPCConfig(warm_start_fill="zeros")


def test_arrival_energy_holds_at_the_final_goal_and_plans_again_when_pushed_off() -> None:
    env = PointMass(start=(0.0, 0.0), goal=(0.0, 0.0), tol=-1.0)
    planner = make_planner("cem", SPACE, seed=0, horizon=1, num_samples=32, iterations=2, topk=4)
    mpc = MPC(planner, make_cost, MPCConfig(arrival_energy=0.01), energy_fn=distance_energy)
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    resets, reset = [], planner.reset
    planner.reset = lambda seed=None: (resets.append(seed), reset(seed))[1]
    log = mpc.run(env.pos.copy(), env.step, max_steps=5)
    assert log.arrived_steps == [0, 1, 2, 3, 4] and not log.plan_steps  # at the goal: no plan, no move
    assert np.array_equal(env.pos, np.zeros(2)) and not resets
    env.pos = np.array([2.0, 0.0], dtype=np.float32)  # pushed away: the energy rises, it plans again
    mpc.run(env.pos.copy(), env.step, max_steps=6)
    assert log.plan_steps[0] == 5 and abs(env.pos[0]) < 0.1 and log.arrived_steps[-1] == 10
    assert resets == [None]  # arriving after planning forgets the plan once (the next starts afresh)
    assert len(log.act_times_s) == len(log.actions) == 11


def test_arrival_energy_is_only_for_the_final_goal() -> None:
    env = PointMass(start=(0.0, 0.0), goal=(0.0, 0.0), tol=-1.0)
    planner = make_planner("cem", SPACE, seed=0, horizon=1, num_samples=64, iterations=3)
    schedule = SubgoalSchedule([torch.zeros(2), torch.tensor([2.0, 0.0])], SubgoalConfig(steps_per_goal=[3]))
    mpc = MPC(planner, make_cost, MPCConfig(arrival_energy=0.01), energy_fn=distance_energy)
    mpc.reset(schedule)
    log = mpc.run(env.pos.copy(), env.step, max_steps=12)
    assert log.plan_steps[:4] == [0, 1, 2, 3]  # at the sub-goal it keeps planning; after the switch too
    assert log.arrived_steps and log.arrived_steps[-1] == 11 and abs(env.pos[0] - 2.0) < 0.1
    for bad in (0.0, True, "0.1"):
        with pytest.raises(ValueError, match="arrival_energy"):
            MPCConfig(arrival_energy=bad)
    with pytest.raises(ValueError, match="energy_fn"):
        MPC(planner, make_cost, MPCConfig(arrival_energy=0.1))


def test_arrival_hold_keeps_the_gripper_as_last_commanded() -> None:
    space = ActionSpace(dim=3, binary_dims=(2,))  # x, y and an open/closed gripper in {-1, 1}

    def grip_open_cost(obs: np.ndarray, goal: torch.Tensor):
        reach = make_cost(obs, goal)
        return lambda actions: reach(actions[..., :2]) + 0.5 * (1 + actions[..., 2]).abs().sum(1)

    env = PointMass(start=(2.0, 0.0), goal=(0.0, 0.0), tol=-1.0)
    planner = make_planner("cem", space, seed=0, horizon=1, num_samples=64, iterations=3)
    mpc = MPC(planner, grip_open_cost, MPCConfig(arrival_energy=0.01), energy_fn=distance_energy)
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    log = mpc.run(env.pos.copy(), lambda a: env.step(a[:2]), max_steps=8)
    assert log.plan_steps and log.plan_steps[0] == 0 and log.arrived_steps and log.arrived_steps[-1] == 7
    assert all(log.actions[t][2] == -1.0 for t in log.plan_steps)  # the plans open the gripper
    for t in log.arrived_steps:  # holding still: no move, the gripper stays open (the default action closes it)
        assert log.actions[t].tolist() == [0.0, 0.0, -1.0]


def test_last_plan_and_steps_follow_the_loop() -> None:
    env = PointMass(start=(3.0, 0.0), goal=(0.0, 0.0), tol=-1.0)
    planner = make_planner("cem", SPACE, seed=0, horizon=3, num_samples=64, iterations=3)
    mpc = MPC(planner, make_cost, MPCConfig(execute_steps=2))
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    assert mpc.last_plan is None and mpc.steps == 0
    obs = env.pos.copy()
    first = mpc.act(obs)
    plan = mpc.last_plan
    assert plan is not None and plan.shape == (3, 2) and mpc.steps == 1
    torch.testing.assert_close(first, plan[0])
    obs = env.step(first.numpy())[0]
    second = mpc.act(obs)  # the second action of the same plan: no new plan
    assert mpc.last_plan is plan and mpc.steps == 2 and mpc.log.plan_steps == [0]
    torch.testing.assert_close(second, plan[1])
    obs = env.step(second.numpy())[0]
    mpc.act(obs)  # used up: a new plan
    assert mpc.last_plan is not plan and mpc.steps == 3 and mpc.log.plan_steps == [0, 2]
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    assert mpc.last_plan is None and mpc.steps == 0


def test_far_planner_plans_while_the_observed_energy_is_high() -> None:
    env = PointMass(start=(6.0, 0.0), goal=(0.0, 0.0), tol=-1.0)
    near = make_planner("cem", SPACE, seed=0, horizon=1, num_samples=64, iterations=3)
    far = make_planner("cem", SPACE, seed=0, horizon=3, num_samples=64, iterations=3)
    mpc = MPC(near, make_cost, MPCConfig(far_energy=4.0), energy_fn=distance_energy, far_planner=far)
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    log = mpc.run(env.pos.copy(), env.step, max_steps=10)
    expected = [log.observed_energies[t] > 4.0 for t in log.plan_steps]
    assert log.far == expected and expected[0] and not expected[-1]  # far first, near once within 2
    assert np.linalg.norm(env.pos) < 0.2  # switching horizons (3 -> 1) drops the plan instead of warm-starting
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    assert mpc.planner is near and not mpc.log.far


def test_far_planner_settings_are_checked() -> None:
    near = make_planner("cem", SPACE, seed=0, horizon=1)
    far = make_planner("cem", SPACE, seed=0, horizon=2)
    with pytest.raises(ValueError, match="far_energy and far_planner go together"):
        MPC(near, make_cost, MPCConfig(far_energy=1.0), energy_fn=distance_energy)
    with pytest.raises(ValueError, match="far_energy and far_planner go together"):
        MPC(near, make_cost, MPCConfig(), energy_fn=distance_energy, far_planner=far)
    with pytest.raises(ValueError, match="energy_fn"):
        MPC(near, make_cost, MPCConfig(far_energy=1.0), far_planner=far)
    with pytest.raises(ValueError, match="action space"):
        MPC(near, make_cost, MPCConfig(far_energy=1.0), energy_fn=distance_energy,
            far_planner=make_planner("cem", ActionSpace(dim=2, planned_dims=(0,)), horizon=2))
    with pytest.raises(ValueError, match="far_planner's horizon"):
        MPC(far, make_cost, MPCConfig(execute_steps=2, far_energy=1.0), energy_fn=distance_energy, far_planner=near)
    for bad in (0.0, -1.0, True):
        with pytest.raises(ValueError, match="far_energy"):
            MPCConfig(far_energy=bad)


def test_a_plan_the_time_budget_left_unevaluated_is_executed_and_logged(caplog) -> None:
    """Each cost call takes 0.3 s against a 0.05 s budget: the first two plans are the single candidates of
    the planner's probes; the next is the warm start (here the default action), unevaluated, with a warning."""

    def slow_cost(obs: np.ndarray, goal: torch.Tensor):
        cost = make_cost(obs, goal)

        def slow(actions: torch.Tensor) -> torch.Tensor:
            time.sleep(0.3)
            return cost(actions)

        return slow

    planner = make_planner("cem", SPACE, seed=0, horizon=1, num_samples=50, iterations=3, time_budget_s=0.05)
    mpc = MPC(planner, slow_cost, MPCConfig(execute_steps=1, warm_start_fill="default"))
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    env = PointMass(start=(2.0, 1.0), goal=(0.0, 0.0))
    with caplog.at_level(logging.WARNING, logger="planners.mpc"):
        log = mpc.run(env.pos.copy(), env.step, max_steps=3)
    assert log.timed_out == [True] * 3 and log.evaluated == [1, 1, 0] and log.iterations == [0] * 3
    assert np.isfinite(log.energies[:2]).all() and log.energies[2] == float("inf")
    np.testing.assert_array_equal(log.actions[2], np.zeros(2, dtype=np.float32))
    assert "below the time of one cost evaluation" in caplog.text
    assert log.plan_times_s[2] < 0.05 + 0.5


def test_time_per_action_is_a_deadline_for_the_whole_step() -> None:
    """The observed energy takes 0.2 s of a 0.6 s control period and each candidate 10 ms: every action
    (energy + planning) is ready within the period plus a generous slack, where an unbounded plan
    (3 x 200 candidates) takes 6 s."""

    def slow_energy(obs: np.ndarray, goal: torch.Tensor) -> float:
        time.sleep(0.2)
        return distance_energy(obs, goal)

    def slow_cost(obs: np.ndarray, goal: torch.Tensor):
        cost = make_cost(obs, goal)

        def slow(actions: torch.Tensor) -> torch.Tensor:
            time.sleep(0.01 * len(actions))
            return cost(actions)

        return slow

    planner = make_planner("cem", SPACE, seed=0, horizon=1, num_samples=200, iterations=3)
    mpc = MPC(planner, slow_cost, MPCConfig(time_per_action_s=0.6), energy_fn=slow_energy)
    mpc.reset(SubgoalSchedule([torch.zeros(2)]))
    env = PointMass(start=(2.0, 1.0), goal=(0.0, 0.0))
    log = mpc.run(env.pos.copy(), env.step, max_steps=4)
    assert all(log.timed_out) and all(n > 0 for n in log.evaluated[2:])  # after the planner's two probes
    assert max(log.act_times_s) < 0.6 + 0.5 and max(log.plan_times_s) < 0.4 + 0.5
    assert np.linalg.norm(env.pos - env.goal) < np.linalg.norm(np.array([2.0, 1.0]))  # it still plans toward the goal
    with pytest.raises(ValueError, match="time_per_action_s must be None or a number > 0, got 0"):
        MPCConfig(time_per_action_s=0)
