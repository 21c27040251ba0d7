"""Shared test setup: headless rendering and fixed seeds."""

import envs  # noqa: F401  (sets MUJOCO_GL before anything imports mujoco)
