"""Our own MuJoCo tabletop tasks, registered with :mod:`envs.registry` on import.

========================  ==========  =====================================================
task                      steps/ep.   instruction (example)
========================  ==========  =====================================================
``reach``                 40          move the gripper to the red marker
``push``                  80          push the red cube onto the blue pad
``pick_place``            80          put the red cube on the blue pad
``pick_place_multi``      100         put the green cube on the yellow pad
========================  ==========  =====================================================
"""

from __future__ import annotations

from envs.registry import TaskSpec, register
from envs.tasks.pick_place import PickPlaceEnv
from envs.tasks.pick_place_multi import PickPlaceMultiEnv
from envs.tasks.push import PushEnv
from envs.tasks.reach import ReachEnv

for _env in (ReachEnv, PushEnv, PickPlaceEnv, PickPlaceMultiEnv):
    register(
        TaskSpec(
            name=_env.task_name,
            entry_point=f"{_env.__module__}:{_env.__name__}",
            max_episode_steps=_env.max_episode_steps,
            backend="mujoco",
        )
    )
