"""Scripted experts for the MuJoCo tabletop tasks: phase machines over true simulator state.

Every expert moves the commanded end-effector pose toward the current phase's waypoint at up
to one action unit per axis and step, keeps the hand level (roll = pitch = 0) and switches
phase when the measured pose gets there. Experts retry (go back to ``"approach"``) when the
object slips or misses the target, so noisy experts still finish most episodes.

Exploration noise is Gaussian in action units, temporally correlated (AR(1)) and added to the
clean action before clipping to ``[-1, 1]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from envs.interface import ACTION_DIM, POS_SCALE, ROT_SCALE
from envs.scene.arm import WORKSPACE_LOW
from envs.scene.props import CUBE_HALF
from envs.scene.sim import TabletopSim

HOVER_Z = 0.10  # m, grip-site height for moving above objects
LIFT_Z = 0.12  # m, height at which a grasped cube is carried
RETREAT_Z = 0.17  # m, where the open hand waits after placing (the cube stays in view)
ARRIVE_TOL = 0.012  # m, "at the waypoint" (loose enough to be met under exploration noise)
OPEN, CLOSED = -1.0, 1.0


class ExpertNoise:
    """AR(1) Gaussian noise with stationary standard deviation ``std`` (in action units).

    Args:
        std: standard deviation of every action component.
        correlation: lag-one autocorrelation in ``[0, 1)`` (0 gives white noise).
        rng: the generator all draws come from.
    """

    def __init__(self, std: float, correlation: float, rng: np.random.Generator) -> None:
        if std < 0:
            raise ValueError(f"noise std must be >= 0, got {std}")
        if not 0.0 <= correlation < 1.0:
            raise ValueError(f"noise correlation must be in [0, 1), got {correlation}")
        self.std, self.correlation, self._rng = std, correlation, rng
        self._value: np.ndarray | None = None

    def sample(self) -> np.ndarray:
        """The next noise vector, float64 ``(7,)``."""
        eps = self._rng.standard_normal(ACTION_DIM)
        if self._value is None:
            self._value = eps
        else:
            self._value = self.correlation * self._value + np.sqrt(1.0 - self.correlation**2) * eps
        return self.std * self._value


class ScriptedExpert(ABC):
    """Base class: :meth:`act` = clean action of the current phase + noise, clipped.

    Subclasses implement :meth:`_update_phase` (transitions, from the true state) and
    :meth:`_command` (waypoint position ``(3,)``, yaw, gripper command for the phase).
    """

    def __init__(self, sim: TabletopSim, noise: ExpertNoise | None, first_phase: str) -> None:
        self.sim = sim
        self._noise = noise
        self._phase = first_phase
        self._phase_steps = 0  # steps spent in the current phase

    @property
    def phase(self) -> str:
        """Name of the current phase (``"done"`` once the task is finished)."""
        return self._phase

    def act(self) -> np.ndarray:
        """The next action, float32 ``(7,)`` in ``[-1, 1]``."""
        self._update_phase()
        pos, yaw, grip = self._command()
        action = self._servo(pos, yaw, grip, self._speed())
        self._phase_steps += 1
        if self._noise is not None and self._noise.std > 0:
            action = action + self._noise.sample()
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _goto(self, phase: str) -> None:
        if phase != self._phase:
            self._phase, self._phase_steps = phase, 0

    def _speed(self) -> float:
        """Largest position action (per axis) in the current phase."""
        return 1.0

    def _servo(self, pos: np.ndarray, yaw: float, grip: float, speed: float) -> np.ndarray:
        """Action moving the commanded pose toward ``pos`` with the hand level at ``yaw``."""
        cmd = self.sim.commanded_pose  # (6,)
        move = (np.clip(pos, WORKSPACE_LOW, None) - cmd[:3]) / POS_SCALE
        move *= speed / max(speed, float(np.abs(move).max()))  # straight line, <= speed per axis
        turn = np.array([0.0, 0.0, yaw]) - cmd[3:]
        turn = np.clip((turn + np.pi) % (2 * np.pi) - np.pi, -ROT_SCALE, ROT_SCALE) / ROT_SCALE
        return np.concatenate([move, turn, [grip]])

    def _near(self, pos: np.ndarray, tol: float = ARRIVE_TOL) -> bool:
        return bool(np.linalg.norm(self.sim.ee_pos - pos) < tol)

    @abstractmethod
    def _update_phase(self) -> None:
        """Switch phase if the current one is finished (or failed), from the true state."""

    @abstractmethod
    def _command(self) -> tuple[np.ndarray, float, float]:
        """Waypoint ``(3,)``, hand yaw and gripper command of the current phase."""


class ReachExpert(ScriptedExpert):
    """Phases ``reach -> done``: move the grip site onto the marker, gripper open."""

    def __init__(self, sim: TabletopSim, noise: ExpertNoise | None, marker: str) -> None:
        super().__init__(sim, noise, "reach")
        self.marker = marker

    def _update_phase(self) -> None:
        goal = self.sim.marker_pos(self.marker)
        if self._phase == "reach" and self._near(goal):
            self._goto("done")
        elif self._phase == "done" and not self._near(goal, 0.02):
            self._goto("reach")

    def _command(self) -> tuple[np.ndarray, float, float]:
        return self.sim.marker_pos(self.marker), 0.0, OPEN


def grasp_yaw(cube_yaw: float) -> float:
    """Gripper yaw in ``[-pi/4, pi/4]`` that lines the fingers up with a cube's faces."""
    return float((cube_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


class PushExpert(ScriptedExpert):
    """Phases ``approach -> descend -> push -> retreat -> done`` with the gripper closed.

    The closed fingers go down behind the cube on the line from the target through the cube
    and push along that line (re-aimed every step); off the line, the expert re-approaches.
    """

    CONTACT = CUBE_HALF + 0.016  # m, pusher centre to cube centre while pushing
    BEHIND = CONTACT + 0.03  # m, where the pusher comes down behind the cube
    PUSH_Z = CUBE_HALF  # m, grip-site height while pushing
    DONE_TOL = 0.012  # m, cube centre to target when the push stops
    PUSH_SPEED = 0.5  # action units: push at 2.5 cm per step so the cube does not fly ahead

    def __init__(self, sim: TabletopSim, noise: ExpertNoise | None, cube: str, pad: str) -> None:
        super().__init__(sim, noise, "approach")
        self.cube, self.pad = cube, pad
        self._direction = np.zeros(2)

    def _geometry(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Cube xy, unit push direction (cube -> target) and distance still to go."""
        cube = self.sim.cube_pos(self.cube)[:2]
        offset = self.sim.pad_pos(self.pad)[:2] - cube
        dist = float(np.linalg.norm(offset))
        if dist > 0.02 or not self._direction.any():
            self._direction = offset / max(dist, 1e-9)
        return cube, self._direction, dist

    def _update_phase(self) -> None:
        cube, direction, dist = self._geometry()
        ee = self.sim.ee_pos
        behind = np.append(cube - direction * self.BEHIND, self.PUSH_Z)
        rel = ee[:2] - cube
        lateral = abs(direction[0] * rel[1] - direction[1] * rel[0])
        if self._phase == "approach" and self._near(np.append(behind[:2], HOVER_Z), 2 * ARRIVE_TOL):
            self._goto("descend")
        elif self._phase == "descend" and self._near(behind):
            self._goto("push")
        elif self._phase == "push":
            if dist < self.DONE_TOL:
                self._goto("retreat")
            elif lateral > 0.03 or rel @ direction > -CUBE_HALF or ee[2] > self.PUSH_Z + 0.02:
                self._goto("approach")
        elif self._phase == "retreat" and ee[2] > HOVER_Z - 0.01:
            self._goto("done")
        elif self._phase == "done" and dist > 0.03:
            self._goto("approach")

    def _command(self) -> tuple[np.ndarray, float, float]:
        cube, direction, dist = self._geometry()
        ee = self.sim.ee_pos
        behind = cube - direction * self.BEHIND
        if self._phase == "approach":
            low_and_away = ee[2] < HOVER_Z - 0.02 and np.linalg.norm(ee[:2] - behind) > 0.015
            pos = np.append(ee[:2] if low_and_away else behind, HOVER_Z)  # lift before crossing over
        elif self._phase == "descend":
            pos = np.append(behind, self.PUSH_Z)
        elif self._phase == "push":
            pos = np.append(cube - direction * (self.CONTACT - min(dist, self.PUSH_SPEED * POS_SCALE)), self.PUSH_Z)
        elif self._phase == "retreat":
            pos = np.append(ee[:2] - direction * 0.01, HOVER_Z)
        else:
            pos = self.sim.commanded_pose[:3]
        return pos, 0.0, CLOSED

    def _speed(self) -> float:
        return self.PUSH_SPEED if self._phase == "push" else 1.0


class PickPlaceExpert(ScriptedExpert):
    """Phases ``approach -> descend -> grasp -> lift -> carry -> lower -> release -> retreat -> done``.

    The fingers are turned to the cube's faces before descending; a cube that leaves the hand,
    or ends off the pad, sends the expert back to ``"approach"``.
    """

    PLACE_Z = CUBE_HALF + 0.004  # m, grip-site height when letting go
    HELD_TOL = 0.02  # m, cube centre to grip site while the cube is in the hand
    ON_PAD_TOL = 0.025  # m, cube centre to pad centre for the expert to call it placed

    def __init__(self, sim: TabletopSim, noise: ExpertNoise | None, cube: str, pad: str) -> None:
        super().__init__(sim, noise, "approach")
        self.cube, self.pad = cube, pad

    def _held(self) -> bool:
        return bool(np.linalg.norm(self.sim.cube_pos(self.cube) - self.sim.ee_pos) < self.HELD_TOL)

    def _update_phase(self) -> None:
        sim, phase, ee = self.sim, self._phase, self.sim.ee_pos
        cube, pad = sim.cube_pos(self.cube), sim.pad_pos(self.pad)
        yaw_ok = abs(grasp_yaw(sim.cube_yaw(self.cube)) - sim.ee_euler[2]) < 0.15
        on_pad = np.linalg.norm(cube[:2] - pad[:2]) < self.ON_PAD_TOL and cube[2] < CUBE_HALF + 0.005
        if phase == "approach" and self._near(np.append(cube[:2], HOVER_Z), 2 * ARRIVE_TOL) and yaw_ok:
            self._goto("descend")
        elif phase == "descend" and self._near(cube):
            self._goto("grasp")
        elif phase == "grasp" and self._phase_steps >= 2:
            self._goto("lift" if sim.fingers_touching(self.cube) == 2 else "approach")
        elif phase in ("lift", "carry", "lower") and not self._held():
            self._goto("approach")
        elif phase == "lift" and ee[2] > LIFT_Z - 0.01:
            self._goto("carry")
        elif phase == "carry" and np.linalg.norm(ee[:2] - pad[:2]) < ARRIVE_TOL:
            self._goto("lower")
        elif phase == "lower" and ee[2] < self.PLACE_Z + ARRIVE_TOL:
            self._goto("release")
        elif phase == "release" and self._phase_steps >= 2:
            self._goto("retreat")
        elif phase == "retreat" and ee[2] > RETREAT_Z - 0.01:
            self._goto("done" if on_pad else "approach")
        elif phase == "done" and not on_pad:
            self._goto("approach")

    def _command(self) -> tuple[np.ndarray, float, float]:
        sim, phase = self.sim, self._phase
        cube, pad, cmd = sim.cube_pos(self.cube), sim.pad_pos(self.pad), sim.commanded_pose
        yaw = grasp_yaw(sim.cube_yaw(self.cube)) if phase in ("approach", "descend") else cmd[5]
        if phase == "approach":
            return np.append(cube[:2], HOVER_Z), yaw, OPEN
        if phase == "descend":
            return cube, yaw, OPEN
        if phase == "grasp":
            return cmd[:3], yaw, CLOSED
        if phase == "lift":
            return np.append(cmd[:2], LIFT_Z), yaw, CLOSED
        if phase == "carry":
            return np.append(pad[:2], LIFT_Z), yaw, CLOSED
        if phase == "lower":
            return np.append(pad[:2], self.PLACE_Z), yaw, CLOSED
        if phase == "release":
            return cmd[:3], yaw, OPEN
        if phase == "retreat":
            return np.append(cmd[:2], RETREAT_Z), yaw, OPEN
        return cmd[:3], yaw, OPEN
