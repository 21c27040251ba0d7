"""The robosuite tasks: which robosuite environment, which object moves, and where it goes.

Each class is a registered task (see :mod:`envs.robosuite_tasks`); everything else lives
in :class:`~envs.robosuite_tasks.wrapper.RobosuiteTaskEnv`.
"""

from __future__ import annotations

import numpy as np

from envs.robosuite_tasks.experts import ExpertSettings
from envs.robosuite_tasks.wrapper import RobosuiteTaskEnv


class RobosuiteLift(RobosuiteTaskEnv):
    """robosuite ``Lift``: lift the red cube more than 4 cm off the table."""

    task_name = "robosuite_lift"
    robosuite_env = "Lift"
    instruction = "lift the red cube"
    expert_settings = ExpertSettings(lift=0.10)
    goal_phases = {"done": "final"}

    def _object_bodies(self) -> tuple[int, ...]:
        return (self._sim_env.cube_body_id,)

    def place_target(self) -> np.ndarray | None:
        return None


class RobosuiteStack(RobosuiteTaskEnv):
    """robosuite ``Stack``: put the red cube on the green cube and let go of it."""

    task_name = "robosuite_stack"
    robosuite_env = "Stack"
    instruction = "stack the red cube on the green cube"
    expert_settings = ExpertSettings(lift=0.10, carry_clearance=0.04, place_clearance=0.01)
    goal_phases = {"carry": "grasped", "place": "above_target", "done": "final"}

    def _object_bodies(self) -> tuple[int, ...]:
        return (self._sim_env.cubeA_body_id, self._sim_env.cubeB_body_id)

    def place_target(self) -> np.ndarray:
        """The red cube's centre resting on top of the green cube ``(3,)``."""
        env = self._sim_env
        on_top = env.cubeB.size[2] + env.cubeA.size[2]  # half-heights
        return np.array(env.sim.data.body_xpos[env.cubeB_body_id]) + np.array([0.0, 0.0, on_top])


class RobosuitePickPlaceCan(RobosuiteTaskEnv):
    """robosuite ``PickPlaceCan``: move the can from the left bin into its compartment of the right bin."""

    task_name = "robosuite_pick_place_can"
    robosuite_env = "PickPlaceCan"
    instruction = "put the can in the bin"
    expert_settings = ExpertSettings(
        hover=0.10, lift=0.15, carry_clearance=0.08, place_clearance=0.02, yaw_symmetry=None
    )
    goal_phases = {"carry": "grasped", "place": "above_target", "done": "final"}

    def _object_bodies(self) -> tuple[int, ...]:
        env = self._sim_env
        return (env.obj_body_id[env.obj_to_use],)

    def place_target(self) -> np.ndarray:
        """The can's centre standing in the middle of its target compartment ``(3,)``."""
        env = self._sim_env
        floor = env.target_bin_placements[env.object_id]  # (x, y, z) of the compartment's floor
        return floor - env.objects[env.object_id].bottom_offset
