"""Propagate the 7-D robot state through planned actions, for rollouts beyond one step.

The predictor reads the state at every step, but during a rollout only the current state is
observed. As V-JEPA 2-AC's planner (``compute_new_pose``), the state of step ``k + 1`` is the
state of step ``k`` moved by action ``k``:

* position: ``xyz + action[:3] * pos_scale`` (actions are in units of
  ``envs.interface.POS_SCALE`` metres, states in metres);
* orientation: the delta rotation ``action[3:6] * rot_scale`` radians (extrinsic ``xyz``
  Euler angles) is composed in the world frame, ``R_{k+1} = R(delta) R_k`` (``"compose"``,
  the paper's rule and robosuite's OSC controller), or the Euler angles are added
  (``"add"``, exact for the gantry arm whose wrist joints are the Euler angles);
* gripper: the command is absolute (-1 open, +1 closed), so the new opening is the one it
  commands, interpolated linearly between ``gripper_open`` and ``gripper_closed`` metres.
  A grasped object stops the fingers earlier; the model then sees a slightly smaller opening
  than the real one.

Everything is differentiable torch, batched over leading dimensions (gradient planners need
d(state)/d(action)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

Rotation = Literal["compose", "add"]
ROTATION_RULES: tuple[str, ...] = ("compose", "add")


def euler_xyz_to_matrix(angles: Tensor) -> Tensor:
    """Extrinsic ``xyz`` Euler angles (..., 3) -> rotation matrices (..., 3, 3) = Rz Ry Rx."""
    cx, cy, cz = angles.cos().unbind(-1)
    sx, sy, sz = angles.sin().unbind(-1)
    rows = (
        (cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx),
        (sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx),
        (-sy, cy * sx, cy * cx),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)  # (..., 3, 3)


def matrix_to_euler_xyz(matrix: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) -> extrinsic ``xyz`` Euler angles (..., 3), pitch in [-pi/2, pi/2]."""
    pitch = torch.asin((-matrix[..., 2, 0]).clamp(-1.0, 1.0))
    roll = torch.atan2(matrix[..., 2, 1], matrix[..., 2, 2])
    yaw = torch.atan2(matrix[..., 1, 0], matrix[..., 0, 0])
    return torch.stack((roll, pitch, yaw), dim=-1)


@dataclass(frozen=True)
class StateIntegration:
    """How an action moves the state (see the module docstring).

    Args:
        pos_scale: metres per position action unit (``envs.interface.POS_SCALE``).
        rot_scale: radians per rotation action unit (``envs.interface.ROT_SCALE``).
        rotation: ``"compose"`` or ``"add"``.
        gripper_open: opening in metres commanded by -1 (the gantry arm: 0.09; Panda: 0.08).
        gripper_closed: opening in metres commanded by +1.
    """

    pos_scale: float = 0.05
    rot_scale: float = 0.5
    rotation: Rotation = "compose"
    gripper_open: float = 0.09
    gripper_closed: float = 0.0

    def __post_init__(self) -> None:
        if not self.pos_scale > 0 or not self.rot_scale > 0:
            raise ValueError(f"pos_scale and rot_scale must be > 0, got {self.pos_scale}, {self.rot_scale}")
        if self.rotation not in ROTATION_RULES:
            raise ValueError(f"rotation must be one of {ROTATION_RULES}, got {self.rotation!r}")
        if self.gripper_open < 0 or self.gripper_closed < 0:
            raise ValueError(
                f"gripper openings must be >= 0 m, got {self.gripper_open}, {self.gripper_closed}"
            )

    def __call__(self, states: Tensor, actions: Tensor) -> Tensor:
        """States (..., 7) after actions (..., 7): xyz, extrinsic xyz Euler angles, opening."""
        if states.shape[-1] != 7 or actions.shape[-1] != 7:
            raise ValueError(
                f"states and actions must end in 7 values, got {tuple(states.shape)}, {tuple(actions.shape)}"
            )
        xyz = states[..., :3] + actions[..., :3] * self.pos_scale  # (..., 3)
        delta = actions[..., 3:6] * self.rot_scale  # (..., 3) radians
        if self.rotation == "add":
            euler = states[..., 3:6] + delta
        else:
            rot = euler_xyz_to_matrix(delta) @ euler_xyz_to_matrix(states[..., 3:6])  # (..., 3, 3)
            euler = matrix_to_euler_xyz(rot)
        closedness = (actions[..., 6:7].clamp(-1.0, 1.0) + 1.0) / 2.0  # (..., 1) in [0, 1]
        opening = self.gripper_open + closedness * (self.gripper_closed - self.gripper_open)
        return torch.cat((xyz, euler, opening), dim=-1)  # (..., 7)


def integration_for_tasks(tasks: Sequence[str | None], **settings: Any) -> StateIntegration:
    """The rule of the robot that recorded ``tasks`` (:func:`envs.robot_state_rule`); ``settings``
    that are not None (``StateIntegration`` fields) override it.

    Args:
        tasks: the registered task of each data file (None: the file records none).
        settings: ``StateIntegration`` fields; None ones come from the tasks' robot.

    Raises:
        ValueError: a field is left to the robot but a task is unknown or unrecorded, or the
            tasks come from robots with different rules.
    """
    from envs import (  # envs registers its tasks on import
        registered_tasks,
        robot_state_rule,
    )

    explicit = {k: v for k, v in settings.items() if v is not None}
    needed = [k for k in ("rotation", "gripper_open") if k not in explicit]
    unknown = [t for t in dict.fromkeys(tasks) if t not in registered_tasks()]
    if needed and unknown:
        raise ValueError(f"data of unknown robots (tasks {unknown}; known: {registered_tasks()}): set "
                         f"{', '.join(f'state_integration.{k}' for k in needed)}")
    merged: dict[str, Any] = {}
    for task in dict.fromkeys(tasks):
        for key in needed:
            value = robot_state_rule(task)[key]
            if key in merged and merged[key] != value:
                raise ValueError(f"the data's tasks {list(dict.fromkeys(tasks))} come from robots with different "
                                 f"state rules ({key}: {merged[key]!r} vs {value!r} for {task!r}); "
                                 f"set state_integration.{key}")
            merged[key] = value
    return StateIntegration(**{**merged, **explicit})
