"""The planning agent: a world model, a cost and a planner behind the step API a robot loop calls.

>>> agent = MPCAgent(model, planner, cost, EnergySettings("l1", (1, 3)), MPCConfig(arrival_energy=0.025))
>>> agent.reset(goal, obs, seed=1000000)
>>> while not done:
...     step = agent.act(obs)            # step.action (A,), step.plan (H, A), step.energy, step.time_s
...     obs, reward, terminated, truncated, info = env.step(step.action)

Each :meth:`MPCAgent.act` is one receding-horizon step (:class:`planners.MPC`): the observed energy
toward the goal stage in force, a stage switch when the schedule says so, then a hold on arrival
or the next action of a plan that minimises the :class:`~jepa_wm.planning.costs.WeightedSum` of
the cost terms over the world model's rollouts. Everything carried between steps (warm start,
stage, arrival, the world model's filters) lives in the agent.
"""

from __future__ import annotations

import math
import time

import torch

from jepa_wm.planning.costs import BoundCost, EnergySettings, WeightedSum
from jepa_wm.protocols import AgentStep, CostModel, Goal, Observation, check_observation
from planners.mpc import MPC, MPCConfig, MPCLog
from planners.protocols import Planner
from planners.subgoals import SubgoalSchedule


class NonFiniteCostError(RuntimeError):
    """Every candidate the planner scored had a NaN or infinite cost: there is no plan to execute."""


class MPCAgent:
    """Latent MPC toward a :class:`~jepa_wm.protocols.Goal` (:class:`jepa_wm.protocols.Agent`).

    Args:
        model: the world model the cost rolls candidates out with.
        planner: any planner.
        cost: the cost terms' weighted sum.
        energy: the observed energy toward a stage (its latent distance to the encoded observation),
            which the schedule's thresholds, the arrival hold and the far planner read.
        mpc: receding-horizon settings.
        far_planner: the planner used while the observed energy is above ``mpc.far_energy``.
    """

    def __init__(self, model: CostModel, planner: Planner, cost: WeightedSum, energy: EnergySettings = EnergySettings(),
                 mpc: MPCConfig = MPCConfig(), far_planner: Planner | None = None) -> None:
        self.model, self.cost, self.energy = model, cost, energy
        self.mpc = MPC(planner, self._make_cost, mpc, energy_fn=self._observed_energy, far_planner=far_planner)
        self.goal: Goal | None = None

    @property
    def log(self) -> MPCLog:
        """The episode so far: actions, stages, energies, plans, timings."""
        return self.mpc.log

    def reset(self, goal: Goal, obs: Observation, seed: int | None = None) -> None:
        """Start an episode toward ``goal`` at the first observation ``obs``; ``seed`` reseeds the planner.

        Raises:
            ValueError: ``obs`` is not an observation with a finite state, or the goal's latents are not finite.
        """
        check_observation(obs)
        if not torch.isfinite(goal.latents).all():
            bad = [name for name, z in zip(goal.names, goal.latents, strict=True) if not torch.isfinite(z).all()]
            raise ValueError(f"the goal's latents are not finite (stages {bad}): a NaN goal image or world model?")
        self.goal = goal
        self.model.reset()
        self.cost.reset(goal, self.model)
        self.mpc.reset(SubgoalSchedule(list(range(len(goal.names))), goal.schedule), seed=seed)

    def act(self, obs: Observation) -> AgentStep:
        """The action for ``obs``, with what it came from.

        Raises:
            ValueError: ``obs`` is not an observation with a finite state (nothing is planned).
            NonFiniteCostError: every candidate's cost was NaN or inf (no action is returned; a plan the
                time budget left unevaluated is executed, see :mod:`planners.mpc`).
        """
        if self.goal is None:
            raise RuntimeError("call MPCAgent.reset(goal, obs) before act")
        start = time.perf_counter()
        check_observation(obs)
        log = self.mpc.log
        plans_before, step = len(log.plan_steps), self.mpc.steps
        action = self.mpc.act(obs).detach().to("cpu", torch.float32).numpy()  # (A,)
        planned = len(log.plan_steps) > plans_before
        if planned and log.evaluated[-1] > 0 and not math.isfinite(log.energies[-1]):
            raise NonFiniteCostError(f"step {step}: every candidate plan's cost was NaN or inf (the world model's "
                                     f"predictions are not finite?); no action was executed")
        return AgentStep(
            action=action,
            plan=self.mpc.last_plan if planned else None,
            cost=log.energies[-1] if planned else None,
            energy=log.observed_energies[-1],  # the agent's MPC always has an energy_fn: one per step
            goal_index=log.goal_indices[-1],
            arrived=bool(log.arrived_steps) and log.arrived_steps[-1] == step,
            time_s=time.perf_counter() - start,
        )

    def _make_cost(self, obs: Observation, stage: int) -> BoundCost:
        assert self.goal is not None
        return self.cost.bind(self.model, obs, self.goal, stage)

    def _observed_energy(self, obs: Observation, stage: int) -> float:
        assert self.goal is not None
        return float(self.energy(self.model.encode(obs)[None], self.goal.latents[stage])[0])
