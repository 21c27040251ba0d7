"""What a fixed camera sees of the arm's workspace: pinhole projection and the visible box.

A planner that only scores images has no reason to keep the hand in the picture: with the
hand out of frame, an image differs from a reach goal by the goal's hand alone, which can
score better than a hand in the wrong place (docs/research/reach.md). :func:`view_box` gives
the grip-site positions the camera sees, as a box a planner can stay inside.

>>> low, high = view_box(sim, "front", image_size=64)
>>> low, high  # (-0.175, -0.175, 0.02), (0.175, 0.175, 0.243) for the 64 px front camera
"""

from __future__ import annotations

import itertools

import mujoco
import numpy as np

from envs.scene.arm import WORKSPACE_HIGH, WORKSPACE_LOW
from envs.scene.sim import TabletopSim

VIEW_MARGIN_PX = 2.0  # grip site at least this far inside the frame (the fingers reach past it)


def project(sim: TabletopSim, camera: str, points: np.ndarray, image_size: int) -> np.ndarray:
    """Pixel coordinates ``(..., 2)`` (column, row; origin top left) of world ``points`` ``(..., 3)``.

    Pinhole cameras use MuJoCo's vertical field of view ``fovy`` (degrees), orthographic ones
    its extent (``fovy`` metres tall). Points behind a pinhole camera come out as ``nan``.
    """
    model = sim.model
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cam < 0:
        raise ValueError(f"the scene has no camera {camera!r}")
    if model.cam_bodyid[cam] == 0:  # fixed in the world: its pose needs no forward pass
        pos, rot = model.cam_pos[cam], np.empty(9)
        mujoco.mju_quat2Mat(rot, model.cam_quat[cam])
    else:
        pos, rot = sim.data.cam_xpos[cam], sim.data.cam_xmat[cam]
    rot = rot.reshape(3, 3)  # columns: camera x (right), y (up), z (backwards)
    local = (np.asarray(points, float) - pos) @ rot  # (..., 3) camera frame
    fovy = float(model.cam_fovy[cam])
    if model.cam_orthographic[cam]:
        xy = local[..., :2] / fovy  # image heights
    else:
        depth = -local[..., 2:3]
        xy = local[..., :2] / np.where(depth > 0, depth, np.nan) / (2.0 * np.tan(np.deg2rad(fovy) / 2.0))
    return image_size * np.stack((0.5 + xy[..., 0], 0.5 - xy[..., 1]), axis=-1)


def view_box(sim: TabletopSim, camera: str, image_size: int, margin_px: float = VIEW_MARGIN_PX,
             resolution: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """The largest box of grip-site positions that ``camera`` sees, ``(low (3,), high (3,))`` metres.

    The arm's workspace box is shrunk about its vertical axis (x, y half-widths and the top,
    by one factor; the bottom stays at the table) until all eight corners, hence the whole
    box, project at least ``margin_px`` inside the image. The factor is searched on a
    ``resolution`` metre grid of the x half-width; 1 when the whole workspace is in view.
    """
    centre = (WORKSPACE_LOW + WORKSPACE_HIGH) / 2.0
    half = (WORKSPACE_HIGH - WORKSPACE_LOW) / 2.0

    def box(scale: float) -> tuple[np.ndarray, np.ndarray]:
        low = np.array([centre[0] - scale * half[0], centre[1] - scale * half[1], WORKSPACE_LOW[2]])
        high = np.array([centre[0] + scale * half[0], centre[1] + scale * half[1],
                         WORKSPACE_LOW[2] + scale * (WORKSPACE_HIGH[2] - WORKSPACE_LOW[2])])
        return low, high

    def visible(scale: float) -> bool:
        corners = np.array(list(itertools.product(*zip(*box(scale)))))  # (8, 3)
        pixels = project(sim, camera, corners, image_size)
        return bool(np.all((pixels >= margin_px) & (pixels <= image_size - margin_px)))

    steps = int(round(half[0] / resolution))
    for k in range(steps, 0, -1):
        if visible(k / steps):
            return box(k / steps)
    raise ValueError(f"camera {camera!r} sees no part of the workspace with a {margin_px} px margin")
