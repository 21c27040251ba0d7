"""Pick a headless OpenGL back-end for MuJoCo before anything imports ``mujoco``."""

from __future__ import annotations

import ctypes.util
import os


def configure_headless_gl() -> str:
    """Set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) unless the user already chose.

    EGL is preferred; OSMesa is the fallback when no EGL library is found. With a display
    (``DISPLAY`` set) MuJoCo's own default (GLFW) is left alone.

    Returns:
        The back-end in use (``"egl"``, ``"osmesa"`` or whatever the user set).
    """
    if "MUJOCO_GL" in os.environ:
        backend = os.environ["MUJOCO_GL"]
    elif os.environ.get("DISPLAY"):
        return "glfw"
    elif ctypes.util.find_library("EGL"):
        backend = "egl"
    else:
        backend = "osmesa"
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend
