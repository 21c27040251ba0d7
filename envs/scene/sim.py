"""The compiled scene at run time: ids looked up once, arm control, state read-out, copies.

:class:`TabletopSim` owns one ``MjModel``/``MjData`` pair. The commanded end-effector pose
lives in ``data.ctrl`` (the servos' set-points), so the whole robot + scene state is inside
``MjData``: copying the data copies everything (goal images run the expert in such a copy).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np

from envs.interface import POS_SCALE, ROT_SCALE
from envs.scene.arena import TIMESTEP
from envs.scene.arm import (
    ARM_JOINTS,
    FINGER_GEOMS,
    FINGER_JOINTS,
    FINGER_TRAVEL,
    GRIP_SITE,
    GRIPPER_ACTUATOR,
    ROTATION_HIGH,
    ROTATION_LOW,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
)
from envs.scene.props import (
    CUBE_HALF,
    PARKED_PAD_Z,
    cube_name,
    marker_name,
    pad_name,
    parking_xy,
)

CONTROL_HZ = 10  # env steps per simulated second
SUBSTEPS = round(1.0 / (CONTROL_HZ * TIMESTEP))  # physics steps per env step (20)
RAMP_CHUNKS = 6  # set-point updates per env step
CHUNK = 2  # physics steps between two set-point updates


def _smoothstep_ramp() -> tuple[np.ndarray, np.ndarray]:
    """Set-point weights ``(RAMP_CHUNKS,)`` rising from 0 to 1, and physics steps after each."""
    x = np.arange(1, RAMP_CHUNKS + 1) / RAMP_CHUNKS
    nsteps = np.full(RAMP_CHUNKS, CHUNK)
    nsteps[-1] = SUBSTEPS - CHUNK * (RAMP_CHUNKS - 1)  # hold the final set-point to the end
    return x * x * (3.0 - 2.0 * x), nsteps


# The servo set-point moves from the old to the new commanded pose along a smoothstep over the
# first 60% of the step, then holds: accelerations stay bounded (a grasped cube stays in the
# hand under random actions) and the arm has settled on the new pose when the step ends.
RAMP_WEIGHTS, RAMP_NSTEPS = _smoothstep_ramp()
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION  # everything needed to replay bit for bit


@dataclass(frozen=True)
class SceneIds:
    """Addresses looked up once after compiling (see :func:`SceneIds.lookup`)."""

    arm_qpos: np.ndarray  # (6,) qpos addresses of x, y, z, roll, pitch, yaw
    arm_rot: np.ndarray  # (3,) qpos addresses of roll, pitch, yaw
    arm_ctrl: slice  # actuators of the same joints (contiguous)
    gripper_ctrl: int
    finger_qpos: np.ndarray  # (2,)
    finger_geoms: np.ndarray  # (2,) left, right
    grip_site: int
    cube_qpos: dict[str, int]  # colour -> first qpos address of the cube's free joint
    cube_qvel: dict[str, int]  # colour -> first dof address
    cube_geom: dict[str, int]
    pad_mocap: dict[str, int]
    marker_mocap: dict[str, int]

    @classmethod
    def lookup(
        cls, model: mujoco.MjModel, cubes: tuple[str, ...], pads: tuple[str, ...], markers: tuple[str, ...]
    ) -> SceneIds:
        """Find every id the env needs in ``model``, by name."""
        jnt = model.joint
        qpos = np.array([jnt(n).qposadr[0] for n in ARM_JOINTS])
        ctrl = [model.actuator(n).id for n in ARM_JOINTS]
        assert ctrl == list(range(ctrl[0], ctrl[0] + 6)), "arm actuators must be contiguous"
        return cls(
            arm_qpos=qpos,
            arm_rot=qpos[3:],
            arm_ctrl=slice(ctrl[0], ctrl[0] + 6),
            gripper_ctrl=model.actuator(GRIPPER_ACTUATOR).id,
            finger_qpos=np.array([jnt(n).qposadr[0] for n in FINGER_JOINTS]),
            finger_geoms=np.array([model.geom(n).id for n in FINGER_GEOMS]),
            grip_site=model.site(GRIP_SITE).id,
            cube_qpos={c: int(jnt(cube_name(c)).qposadr[0]) for c in cubes},
            cube_qvel={c: int(jnt(cube_name(c)).dofadr[0]) for c in cubes},
            cube_geom={c: model.geom(cube_name(c)).id for c in cubes},
            pad_mocap={c: int(model.body(pad_name(c)).mocapid[0]) for c in pads},
            marker_mocap={c: int(model.body(marker_name(c)).mocapid[0]) for c in markers},
        )


class TabletopSim:
    """Control and read-out of one tabletop scene (model shared, data owned).

    Args:
        model: the compiled scene.
        ids: the scene's looked-up addresses.
        data: its simulation data (a fresh ``MjData`` when omitted).
    """

    def __init__(self, model: mujoco.MjModel, ids: SceneIds, data: mujoco.MjData | None = None) -> None:
        self.model = model
        self.ids = ids
        self.data = mujoco.MjData(model) if data is None else data

    def copy(self) -> TabletopSim:
        """An independent copy of the current simulation (shares the read-only model)."""
        return TabletopSim(self.model, self.ids, copy.copy(self.data))

    # ----------------------------------------------------------------- robot
    def reset(self, ee_pos: np.ndarray, ee_euler: np.ndarray | None = None) -> None:
        """Reset all physics, put the end-effector at ``ee_pos`` (3,) with the gripper open."""
        mujoco.mj_resetData(self.model, self.data)
        pose = np.concatenate([ee_pos, np.zeros(3) if ee_euler is None else ee_euler])
        self.data.qpos[self.ids.arm_qpos] = pose
        self.data.ctrl[self.ids.arm_ctrl] = pose
        self.data.qpos[self.ids.finger_qpos] = FINGER_TRAVEL
        self.data.ctrl[self.ids.gripper_ctrl] = 2 * FINGER_TRAVEL

    def step(self, action: np.ndarray) -> None:
        """Apply one action ``(7,)`` (see :mod:`envs.interface`) and simulate one control period.

        The action is clipped to ``[-1, 1]`` and used in float64. The commanded pose integrates
        the deltas and is clipped to the workspace; the gripper command is absolute
        (-1 open, +1 closed).
        """
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        ctrl, ids = self.data.ctrl, self.ids
        start = ctrl[ids.arm_ctrl].copy()  # (6,) the previous commanded pose
        target = np.empty(6)
        target[:3] = np.clip(start[:3] + action[:3] * POS_SCALE, WORKSPACE_LOW, WORKSPACE_HIGH)
        target[3:] = np.clip(start[3:] + action[3:6] * ROT_SCALE, ROTATION_LOW, ROTATION_HIGH)
        ctrl[ids.gripper_ctrl] = FINGER_TRAVEL * (1.0 - float(action[6]))  # opening: 2 * travel .. 0
        setpoints = start + RAMP_WEIGHTS[:, None] * (target - start)  # (RAMP_CHUNKS, 6)
        for setpoint, nstep in zip(setpoints, RAMP_NSTEPS):
            ctrl[ids.arm_ctrl] = setpoint
            mujoco.mj_step(self.model, self.data, nstep=nstep)
        mujoco.mj_forward(self.model, self.data)  # positions, contacts and sensors of the new state

    def forward(self) -> None:
        """Recompute derived quantities (positions, contacts) after editing qpos or mocap poses."""
        mujoco.mj_forward(self.model, self.data)

    @property
    def ee_pos(self) -> np.ndarray:
        """End-effector (grip site) position, world frame, ``(3,)``."""
        return self.data.site_xpos[self.ids.grip_site].copy()

    @property
    def ee_euler(self) -> np.ndarray:
        """End-effector extrinsic ``xyz`` Euler angles ``(3,)`` (the wrist joint angles)."""
        return self.data.qpos[self.ids.arm_rot].copy()

    @property
    def gripper_opening(self) -> float:
        """Distance between the finger pads in metres."""
        return float(self.data.qpos[self.ids.finger_qpos].sum())

    @property
    def commanded_pose(self) -> np.ndarray:
        """The servo set-point ``(6,)``: position then Euler angles."""
        return self.data.ctrl[self.ids.arm_ctrl].copy()

    def robot_state(self) -> np.ndarray:
        """The 7-D state of :mod:`envs.interface`, float32 ``(7,)``."""
        state = np.empty(7, dtype=np.float32)
        state[:3] = self.data.site_xpos[self.ids.grip_site]
        state[3:6] = self.data.qpos[self.ids.arm_rot]
        state[6] = self.gripper_opening
        return state

    # ----------------------------------------------------------------- props
    def place_cube(self, color: str, xy: np.ndarray, yaw: float = 0.0, z: float = CUBE_HALF) -> None:
        """Put the cube of ``color`` at rest at ``(x, y, z)`` (on the table by default), turned by ``yaw``."""
        adr = self.ids.cube_qpos[color]
        self.data.qpos[adr : adr + 3] = (xy[0], xy[1], z)
        self.data.qpos[adr + 3 : adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        dof = self.ids.cube_qvel[color]
        self.data.qvel[dof : dof + 6] = 0.0

    def cube_pos(self, color: str) -> np.ndarray:
        """Centre of the cube of ``color``, ``(3,)``."""
        adr = self.ids.cube_qpos[color]
        return self.data.qpos[adr : adr + 3].copy()

    def cube_yaw(self, color: str) -> float:
        """Rotation of the cube's x axis about world z, radians (meaningful while it sits upright)."""
        xmat = self.data.geom_xmat[self.ids.cube_geom[color]]
        return float(np.arctan2(xmat[3], xmat[0]))

    def cube_speed(self, color: str) -> float:
        """Linear speed of the cube of ``color`` in m/s."""
        dof = self.ids.cube_qvel[color]
        return float(np.linalg.norm(self.data.qvel[dof : dof + 3]))

    def fingers_touching(self, color: str) -> int:
        """How many fingers (0, 1 or 2) touch the cube of ``color``."""
        pairs = self.data.contact.geom[: self.data.ncon]  # (ncon, 2)
        cube = self.ids.cube_geom[color]
        partners = np.concatenate([pairs[pairs[:, 0] == cube, 1], pairs[pairs[:, 1] == cube, 0]])
        return int(np.isin(self.ids.finger_geoms, partners).sum())

    def set_pad(self, color: str, xy: np.ndarray) -> None:
        """Move the pad of ``color`` to ``xy`` on the table."""
        self.data.mocap_pos[self.ids.pad_mocap[color], :2] = xy

    def park_cube(self, color: str, slot: int) -> None:
        """Take the cube of ``color`` out of the scene: at rest in parking ``slot``, out of every camera's view."""
        self.place_cube(color, np.array(parking_xy(slot)))

    def park_pad(self, color: str) -> None:
        """Take the pad of ``color`` out of the scene: under the table (the next :meth:`reset` puts it back on top)."""
        self.data.mocap_pos[self.ids.pad_mocap[color]] = (0.0, 0.0, PARKED_PAD_Z)

    def pad_pos(self, color: str) -> np.ndarray:
        """Centre of the pad of ``color`` ``(3,)``."""
        return self.data.mocap_pos[self.ids.pad_mocap[color]].copy()

    def set_marker(self, color: str, pos: np.ndarray) -> None:
        """Move the marker of ``color`` to ``pos`` (3,)."""
        self.data.mocap_pos[self.ids.marker_mocap[color]] = pos

    def marker_pos(self, color: str) -> np.ndarray:
        """Centre of the marker of ``color`` ``(3,)``."""
        return self.data.mocap_pos[self.ids.marker_mocap[color]].copy()

    # ----------------------------------------------------------------- state
    def get_state(self) -> np.ndarray:
        """The full simulator state (physics, controls, mocap poses, warm start), float64 ``(S,)``."""
        state = np.empty(mujoco.mj_stateSize(self.model, STATE_SPEC))
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        return state

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state from :meth:`get_state`."""
        size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (size,):
            raise ValueError(f"expected a simulator state of shape ({size},), got {state.shape}")
        mujoco.mj_setState(self.model, self.data, state, STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)

