"""A Cartesian (gantry) arm with a parallel-jaw gripper, moved by position servos.

Kinematic chain, from the world::

    x carriage (slide x) -> y carriage (slide y) -> z carriage (slide z, carries the column)
      -> yaw (hinge z) -> pitch (hinge y) -> hand (hinge x, palm, "grip" site)
      -> two fingers (slides kept symmetric by a joint equality; one servo on their opening)

The three hinges all pass through the ``grip`` site between the fingertips, so the
end-effector position is the slide joints' positions and the hand's rotation is
``Rz(yaw) Ry(pitch) Rx(roll)``: the joint angles *are* the extrinsic ``xyz`` Euler angles
(roll, pitch, yaw) of the state. All moving bodies are gravity-compensated.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.scene.arena import COLLISION_GROUP, GRIPPER_CONAFFINITY, GRIPPER_CONTYPE

# Joint names in actuator order: 3 slides (metres) then 3 hinges (radians).
ARM_JOINTS = ("arm_x", "arm_y", "arm_z", "wrist_roll", "wrist_pitch", "wrist_yaw")
FINGER_JOINTS = ("finger_left", "finger_right")
GRIPPER_ACTUATOR = "gripper"  # servo on the tendon "gripper" (the finger opening)
GRIP_SITE = "grip"
FINGER_GEOMS = ("finger_left", "finger_right")  # the fingers' collision capsules

# Limits of the commanded end-effector pose (grip site), world frame.
WORKSPACE_LOW = np.array([-0.22, -0.22, 0.02])
WORKSPACE_HIGH = np.array([0.22, 0.22, 0.30])
ROTATION_LOW = np.array([-0.5, -0.5, -np.pi / 2])
ROTATION_HIGH = np.array([0.5, 0.5, np.pi / 2])
FINGER_TRAVEL = 0.045  # m per finger; the fully open gripper is 2 * FINGER_TRAVEL wide

FINGER_HALF = (0.006, 0.012, 0.026)  # m: thickness (x), width (y), length (z)
FINGERTIP_BELOW_GRIP = 0.015  # m, fingertips sit this far below the grip site
PALM_HALF = (0.05, 0.016, 0.008)
GRIPPER_FRICTION = (1.5, 0.01, 0.0005)
# Stiff, barely-soft contacts for the finger pads and the props they grasp.
GRASP_SOLREF = (0.01, 1.0)
GRASP_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)

SLIDE_KP, ROT_KP, FINGER_KP = 9000.0, 60.0, 600.0  # N/m, N m/rad, N/m of opening
FINGER_FORCE = 20.0  # N, maximum squeeze (each finger pushes with this force)
ARM_RGBA = (0.30, 0.31, 0.34, 1.0)
FINGER_RGBA = (0.12, 0.12, 0.13, 1.0)


def _massive_body(parent: mujoco.MjsBody, name: str, mass: float) -> mujoco.MjsBody:
    """A gravity-compensated body with an explicit small inertia (carriages have no geoms)."""
    body = parent.add_body(name=name, gravcomp=1.0)
    body.explicitinertial = True
    body.mass = mass
    body.inertia = (1e-4, 1e-4, 1e-4)
    return body


def _servo(
    spec: mujoco.MjSpec,
    name: str,
    kp: float,
    ctrlrange: tuple[float, float],
    forcerange: tuple[float, float] | None = None,
    trntype: mujoco.mjtTrn = mujoco.mjtTrn.mjTRN_JOINT,
) -> None:
    """A critically damped position servo on the joint (or tendon) ``name``; ctrl is the set-point."""
    act = spec.add_actuator(name=name, target=name, trntype=trntype)
    act.set_to_position(kp=kp, dampratio=1.0)
    act.ctrllimited = True
    act.ctrlrange = ctrlrange
    if forcerange is not None:
        act.forcelimited = True
        act.forcerange = forcerange


def add_gantry_arm(spec: mujoco.MjSpec) -> None:
    """Add the arm, its servos (ctrl = commanded joint position) and the finger coupling."""
    slide, hinge = mujoco.mjtJoint.mjJNT_SLIDE, mujoco.mjtJoint.mjJNT_HINGE
    unlimited = mujoco.mjtLimited.mjLIMITED_FALSE  # the servos' ctrl ranges bound the arm
    carriage = spec.worldbody
    for name, axis, mass in zip(ARM_JOINTS[:3], np.eye(3), (0.2, 0.2, 0.2)):
        carriage = _massive_body(carriage, name, mass)
        carriage.add_joint(name=name, type=slide, axis=axis, armature=0.05, limited=unlimited)
    carriage.add_geom(  # the vertical column the hand hangs from (visual only)
        type=mujoco.mjtGeom.mjGEOM_CYLINDER, fromto=(0, 0, 0.06, 0, 0, 0.9), size=(0.014, 0, 0),
        rgba=ARM_RGBA, contype=0, conaffinity=0, mass=0,
    )
    wrist = carriage
    for name, axis in (("wrist_yaw", (0, 0, 1)), ("wrist_pitch", (0, 1, 0)), ("wrist_roll", (1, 0, 0))):
        wrist = _massive_body(wrist, name, 0.05)
        wrist.add_joint(name=name, type=hinge, axis=axis, armature=0.002, limited=unlimited)
    hand = wrist  # the roll body is the hand; its origin is the grip site
    hand.add_site(name=GRIP_SITE, size=(0.005, 0, 0), rgba=(1, 1, 1, 0), group=4)
    hand.add_geom(
        name="palm", type=mujoco.mjtGeom.mjGEOM_BOX, size=PALM_HALF,
        pos=(0, 0, FINGER_HALF[2] * 2 - FINGERTIP_BELOW_GRIP + PALM_HALF[2]),
        rgba=ARM_RGBA, contype=GRIPPER_CONTYPE, conaffinity=GRIPPER_CONAFFINITY, mass=0.2,
    )
    finger_z = FINGER_HALF[2] - FINGERTIP_BELOW_GRIP
    for joint, sign in zip(FINGER_JOINTS, (-1.0, 1.0)):
        finger = hand.add_body(name=joint, gravcomp=1.0)
        finger.add_joint(
            name=joint, type=slide, axis=(sign, 0, 0), range=(0.0, FINGER_TRAVEL),
            limited=mujoco.mjtLimited.mjLIMITED_TRUE, damping=2.0, armature=0.01,
        )
        finger.add_geom(  # drawn: a flat pad whose inner face is at x = 0 when the joint is at 0
            type=mujoco.mjtGeom.mjGEOM_BOX, size=FINGER_HALF, pos=(sign * FINGER_HALF[0], 0, finger_z),
            rgba=FINGER_RGBA, mass=0.03, contype=0, conaffinity=0,
        )
        radius = FINGER_HALF[0]
        finger.add_geom(  # collides: a vertical capsule along the pad (2 contacts per face, not 4+)
            name=joint, type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=(radius, FINGER_HALF[2] - radius, 0),
            pos=(sign * radius, 0, finger_z), group=COLLISION_GROUP, mass=0.0,
            friction=GRIPPER_FRICTION, condim=3, solref=GRASP_SOLREF, solimp=GRASP_SOLIMP,
            contype=GRIPPER_CONTYPE, conaffinity=GRIPPER_CONAFFINITY,
        )
    spec.add_equality(  # the fingers move symmetrically
        type=mujoco.mjtEq.mjEQ_JOINT, name1=FINGER_JOINTS[1], name2=FINGER_JOINTS[0],
        data=np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], float), solref=(0.01, 1.0),
    )
    opening = spec.add_tendon(name=GRIPPER_ACTUATOR)  # length = q_left + q_right = finger distance
    for joint in FINGER_JOINTS:
        opening.wrap_joint(joint, 1.0)
    for name, low, high in zip(ARM_JOINTS[:3], WORKSPACE_LOW, WORKSPACE_HIGH):
        _servo(spec, name, SLIDE_KP, (low, high))
    for name, low, high in zip(ARM_JOINTS[3:], ROTATION_LOW, ROTATION_HIGH):
        _servo(spec, name, ROT_KP, (low, high))
    # One servo on the opening squeezes with the same force through both fingers, so the
    # equality only keeps them symmetric and never carries the grip force.
    _servo(spec, GRIPPER_ACTUATOR, FINGER_KP, (0.0, 2 * FINGER_TRAVEL), (-FINGER_FORCE, FINGER_FORCE),
           trntype=mujoco.mjtTrn.mjTRN_TENDON)
