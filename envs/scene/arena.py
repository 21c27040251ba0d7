"""The world around the robot: physics options, rendering settings, table, lights, cameras.

The table top is the plane ``z = 0``; the robot works above it in a box around the origin.
Every piece is a function that adds itself to a :class:`mujoco.MjSpec`.
"""

from __future__ import annotations

import mujoco
import numpy as np

TIMESTEP = 0.005  # s per physics step
TABLE_HALF = (0.6, 0.6, 0.05)  # m, half extents of the table box (top at z = 0); fills every view
TABLE_RGBA = (0.72, 0.66, 0.58, 1.0)
# The sun shines straight down and casts shadows from a small shadow map: each thing's shadow on
# the table shows where it is in depth, which one oblique camera cannot see otherwise (a marker or
# gripper anywhere on a camera ray looks the same). The shadow pass makes a 64 px frame about 3x
# slower to render on one CPU core (1,200 instead of 4,000 frames/s; 64-256 px maps cost the
# same; MuJoCo's default 4096 px map runs at about 50 frames/s).
SHADOW_MAP_SIZE = 256

# Collision bits: props collide with everything, the gripper with props and the table only
# (never finger with finger).
PROP_CONTYPE, PROP_CONAFFINITY = 1, 3
TABLE_CONTYPE, TABLE_CONAFFINITY = 1, 3
GRIPPER_CONTYPE, GRIPPER_CONAFFINITY = 2, 0
COLLISION_GROUP = 3  # geom group of collision-only shapes (not drawn: renderers show groups 0-2)

# name -> (camera position, point it looks at, fovy: degrees, or metres for orthographic "top")
CAMERAS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]] = {
    "front": ((0.0, -0.50, 0.60), (0.0, 0.0, 0.09), 44.0),  # frames the workspace: gripper at 0.3 m too
    "top": ((0.0, -1e-4, 1.2), (0.0, 0.0, 0.0), 0.52),
    "side": ((0.40, 0.0, 0.55), (0.0, 0.0, 0.04), 40.0),
}
ORTHOGRAPHIC = ("top",)


def new_spec(image_size: int) -> mujoco.MjSpec:
    """An empty scene with the physics options and cheap rendering settings used everywhere.

    Args:
        image_size: side of the square offscreen buffer in pixels (the camera image size).
    """
    spec = mujoco.MjSpec()
    spec.modelname = "tabletop"
    opt = spec.option
    opt.timestep = TIMESTEP
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    opt.iterations = 20
    opt.ls_iterations = 8
    opt.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    opt.noslip_iterations = 2  # removes the slow creep of grasped cubes through soft friction
    vis = spec.visual
    vis.quality.shadowsize = SHADOW_MAP_SIZE  # the shadow pass is the biggest cost of offscreen rendering
    vis.quality.numslices, vis.quality.numstacks, vis.quality.numquads = 12, 8, 1  # coarse meshes for 64 px
    vis.global_.offwidth = image_size
    vis.global_.offheight = image_size
    vis.headlight.ambient = (0.3, 0.3, 0.3)
    vis.headlight.diffuse = (0.3, 0.3, 0.3)
    vis.headlight.specular = (0.0, 0.0, 0.0)
    vis.rgba.haze = (0.0, 0.0, 0.0, 1.0)
    return spec


def add_table(spec: mujoco.MjSpec) -> None:
    """A fixed table whose top is the plane z = 0 (a box: planes are drawn as many quads), lit from straight
    above so that shadows fall right under their casters (depth cue; see :data:`SHADOW_MAP_SIZE`)."""
    world = spec.worldbody
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=TABLE_HALF,
        pos=(0.0, 0.0, -TABLE_HALF[2]),
        rgba=TABLE_RGBA,
        friction=(0.8, 0.005, 0.0001),
        contype=TABLE_CONTYPE,
        conaffinity=TABLE_CONAFFINITY,
    )
    world.add_light(
        name="sun",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=(0.0, 0.0, 1.5),
        dir=(0.0, 0.0, -1.0),
        diffuse=(0.5, 0.5, 0.5),
        specular=(0.1, 0.1, 0.1),
        castshadow=True,
    )


def look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at ``pos`` looking at ``target``, world z up."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    mat = np.stack([right, up, -forward], axis=1)  # camera looks along its -z axis
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def add_cameras(spec: mujoco.MjSpec) -> None:
    """The fixed cameras of :data:`CAMERAS`, all framing the workspace."""
    for name, (pos, target, fovy) in CAMERAS.items():
        spec.worldbody.add_camera(
            name=name, pos=pos, quat=look_at_quat(np.array(pos), np.array(target)), fovy=fovy,
            orthographic=name in ORTHOGRAPHIC,
        )
