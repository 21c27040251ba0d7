"""Receding-horizon control: plan, execute the first action(s), shift the plan, re-plan.

Generic over observations and goals: :class:`MPC` takes a planner and a
``make_cost(obs, goal) -> cost_fn`` callable (for the world model: the cost terms over its
rollouts from ``obs`` toward the goal stage; see :mod:`jepa_wm.planning.costs`), and
its goals come from a :class:`~planners.subgoals.SubgoalSchedule`. Nothing here imports a
simulator or a model.

>>> mpc = MPC(planner, make_cost, MPCConfig(execute_steps=1))
>>> mpc.reset(SubgoalSchedule([goal]))
>>> log = mpc.run(obs, env.step, max_steps=50)   # or call mpc.act(obs) in your own loop

The energy that drives the sub-goal threshold is ``energy_fn(obs, goal)`` at each new
observation when given (for the world model: the latent distance of the encoded observation to
the goal latent), else the cost of the last plan, i.e. the *predicted* energy at the end of the
plan, which matches the observation only with horizon-1 plans (as V-JEPA 2-AC plans).

Time: a planner's ``time_budget_s`` bounds its :meth:`~planners.protocols.Planner.plan` call
only. :meth:`MPC.act` also computes the observed energy (``energy_fn``: for the world model,
one encoder pass over the observation, twice the energy on a goal switch with a far planner)
and builds the cost, so an action takes the budget plus that; ``MPCLog.act_times_s`` holds
the whole. ``MPCConfig.time_per_action_s`` is a deadline for the whole :meth:`MPC.act` (a
control period): the planner gets what is left of it. When the time leaves no room to evaluate
even one candidate, the planner returns
its initial plan unevaluated (the warm start, else the default action); the loop executes it,
logs a warning, and its energy is ``inf`` in the log (the sub-goal threshold does not read it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from planners.base import check_positive_int, shift_plan
from planners.protocols import CostFunction, Planner
from planners.subgoals import SubgoalSchedule

logger = logging.getLogger(__name__)

Obs = TypeVar("Obs")
G = TypeVar("G")
WARM_START_FILLS: tuple[str, ...] = ("default", "last")


@dataclass(frozen=True)
class MPCConfig:
    """Receding-horizon settings.

    Args:
        execute_steps: actions executed from each plan before re-planning (``k``, at most
            the planner's horizon); V-JEPA 2-AC executes 1.
        warm_start: start each plan from the previous one shifted by ``k`` steps.
        warm_start_fill: how the shifted plan is padded at the end: ``"default"`` with the
            action space's default action (with horizon 1 this restarts from it, as the
            paper), ``"last"`` by repeating the plan's last action.
        arrival_energy: ``None`` (the paper's loop) or an energy ``e``: on the final goal,
            while the *observed* energy toward it (``energy_fn``) is below ``e``, the robot holds
            still (the action space's default action, binary dimensions such as the gripper as
            last executed) instead of planning: the goal counts as reached by the encoded
            observation, not by a prediction. Calibrate ``e`` on episodes other than the evaluation's
            (``jepa_wm.evaluation.arrival.calibrate_arrival_energy``).
        far_energy: ``None`` (one planner) or an energy ``e``: while the *observed* energy
            toward the current goal is above ``e``, plan with the MPC's ``far_planner`` (e.g. a
            longer horizon, to see past the flat energy far from the goal) and else with its
            planner (coarse to fine). A switch between the two drops the last plan (no warm
            start across planners).
        time_per_action_s: ``None`` or a deadline per :meth:`MPC.act` call (a control period):
            the planner gets what is left of it after the observed energy was computed and
            returns its best plan by then (the planner's own ``time_budget_s``, when also set,
            bounds the planning call alone).
    """

    execute_steps: int = 1
    warm_start: bool = True
    warm_start_fill: Literal["default", "last"] = "default"
    arrival_energy: float | None = None
    far_energy: float | None = None
    time_per_action_s: float | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.execute_steps, "execute_steps")
        for name in ("arrival_energy", "far_energy", "time_per_action_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"{name} must be None or a number > 0, got {value!r}")
        if self.warm_start_fill not in WARM_START_FILLS:
            raise ValueError(f"warm_start_fill must be one of {WARM_START_FILLS}, got {self.warm_start_fill!r}")


@dataclass
class MPCLog:
    """What happened in an episode, for plots and JSON.

    Per executed step: ``actions`` (each ``(A,)``), ``goal_indices``, ``act_times_s`` (wall
    time of :meth:`MPC.act`: the observed energy, the plan or the hold) and, with an
    ``energy_fn``, ``observed_energies`` of the observation the action was chosen at (toward
    the goal in force before any switch at that step). Per plan: ``plan_steps`` (the step it was made at),
    ``plan_times_s``, ``energies`` (the plan's cost), ``iterations``, ``timed_out``, ``evaluated``
    (candidates scored; 0: the time budget left room for none) and ``far`` (whether the far
    planner made it, see ``MPCConfig.far_energy``). Steps held because the
    goal counted as reached (``MPCConfig.arrival_energy``) make no plan; they are listed in
    ``arrived_steps``.
    """

    actions: list[np.ndarray] = field(default_factory=list)
    goal_indices: list[int] = field(default_factory=list)
    act_times_s: list[float] = field(default_factory=list)
    plan_steps: list[int] = field(default_factory=list)
    plan_times_s: list[float] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    observed_energies: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    timed_out: list[bool] = field(default_factory=list)
    evaluated: list[int] = field(default_factory=list)
    far: list[bool] = field(default_factory=list)
    arrived_steps: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy (actions as nested lists)."""
        out = asdict(self)
        out["actions"] = [a.tolist() for a in self.actions]
        return out


class MPC(Generic[Obs, G]):
    """Model-predictive control loop around a planner.

    Args:
        planner: any :class:`~planners.protocols.Planner`.
        make_cost: ``(obs, goal) -> cost_fn`` for the current observation and goal.
        config: receding-horizon settings.
        energy_fn: optional ``(obs, goal) -> float``, the energy of an observation toward a
            goal, used by the sub-goal threshold and logged per step as ``observed_energies``.
        far_planner: the planner used while the observed energy is above
            ``config.far_energy`` (required with it, refused without it); same action space.
    """

    def __init__(self, planner: Planner, make_cost: Callable[[Obs, G], CostFunction],
                 config: MPCConfig = MPCConfig(), energy_fn: Callable[[Obs, G], float] | None = None,
                 far_planner: Planner | None = None) -> None:
        for name, p in (("planner", planner), ("far_planner", far_planner)):
            if p is not None and config.execute_steps > p.horizon:
                raise ValueError(f"execute_steps ({config.execute_steps}) must be <= the {name}'s "
                                 f"horizon ({p.horizon})")
        for name in ("arrival_energy", "far_energy"):
            if getattr(config, name) is not None and energy_fn is None:
                raise ValueError(f"MPCConfig.{name} needs an energy_fn (the observed energy toward the goal)")
        if (config.far_energy is None) != (far_planner is None):
            raise ValueError("MPCConfig.far_energy and far_planner go together: got far_energy="
                             f"{config.far_energy!r} and {'a' if far_planner else 'no'} far_planner")
        if far_planner is not None and far_planner.action_space != planner.action_space:
            raise ValueError(f"far_planner must plan in the planner's action space {planner.action_space}, "
                             f"got {far_planner.action_space}")
        self.near_planner = planner
        self.far_planner = far_planner
        self.planner = planner  # the one in use
        self.make_cost = make_cost
        self.config = config
        self.energy_fn = energy_fn
        self.log = MPCLog()
        self._schedule: SubgoalSchedule[G] | None = None
        self._queue: list[Tensor] = []
        self._last_plan: Tensor | None = None  # (H, A)
        self._last_energy: float | None = None
        self._executed = 0  # actions taken from the last plan
        self._steps = 0
        self._device = torch.device("cpu")  # where plans are made (holds are built there too)

    def reset(self, schedule: SubgoalSchedule[G], seed: int | None = None) -> None:
        """Start an episode toward the goals of ``schedule`` (a single goal: ``SubgoalSchedule([g])``)."""
        if not isinstance(schedule, SubgoalSchedule):
            raise TypeError(f"schedule must be a SubgoalSchedule, got {type(schedule).__name__}")
        schedule.reset()
        self._schedule = schedule
        self.planner = self.near_planner
        for planner in (self.near_planner, self.far_planner):
            if planner is not None:
                planner.reset(seed)
        self.log = MPCLog()
        self._queue, self._last_plan, self._last_energy = [], None, None
        self._executed = self._steps = 0

    @property
    def last_plan(self) -> Tensor | None:
        """The latest plan ``(H, A)``; ``None`` before the first and after a switch or an arrival hold."""
        return self._last_plan

    @property
    def steps(self) -> int:
        """Steps executed since :meth:`reset`."""
        return self._steps

    def _replan(self, obs: Obs, deadline: float | None) -> None:
        assert self._schedule is not None
        init = None
        if self._last_plan is not None:
            self.planner.advance(self._executed)
            if self.config.warm_start:
                fill = (self.planner.action_space.default_action(self._last_plan.device)
                        if self.config.warm_start_fill == "default" else None)
                init = shift_plan(self._last_plan, self._executed, fill)  # (H, A)
        cost_fn = self.make_cost(obs, self._schedule.goal)
        result = self.planner.plan(cost_fn, init_mean=init, deadline=deadline)
        plan, cost = result.actions, result.cost  # (H, A)
        unevaluated = result.timed_out and result.evaluated == 0
        if unevaluated:
            logger.warning("step %d: the time left to plan is below the time of one cost evaluation: executing "
                           "the initial plan unevaluated (raise time_budget_s or time_per_action_s)", self._steps)
        self._device = plan.device
        self._last_plan, self._executed = plan, 0
        self._last_energy = None if unevaluated else cost  # unknown, not infinitely bad
        self._queue = list(plan[: self.config.execute_steps])
        log = self.log
        log.plan_steps.append(self._steps)
        log.plan_times_s.append(result.elapsed_s)
        log.energies.append(cost)
        log.iterations.append(result.iterations)
        log.timed_out.append(result.timed_out)
        log.evaluated.append(result.evaluated)
        log.far.append(self.planner is self.far_planner)
        logger.debug("step %d goal %d: energy %.5g in %.3f s", self._steps, self._schedule.index,
                     cost, result.elapsed_s)

    def _hold_action(self, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        """Holding still for one step ``(A,)``: the action space's default action, binary
        dimensions as last executed (before any action: as the default action executes them)."""
        space = self.planner.action_space
        default = space.expand(space.reduce(space.default_action(device, dtype)))  # (A,)
        if self.log.actions and space.binary_dims:
            dims = list(space.binary_dims)
            last = torch.as_tensor(self.log.actions[-1], device=device, dtype=dtype)
            default[dims] = last[dims]
        return default

    def _drop_plan(self) -> None:
        """Forget the last plan: the next one starts afresh, not warm-started from it."""
        self._queue, self._last_plan = [], None
        self.planner.reset()

    def _use_planner(self, energy: float | None) -> None:
        """Plan with the far planner while ``energy`` is above ``far_energy``, else with the
        planner; a change of planner drops the last plan."""
        far = self.config.far_energy
        planner = self.far_planner if far is not None and energy is not None and energy > far else self.near_planner
        if planner is not self.planner:
            if self._last_plan is not None:
                self._drop_plan()
            self.planner = planner

    def _arrived(self, energy: float | None) -> bool:
        """Whether the final goal counts as reached at an observation with ``energy``."""
        assert self._schedule is not None
        threshold = self.config.arrival_energy
        return threshold is not None and self._schedule.is_final and energy is not None and energy < threshold

    def _energy(self, obs: Obs) -> float | None:
        """Energy toward the current goal at ``obs`` (``energy_fn``, logged), else the last plan's cost."""
        assert self._schedule is not None
        if self.energy_fn is None:
            return self._last_energy
        energy = float(self.energy_fn(obs, self._schedule.goal))
        self.log.observed_energies.append(energy)
        return energy

    def act(self, obs: Obs) -> Tensor:
        """The next action ``(A,)`` for ``obs``; each call counts as one executed step.

        Re-plans when the actions of the last plan are used up, and moves to the next goal
        when the schedule says so (then the remaining actions are dropped and the plan is
        not warm-started, since it aimed at the old goal). On the final goal, while the
        observed energy is below ``MPCConfig.arrival_energy``, it holds still without planning.
        """
        schedule = self._schedule
        if schedule is None:
            raise RuntimeError("call MPC.reset(schedule) before MPC.act")
        start = time.perf_counter()
        per_action = self.config.time_per_action_s
        deadline = None if per_action is None else start + per_action
        energy = self._energy(obs)
        switched = self._steps > 0 and schedule.update(energy)
        if switched:
            logger.info("step %d: switching to goal %d", self._steps, schedule.index)
            self._drop_plan()
        if not switched and self._arrived(energy):  # after a switch, energy is toward the old goal
            if self._last_plan is not None:  # leaving the goal later starts a fresh plan
                self._drop_plan()
            self.log.arrived_steps.append(self._steps)
            action = self._hold_action(self._device)  # (A,)
        else:
            if switched and self.far_planner is not None:  # the logged energy was toward the old goal
                energy = float(self.energy_fn(obs, schedule.goal))
            self._use_planner(energy)
            if not self._queue:
                self._replan(obs, deadline)
            action = self._queue.pop(0)
            self._executed += 1
        self._steps += 1
        self.log.actions.append(action.detach().cpu().numpy())
        self.log.goal_indices.append(schedule.index)
        self.log.act_times_s.append(time.perf_counter() - start)
        return action

    def run(self, obs: Obs, step_fn: Callable[[np.ndarray], tuple[Obs, Any, bool, bool, Any]],
            max_steps: int, progress: bool = False, desc: str = "MPC") -> MPCLog:
        """Run the loop for up to ``max_steps`` steps from ``obs``.

        Args:
            obs: the first observation (after ``reset``).
            step_fn: gymnasium-style ``step(action) -> (obs, reward, terminated, truncated,
                info)`` taking a float32 numpy action ``(A,)``. Reward and info are ignored
                (planners must not read privileged information); the loop stops when
                ``terminated or truncated``.
            max_steps: most steps to run.
            progress: show a tqdm progress bar (labelled ``desc``).

        Returns:
            The episode's :class:`MPCLog` (also at ``self.log``).
        """
        check_positive_int(max_steps, "max_steps")
        for _ in tqdm(range(max_steps), desc=desc, disable=not progress):
            action = self.act(obs).detach().to("cpu", torch.float32).numpy()
            obs, _reward, terminated, truncated, _info = step_fn(action)
            if terminated or truncated:
                break
        return self.log

