"""Planning with a perfect model and a perfect object cost: the planner's own bound on a task.

:class:`~jepa_wm.diagnostics.simulator.SimulatorModel` replaces the predictor by the simulator but keeps
the encoder's latent energy; :class:`ObjectStateCost` replaces both: each candidate action
sequence is executed in the simulator (state saved and restored) and charged the TRUE distance,
in the table plane, from the task's object to its target pad after the last action, plus two
small terms that lead the hand to the object (its distance to the object in the plane, and its
height above or below the object's centre). :func:`plan_with_true_state` runs the same
:class:`planners.MPC` loop as ``plan.py`` with it. What it solves tells how far the planner, its
horizon and its sample budget can go on the task; what it does not, no world model fixes.
Privileged (it reads and steps the simulator per candidate): a diagnostic
(``experiments/privileged_bounds.py``), never a policy.

Needs a tabletop task with an object and a target pad (``push``, ``pick_place``,
``pick_place_multi``); pick-and-place also needs a grasp, which this cost does not ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from jepa_wm.diagnostics.simulator import candidates_from_here
from jepa_wm.plugins.object_model.model import object_cost
from planners import MPC, MPCConfig, Planner, SubgoalSchedule


class ObjectStateCost:
    """Candidate actions scored in the simulator by where they put the object.

    Args:
        env: the episode's tabletop env (``env.unwrapped`` needs ``sim``, ``sim_state`` and
            ``set_sim_state``, a cube and a pad).
        contact_weight: cost per metre between the grip site and the object in the table plane.
        height_weight: cost per metre between the grip site's height and the object centre's.

    :meth:`cost` of actions ``(B, H, A)`` is ``d(object, pad) + contact_weight * d(hand, object)
    + height_weight * |z_hand - z_object|`` (metres, distances in the table plane) after each
    candidate's last action, ``(B,)``; :meth:`make_cost` hands it to :class:`planners.MPC`.
    """

    def __init__(self, env: gym.Env, contact_weight: float = 0.1, height_weight: float = 0.3) -> None:
        task = env.unwrapped
        missing = [name for name in ("sim", "sim_state", "set_sim_state", "cubes", "pads") if not hasattr(task, name)]
        if missing:
            raise TypeError(f"ObjectStateCost needs a tabletop env with {', '.join(missing)}; "
                            f"{type(task).__name__} lacks them")
        if not task.cubes or not task.pads:
            raise ValueError(f"ObjectStateCost needs a task with a cube and a target pad; {task.task_name!r} has "
                             f"cubes {list(task.cubes)} and pads {list(task.pads)}")
        if contact_weight < 0 or height_weight < 0:
            raise ValueError(f"contact_weight and height_weight must be >= 0, got {contact_weight}, {height_weight}")
        self.task = task
        self.object = getattr(task, "object", task.cubes[0])
        self.target = getattr(task, "target", task.pads[0])
        self.contact_weight, self.height_weight = contact_weight, height_weight

    def make_cost(self, obs: Mapping[str, np.ndarray], goal: object = None) -> Callable[[Tensor], Tensor]:
        """:meth:`cost`, from the simulator's current state (``obs`` and ``goal`` are not read: the
        state and the target pad are the simulator's own)."""
        return self.cost

    def state_cost(self) -> float:
        """The cost of the simulator's current state (metres)."""
        sim = self.task.sim
        positions = (sim.cube_pos(self.object), sim.ee_pos, sim.pad_pos(self.target))
        obj, hand, pad = (torch.from_numpy(position) for position in positions)
        return float(object_cost(obj[:2], obj[2], hand, pad[:2], self.contact_weight, self.height_weight))

    def cost(self, actions: Tensor) -> Tensor:
        """Execute each candidate ``(B, H, A)`` from the current state and score where it ends, ``(B,)``.

        The simulator is back in its starting state afterwards.
        """
        costs = []
        for sequence in candidates_from_here(self.task, actions):
            for action in sequence:
                self.task.sim.step(action)  # physics only: no frame is rendered
            costs.append(self.state_cost())
        return torch.tensor(costs, dtype=actions.dtype, device=actions.device)


def plan_with_true_state(env: gym.Env, planner: Planner, seed: int, *, contact_weight: float = 0.1,
                         height_weight: float = 0.3, max_steps: int | None = None) -> np.ndarray:
    """Run one episode of MPC (execute the first action, warm-start, re-plan) with :class:`ObjectStateCost`.

    Args:
        env: a tabletop task env with a cube and a pad; reset here with ``seed``.
        planner: any planner of :mod:`planners` (its horizon and budget are what is measured).
        seed: the episode's env seed (the planner is reset with it too).
        contact_weight, height_weight: :class:`ObjectStateCost`'s weights.
        max_steps: steps to run; ``None``: the env's time limit.

    Returns:
        The executed actions, float32 ``(T, A)`` (replay them with
        :func:`jepa_wm.evaluation.replay.replay_episode` to measure the episode).

    Raises:
        ValueError: no step limit, or a task without a cube and a pad.
        TypeError: an env that cannot save and restore its simulator state.
    """
    limit = max_steps or (env.spec.max_episode_steps if env.spec else None)
    if not limit:
        raise ValueError("plan_with_true_state needs max_steps or an env with a time limit")
    obs, _info = env.reset(seed=seed)
    costs = ObjectStateCost(env, contact_weight, height_weight)
    mpc = MPC(planner, costs.make_cost, MPCConfig(execute_steps=1, warm_start=True))
    mpc.reset(SubgoalSchedule([costs.target]), seed=seed)
    log = mpc.run(obs, env.step, max_steps=limit)
    return np.stack(log.actions).astype(np.float32)
