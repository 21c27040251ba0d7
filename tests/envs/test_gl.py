"""Headless OpenGL back-end selection (``envs._gl``)."""

import ctypes.util
import os

import pytest

from envs._gl import configure_headless_gl


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_user_choice_is_kept(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MUJOCO_GL", "osmesa")
    assert configure_headless_gl() == "osmesa"
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa"


def test_egl_preferred_when_its_library_exists(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(ctypes.util, "find_library", lambda name: "libEGL.so.1" if name == "EGL" else None)
    assert configure_headless_gl() == "egl"
    assert os.environ["MUJOCO_GL"] == "egl"


def test_osmesa_fallback_without_egl(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(ctypes.util, "find_library", lambda name: None)
    assert configure_headless_gl() == "osmesa"
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa"


def test_display_leaves_mujoco_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DISPLAY", ":0")
    assert configure_headless_gl() == "glfw"
    assert "MUJOCO_GL" not in os.environ
