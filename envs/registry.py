"""Task registry: one name per task, shared by :func:`envs.make` and ``gymnasium.make``.

Every task is registered twice under the same short name:

>>> import envs, gymnasium
>>> env = envs.make("pick_place", image_size=64)
>>> env = gymnasium.make("jepa_wm/pick_place-v0", image_size=64)

Entry points are strings, so heavy back-ends (robosuite) are imported only when
their task is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

NAMESPACE = "jepa_wm"
VERSION = 0

# How each backend's robot state (xyz, Euler angles, finger opening) follows an action, for
# world-model rollouts (jepa_wm.state_integration): the gantry arm's wrist joints are its Euler
# angles (added) and it opens 2 x 4.5 cm; robosuite's OSC composes rotations, the Panda opens 8 cm.
ROBOT_STATE_RULES: dict[str, dict[str, Any]] = {
    "mujoco": {"rotation": "add", "gripper_open": 0.09},
    "robosuite": {"rotation": "compose", "gripper_open": 0.08},
}


@dataclass(frozen=True)
class TaskSpec:
    """What :func:`register` needs to know about one task.

    Args:
        name: short task name, e.g. ``"pick_place"``.
        entry_point: ``"module.path:ClassName"`` of the environment class.
        max_episode_steps: time limit applied by gymnasium's ``TimeLimit`` wrapper.
        kwargs: default constructor arguments (callers may override them).
        backend: ``"mujoco"`` for our own tasks, ``"robosuite"`` for robosuite-backed ones.
    """

    name: str
    entry_point: str
    max_episode_steps: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    backend: str = "mujoco"

    def __post_init__(self) -> None:
        if ":" not in self.entry_point:
            raise ValueError(f"entry_point must look like 'module:Class', got {self.entry_point!r}")
        if self.max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be positive, got {self.max_episode_steps}")
        if self.backend not in ("mujoco", "robosuite"):
            raise ValueError(f"backend must be 'mujoco' or 'robosuite', got {self.backend!r}")

    @property
    def gym_id(self) -> str:
        """The gymnasium id, e.g. ``"jepa_wm/pick_place-v0"``."""
        return f"{NAMESPACE}/{self.name}-v{VERSION}"


_TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> None:
    """Register ``spec`` with this registry and with gymnasium."""
    if spec.name in _TASKS:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    gym.register(
        id=spec.gym_id,
        entry_point=spec.entry_point,
        max_episode_steps=spec.max_episode_steps,
        kwargs=dict(spec.kwargs),
        # gymnasium's passive checker breaks an env for good when its first reset raises (its first step
        # then unpacks None); every task passes gymnasium's full check_env in tests/envs instead
        disable_env_checker=True,
    )


def registered_tasks(backend: str | None = None) -> list[str]:
    """Names of all registered tasks (optionally only those of one ``backend``), sorted."""
    return sorted(n for n, s in _TASKS.items() if backend is None or s.backend == backend)


def task_spec(name: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``name``; raises ``ValueError`` listing the known names."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(registered_tasks())}")
    return _TASKS[name]


def robot_state_rule(name: str) -> dict[str, Any]:
    """How the robot state of task ``name`` follows an action (:data:`ROBOT_STATE_RULES` of its backend)."""
    return dict(ROBOT_STATE_RULES[task_spec(name).backend])


def make(name: str, **kwargs: Any) -> gym.Env:
    """Make the task ``name`` (wrapped in gymnasium's ``TimeLimit``, like ``gymnasium.make``).

    Args:
        name: a registered task name (see :func:`registered_tasks`).
        **kwargs: constructor arguments, e.g. ``image_size=64, camera="front"``;
            ``max_episode_steps`` overrides the registered time limit.
    """
    return gym.make(task_spec(name).gym_id, **kwargs)


def make_from_config(task: Mapping[str, Any], **overrides: Any) -> gym.Env:
    """Make a task from a ``configs/task/*.yaml`` mapping: ``name`` plus env arguments.

    Arguments set to ``None`` keep the task's default; ``overrides`` replace any argument.
    """
    if "name" not in task:
        raise ValueError(f"a task config needs a 'name', got keys {sorted(task)}")
    kwargs = {k: v for k, v in task.items() if k != "name" and v is not None}
    return make(task["name"], **{**kwargs, **overrides})
