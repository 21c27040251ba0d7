"""A scripted pick-and-place expert that reads the true simulator state.

One state machine serves lifting, stacking and pick-and-place. It moves the gripper straight
down over the object (turned to the object's faces when the object has a yaw symmetry),
closes, lifts, and, when the task has a place target, carries the object over it, lowers it,
lets go and backs off upwards:

    approach -> descend -> grasp -> lift -> carry -> place -> release -> retreat -> done

Lift-only tasks go ``lift -> done`` and keep holding. If the object leaves the gripper while
it is carried, the expert starts again at ``approach``.

Actions follow :mod:`envs.interface`: delta position in units of ``POS_SCALE`` metres,
delta orientation as extrinsic ``xyz`` Euler angles of ``R_target R_current^T`` in units of
``ROT_SCALE`` radians, gripper -1 open / +1 closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from envs.interface import ACTION_DIM, POS_SCALE, ROT_SCALE

logger = logging.getLogger(__name__)

PHASES = ("approach", "descend", "grasp", "lift", "carry", "place", "release", "retreat", "done")

# End-effector body frame of a gripper pointing straight down, fingers closing along world y.
_DOWN = np.diag([1.0, -1.0, -1.0])
_OPEN, _CLOSED = -1.0, 1.0


class PickPlaceScene(Protocol):
    """What the expert reads from the simulator (privileged, true state)."""

    def eef_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position ``(3,)`` and rotation matrix ``(3, 3)`` in the world frame."""
        ...

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Position ``(3,)`` and rotation matrix ``(3, 3)`` of the object to pick up."""
        ...

    def place_target(self) -> np.ndarray | None:
        """Where the object's centre rests once placed ``(3,)``; ``None`` for lift-only tasks."""
        ...


