"""MPCAgent with a fake cost model: reset / act toward a goal latent, what each step reports, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_wm.planning.agent import MPCAgent, NonFiniteCostError
from jepa_wm.planning.costs import ActionCost, EnergySettings, LatentEnergy, WeightedSum
from jepa_wm.protocols import Agent, AgentStep
from planners import CEM, ActionSpace, CEMConfig, MPCConfig, SubgoalConfig
from tests.planning.fakes import FakeModel, goal_at, point_obs

SPACE = ActionSpace(dim=3)  # delta xyz in [-1, 1], 0.05 m per unit
START, TARGET = (0.0, 0.0, 0.1), (0.1, -0.05, 0.15)  # two unit steps apart at most per axis


class PointEnv:
    """A hand that moves ``pos_scale`` m per position action unit."""

    def __init__(self, start=START, pos_scale: float = 0.05) -> None:
        self.position, self.pos_scale = np.array(start, dtype=np.float64), pos_scale

    def obs(self) -> dict[str, np.ndarray]:
        return point_obs(self.position)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        self.position = self.position + self.pos_scale * np.clip(action[:3], -1, 1)
        return self.obs()


def make_agent(model=None, mpc: MPCConfig | None = None, horizon: int = 1, seed: int = 0,
               terms=None) -> MPCAgent:
    planner = CEM(CEMConfig(horizon=horizon, num_samples=100, iterations=5, topk=10), SPACE, seed=seed)
    cost = WeightedSum(terms or {"energy": LatentEnergy()})
    return MPCAgent(model or FakeModel(), planner, cost, EnergySettings("l1"), mpc or MPCConfig())


def run(agent: MPCAgent, goal, steps: int, seed: int | None = 0, env: PointEnv | None = None) -> list[AgentStep]:
    env = env or PointEnv()
    agent.reset(goal, env.obs(), seed=seed)
    out = []
    for _ in range(steps):
        out.append(agent.act(env.obs()))
        env.step(out[-1].action)
    return out


def test_acting_drives_the_observed_energy_down() -> None:
    model = FakeModel()
    agent = make_agent(model)
    assert isinstance(agent, Agent)
    env = PointEnv()
    steps = run(agent, goal_at(TARGET), 5, env=env)
    energies = [s.energy for s in steps]
    # by hand at the start: mean |token scale| 1.125 x mean |diff| (0.1 + 0.05 + 0.05) / 3
    assert energies[0] == pytest.approx(1.125 * 0.2 / 3)
    assert energies[1] < energies[0] and energies[2] < 0.1 * energies[0] and energies[-1] < 0.1 * energies[0]
    assert np.abs(env.position - TARGET).max() < 0.01
    assert model.calls["reset"] == 1 and model.calls["encode"] == 5  # one encode per observation


def test_a_step_reports_its_plan_cost_energy_and_stage() -> None:
    model = FakeModel()
    agent = make_agent(model, MPCConfig(execute_steps=2), horizon=2)
    goal = goal_at(TARGET)
    env = PointEnv()
    first = run(agent, goal, 1, env=env)[0]
    assert first.action.dtype == np.float32 and first.action.shape == (3,)
    assert first.plan is not None and first.plan.shape == (2, 3) and first.goal_index == 0 and not first.arrived
    np.testing.assert_array_equal(first.action, first.plan[0].numpy())
    # the cost is the plan's under the weighted sum at that observation
    bound = agent.cost.bind(model, point_obs(START), goal, 0)
    assert first.cost == pytest.approx(float(bound(first.plan[None])[0]), abs=1e-6)
    assert first.time_s > 0 and first.energy == pytest.approx(1.125 * 0.2 / 3)
    second = agent.act(env.step(first.action))  # the plan's queued second action: no new plan
    assert second.plan is None and second.cost is None and second.energy is not None
    np.testing.assert_array_equal(second.action, first.plan[1].numpy())
    third = agent.act(env.step(second.action))
    assert third.plan is not None and agent.log.plan_steps == [0, 2] and len(agent.log.actions) == 3


def test_arrived_holds_still_near_the_final_goal() -> None:
    agent = make_agent(mpc=MPCConfig(arrival_energy=0.005))
    steps = run(agent, goal_at(TARGET), 6)
    arrived = [s.arrived for s in steps]
    assert not arrived[0] and arrived[-1] and arrived == sorted(arrived)  # plans, then holds once there
    for step in steps:
        assert (step.plan is None) == step.arrived and (step.cost is None) == step.arrived
        if step.arrived:
            assert step.energy < 0.005 and step.action.tolist() == [0.0, 0.0, 0.0]
    assert agent.log.arrived_steps == [t for t, s in enumerate(steps) if s.arrived]


def test_goal_index_follows_the_schedule_by_steps() -> None:
    goal = goal_at(TARGET, START, schedule=SubgoalConfig(steps_per_goal=(2,)))
    env = PointEnv()
    steps = run(make_agent(), goal, 5, env=env)
    assert [s.goal_index for s in steps] == [0, 0, 1, 1, 1]
    assert all(s.plan is not None for s in steps)  # horizon 1: a plan at every step, a fresh one at the switch
    assert np.abs(env.position - START).max() < 0.01  # went toward the sub-goal, came back to the final goal
    with_energy = run(make_agent(), goal_at(TARGET, START, schedule=SubgoalConfig(energy_threshold=(0.01,))), 5)
    switch = [s.goal_index for s in with_energy].index(1)
    assert 1 < switch < 5 and with_energy[switch].energy < 0.01  # left once the sub-goal was reached


def test_act_before_reset_raises() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        make_agent().act(point_obs(START))


def test_the_same_seed_gives_the_same_actions() -> None:
    goal = goal_at(TARGET)
    terms = {"energy": LatentEnergy(), "action": ActionCost(weight=0.001)}
    agent = make_agent(terms=terms)
    first = [s.action for s in run(agent, goal, 3, seed=7)]
    again = [s.action for s in run(agent, goal, 3, seed=7)]  # the same agent, reset with the same seed
    fresh = [s.action for s in run(make_agent(terms=terms, seed=123), goal, 3, seed=7)]  # the reset seed wins
    other = [s.action for s in run(agent, goal, 3, seed=8)]
    for a, b, c in zip(first, again, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert len(agent.log.actions) == 3 and all(isinstance(a, np.ndarray) for a in agent.log.actions)  # the last run


def test_a_non_finite_observation_or_goal_is_refused_before_planning() -> None:
    model = FakeModel()
    agent = make_agent(model)
    good = point_obs(START)
    nan_state = {**good, "state": np.where(np.arange(7) == 1, np.nan, good["state"])}
    with pytest.raises(ValueError, match="observation state must be finite"):
        agent.reset(goal_at(TARGET), nan_state)
    with pytest.raises(ValueError, match=r"goal's latents are not finite \(stages \['stage1'\]\)"):
        agent.reset(goal_at(TARGET, (np.inf, 0.0, 0.0)), good)
    agent.reset(goal_at(TARGET), good, seed=0)
    for bad, message in ((nan_state, "observation state must be finite"),
                         ({**good, "image": good["image"].astype(np.float32)}, "observation image must be a uint8"),
                         ({"image": good["image"]}, "an observation must be a mapping with 'image' and 'state'")):
        with pytest.raises(ValueError, match=message):
            agent.act(bad)
    assert model.calls["rollout"] == 0  # nothing was planned from them
    assert np.isfinite(agent.act(good).action).all()


def test_a_plan_whose_cost_is_not_finite_is_never_executed() -> None:
    model = FakeModel(rollout_fn=lambda actions: torch.full((actions.shape[0], 1, 4, 3), float("nan")))
    agent = make_agent(model)
    agent.reset(goal_at(TARGET), point_obs(START), seed=0)
    with pytest.raises(NonFiniteCostError, match="every candidate plan's cost was NaN or inf"):
        agent.act(point_obs(START))
