"""Things on the table: coloured cubes (free bodies), target pads and markers (mocap, no collision).

Pads and markers are mocap bodies, so a task moves them per episode without recompiling and
their poses are part of the simulator state (:data:`mujoco.mjtState.mjSTATE_INTEGRATION`).
A task whose scenes show some of its props per episode parks the others out of every camera's
view (:func:`parking_xy`: cubes rest on the table's near edge, behind and below the cameras;
pads lie under the table), so the parked props stay part of the simulator state as well.
"""

from __future__ import annotations

import mujoco

from envs.scene.arena import PROP_CONAFFINITY, PROP_CONTYPE
from envs.scene.arm import GRASP_SOLIMP, GRASP_SOLREF

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.86, 0.14, 0.12, 1.0),
    "green": (0.16, 0.68, 0.22, 1.0),
    "blue": (0.14, 0.32, 0.90, 1.0),
    "yellow": (0.95, 0.80, 0.10, 1.0),
    # Spare colours for larger palettes (checked apart from the four above and the table in 64 px renders).
    "purple": (0.55, 0.18, 0.75, 1.0),
    "orange": (1.00, 0.50, 0.05, 1.0),
    "cyan": (0.10, 0.80, 0.85, 1.0),
}
CUBE_HALF = 0.025  # m, half the side of every cube
CUBE_MASS = 0.1  # kg
PAD_HALF = 0.05  # m, half the side of a square target pad
PAD_THICKNESS = 0.001  # m, half height of the (visual-only) pad slab
MARKER_RADIUS = 0.02  # m
# Parked cubes sit in a row along the table's near edge (y = -0.52, out of every camera's view,
# outside the arm's workspace), PARKING_STEP apart; parked pads lie under the table top.
PARKING_Y = -0.52  # m
PARKING_STEP = 0.08  # m
PARKING_SLOTS = 13  # slots centred on x = 0: x in [-0.48, 0.48]
PARKED_PAD_Z = -0.3  # m, under the table (its top is z = 0, its bottom z = -0.1)


def _check_color(color: str) -> tuple[float, float, float, float]:
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; expected one of {sorted(COLORS)}")
    return COLORS[color]


def parking_xy(slot: int) -> tuple[float, float]:
    """Where the ``slot``-th parked cube rests, ``(x, y)`` on the table, out of every camera's view."""
    if not 0 <= slot < PARKING_SLOTS:
        raise ValueError(f"parking slot must be in [0, {PARKING_SLOTS}), got {slot}")
    return ((slot - (PARKING_SLOTS - 1) / 2) * PARKING_STEP, PARKING_Y)


def cube_name(color: str) -> str:
    """Body, joint and geom name of the cube of ``color``."""
    return f"{color}_cube"


def pad_name(color: str) -> str:
    """Mocap body name of the pad of ``color``."""
    return f"{color}_pad"


def marker_name(color: str) -> str:
    """Mocap body name of the marker of ``color``."""
    return f"{color}_marker"


def add_cube(spec: mujoco.MjSpec, color: str) -> None:
    """A free cube of side ``2 * CUBE_HALF`` resting on the table at the origin."""
    rgba = _check_color(color)
    name = cube_name(color)
    body = spec.worldbody.add_body(name=name, pos=(0.0, 0.0, CUBE_HALF))
    body.add_freejoint(name=name)
    body.add_geom(
        name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=(CUBE_HALF,) * 3, rgba=rgba,
        mass=CUBE_MASS, friction=(0.8, 0.005, 0.0001), condim=3, solref=GRASP_SOLREF, solimp=GRASP_SOLIMP,
        contype=PROP_CONTYPE, conaffinity=PROP_CONAFFINITY,
    )


def add_pad(spec: mujoco.MjSpec, color: str) -> None:
    """A flat square target pad lying on the table (drawn only; objects rest on the table)."""
    rgba = _check_color(color)
    body = spec.worldbody.add_body(name=pad_name(color), mocap=True, pos=(0.0, 0.0, PAD_THICKNESS))
    body.add_geom(
        type=mujoco.mjtGeom.mjGEOM_BOX, size=(PAD_HALF, PAD_HALF, PAD_THICKNESS),
        rgba=tuple(0.75 * c for c in rgba[:3]) + (1.0,), contype=0, conaffinity=0,
    )


def add_marker(spec: mujoco.MjSpec, color: str) -> None:
    """A floating sphere marking a point in space (drawn only)."""
    rgba = _check_color(color)
    body = spec.worldbody.add_body(name=marker_name(color), mocap=True, pos=(0.0, 0.0, 0.1))
    body.add_geom(
        type=mujoco.mjtGeom.mjGEOM_SPHERE, size=(MARKER_RADIUS, 0, 0), rgba=rgba,
        contype=0, conaffinity=0,
    )