@dataclass(frozen=True)
class ExpertSettings:
    """Distances (metres) and durations (steps) of the scripted expert.

    Args:
        hover: height of the gripper above the object centre before descending.
        grasp_offset: gripper height relative to the object centre when closing.
        lift: how far the object is lifted above where it was grasped.
        carry_clearance: minimum height of the object above its place target while carrying.
        place_clearance: height above its resting place at which the object is let go.
        retreat: how far the gripper backs off upwards after letting go.
        yaw_symmetry: the object's yaw symmetry in radians (``pi / 2`` for a cube); the
            gripper turns to the nearest face. ``None`` for round objects (no turning).
        grasp_steps: steps spent closing the gripper.
        release_steps: steps spent opening the gripper (also before descending).
        tolerance: position error at which a move counts as reached.
        yaw_tolerance: yaw error (radians) at which the gripper counts as turned.
        lost_distance: gripper-object distance at which a carried object counts as dropped.
        min_progress: a move that has not come closer to its target by this much (metres)
            for ``stall_steps`` steps counts as stuck (e.g. at the edge of the arm's reach)
            and ends.
        stall_steps: see ``min_progress``.
        phase_timeout: steps after which a move that has not converged moves on anyway.
    """

    hover: float = 0.08
    grasp_offset: float = 0.0
    lift: float = 0.10
    carry_clearance: float = 0.05
    place_clearance: float = 0.01
    retreat: float = 0.08
    yaw_symmetry: float | None = np.pi / 2
    grasp_steps: int = 8
    release_steps: int = 6
    tolerance: float = 0.01
    yaw_tolerance: float = 0.05
    lost_distance: float = 0.06
    min_progress: float = 1e-3
    stall_steps: int = 5
    phase_timeout: int = 60

    def __post_init__(self) -> None:
        for name in (
            "hover", "lift", "carry_clearance", "retreat", "tolerance", "yaw_tolerance", "lost_distance", "min_progress"
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ExpertSettings.{name} must be positive, got {getattr(self, name)}")
        if self.place_clearance < 0:
            raise ValueError(f"ExpertSettings.place_clearance must be >= 0, got {self.place_clearance}")
        if self.yaw_symmetry is not None and self.yaw_symmetry <= 0:
            raise ValueError(f"ExpertSettings.yaw_symmetry must be positive or None, got {self.yaw_symmetry}")
        for name in ("grasp_steps", "release_steps", "stall_steps", "phase_timeout"):
            if getattr(self, name) < 1:
                raise ValueError(f"ExpertSettings.{name} must be >= 1, got {getattr(self, name)}")


def rotation_action(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation part of an action turning ``current`` towards ``target`` (both ``(3, 3)``).

    Returns the extrinsic ``xyz`` Euler angles of ``target @ current.T`` in action units,
    clipped to [-1, 1], shape ``(3,)``.
    """
    euler = Rotation.from_matrix(target @ current.T).as_euler("xyz")
    return np.clip(euler / ROT_SCALE, -1.0, 1.0)


class ScriptedPickPlaceExpert:
    """The state machine of the module docstring, bound to one scene (see :class:`envs.interface.Expert`).

    Args:
        scene: the simulator view it reads.
        settings: distances and durations.
        noise: standard deviation of Gaussian noise (action units) added to the arm part of
            each action (the gripper command stays clean); 0 gives the clean expert.
        seed: seed of the noise generator.
    """

    def __init__(
        self, scene: PickPlaceScene, settings: ExpertSettings, noise: float = 0.0, seed: int | None = None
    ) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self._scene = scene
        self._settings = settings
        self._noise = float(noise)
        self._rng = np.random.default_rng(seed)
        self._phase = "approach"
        self._phase_steps = 0
        self._hold = np.zeros(3)  # gripper position held while grasping / releasing / done
        self._grasp_height = 0.0
        self._held_offset = np.zeros(3)  # gripper minus object position while holding it
        self._yaw_target = _DOWN
        self._closest = np.inf  # closest distance to the current move's target so far
        self._closest_step = 0  # phase step at which it was reached

    @property
    def phase(self) -> str:
        """The phase that produced the latest action (``"approach"`` before the first)."""
        return self._phase

    def act(self) -> np.ndarray:
        """The next action, float32 ``(7,)`` in [-1, 1]."""
        eef, eef_rot = self._scene.eef_pose()
        obj, obj_rot = self._scene.object_pose()
        self._update_phase(eef, eef_rot, obj, obj_rot)
        target, gripper = self._target(eef, obj)
        action = np.empty(ACTION_DIM)
        action[:3] = np.clip((target - eef) / POS_SCALE, -1.0, 1.0)
        action[3:6] = rotation_action(eef_rot, self._yaw_target)
        action[6] = gripper
        if self._noise > 0:
            action[:6] += self._rng.normal(0.0, self._noise, size=6)
        self._phase_steps += 1
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # --- phase logic -------------------------------------------------------------------

    def _enter(self, phase: str, eef: np.ndarray) -> None:
        logger.debug("expert: %s -> %s after %d steps", self._phase, phase, self._phase_steps)
        self._phase = phase
        self._phase_steps = 0
        self._hold = eef.copy()
        self._closest = np.inf
        self._closest_step = 0

    def _face_rotation(self, obj_rot: np.ndarray) -> np.ndarray:
        """Straight-down gripper rotation ``(3, 3)`` turned to the object's nearest face."""
        symmetry = self._settings.yaw_symmetry
        if symmetry is None:
            return _DOWN
        yaw = np.arctan2(obj_rot[1, 0], obj_rot[0, 0])
        yaw = (yaw + symmetry / 2) % symmetry - symmetry / 2
        return Rotation.from_euler("z", yaw).as_matrix() @ _DOWN

    def _update_phase(self, eef: np.ndarray, eef_rot: np.ndarray, obj: np.ndarray, obj_rot: np.ndarray) -> None:
        s = self._settings
        target, _ = self._target(eef, obj)
        distance = np.linalg.norm(target - eef)
        if distance < self._closest - s.min_progress:
            self._closest, self._closest_step = distance, self._phase_steps
        stalled = self._phase_steps - self._closest_step >= s.stall_steps
        # A move ends when it reached its target, got stuck, or took too long.
        reached = distance < s.tolerance or stalled or self._phase_steps >= s.phase_timeout
        phase = self._phase
        if phase in ("lift", "carry", "place") and np.linalg.norm(eef - self._held_offset - obj) > s.lost_distance:
            logger.debug("expert: object lost during %s, starting over", phase)
            self._enter("approach", eef)
        elif phase == "approach":
            self._yaw_target = self._face_rotation(obj_rot)
            turned = np.linalg.norm(rotation_action(eef_rot, self._yaw_target)) * ROT_SCALE < s.yaw_tolerance
            opened = self._phase_steps >= s.release_steps
            if (reached and turned and opened) or self._phase_steps >= s.phase_timeout:
                self._enter("descend", eef)
        elif phase == "descend" and reached:
            self._enter("grasp", eef)
        elif phase == "grasp" and self._phase_steps >= s.grasp_steps:
            self._grasp_height = eef[2]
            self._held_offset = eef - obj
            self._enter("lift", eef)
        elif phase == "lift" and reached:
            self._enter("carry" if self._scene.place_target() is not None else "done", eef)
        elif phase == "carry" and reached:
            self._enter("place", eef)
        elif phase == "place" and reached:
            self._enter("release", eef)
        elif phase == "release" and self._phase_steps >= s.release_steps:
            self._enter("retreat", eef)
        elif phase == "retreat" and reached:
            self._enter("done", eef)

    def _target(self, eef: np.ndarray, obj: np.ndarray) -> tuple[np.ndarray, float]:
        """Gripper target position ``(3,)`` and gripper command of the current phase."""
        s = self._settings
        phase = self._phase
        if phase == "approach":
            return obj + np.array([0.0, 0.0, s.hover]), _OPEN
        if phase == "descend":
            return obj + np.array([0.0, 0.0, s.grasp_offset]), _OPEN
        if phase == "grasp":
            return self._hold, _CLOSED
        if phase == "lift":
            return np.array([self._hold[0], self._hold[1], self._grasp_height + s.lift]), _CLOSED
        place = self._scene.place_target()
        if phase in ("carry", "place"):
            assert place is not None, "carry/place phases need a place target"
            held = eef - obj  # the object may have shifted in the fingers since it was lifted
            if phase == "carry":
                height = max(self._grasp_height + s.lift, place[2] + s.carry_clearance + held[2])
                return np.array([place[0] + held[0], place[1] + held[1], height]), _CLOSED
            return place + held + np.array([0.0, 0.0, s.place_clearance]), _CLOSED
        if phase == "release":
            return self._hold, _OPEN
        if phase == "retreat":
            return self._hold + np.array([0.0, 0.0, s.retreat]), _OPEN
        return self._hold, (_OPEN if place is not None else _CLOSED)  # done
