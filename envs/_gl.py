"""Pick a headless OpenGL back-end for MuJoCo before anything imports ``mujoco``."""

from __future__ import annotations

import atexit
import ctypes.util
import os
import weakref
from typing import Any


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


_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()


def _close_open() -> None:
    for owner in list(_OPEN):
        owner.close()


def close_at_exit(owner: Any) -> None:
    """Close ``owner`` (anything with ``close()``) at interpreter exit unless it was closed before.

    The hook is registered again after every new owner, so it runs before the EGL shutdown
    hooks that MuJoCo and robosuite register when they open their displays (``atexit`` runs
    last-registered first): renderers are freed while their display is alive, with no
    ``EGLError`` at exit, whichever back-end made its first env last.
    """
    atexit.unregister(_close_open)
    atexit.register(_close_open)
    _OPEN.add(owner)


def forget_at_exit(owner: Any) -> None:
    """``owner`` was closed: nothing to do for it at exit."""
    _OPEN.discard(owner)
