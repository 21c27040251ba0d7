"""Base class of the MuJoCo tabletop tasks: gymnasium API, rendering, experts, goal images.

A task subclass names its props (``cubes``, ``pads``, ``markers``), its time limit and goal
phases, and implements three hooks: :meth:`TabletopEnv._reset_task` (place the props from
``self.np_random``, return the instruction), :meth:`TabletopEnv._is_success` and
:meth:`TabletopEnv._expert`. Everything else (action integration, observation, rendering,
seeding, goal images, simulator state) lives here.

Reward is 1.0 on steps where the task is solved, else 0.0. Episodes never terminate (a
planner gets no privileged stop signal); they are truncated by the registered time limit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs._gl import close_at_exit, forget_at_exit
from envs.experts import ExpertNoise, ScriptedExpert
from envs.goals import expert_goal_images
from envs.interface import ACTION_DIM, DEFAULT_IMAGE_SIZE, STATE_DIM, GoalImages
from envs.scene import CAMERAS, CONTROL_HZ, TabletopSim, build_scene
from envs.scene.arm import FINGER_TRAVEL, WORKSPACE_HIGH, WORKSPACE_LOW
from envs.scene.view import view_box

START_LOW = np.array([-0.10, -0.10, 0.12])  # m, box the end-effector starts in
START_HIGH = np.array([0.10, 0.10, 0.20])
# Bounds of the 7-D state: the workspace with room for servo overshoot, angles, finger opening.
STATE_LOW = np.concatenate([WORKSPACE_LOW - 0.05, [-np.pi] * 3, [-0.01]]).astype(np.float32)
STATE_HIGH = np.concatenate([WORKSPACE_HIGH + 0.05, [np.pi] * 3, [2 * FINGER_TRAVEL + 0.01]]).astype(np.float32)


def sample_separated(
    rng: np.random.Generator, n: int, half_extent: float, min_dist: float, max_tries: int = 1000
) -> np.ndarray:
    """``n`` points ``(n, 2)`` uniform in ``[-half_extent, half_extent]^2``, pairwise >= ``min_dist`` apart."""
    for _ in range(max_tries):
        points = rng.uniform(-half_extent, half_extent, size=(n, 2))
        dists = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(n) * min_dist
        if dists.min() >= min_dist:
            return points
    raise RuntimeError(f"could not place {n} points {min_dist} m apart in +-{half_extent} m")


def parse_cameras(camera: str) -> tuple[str, ...]:
    """The camera names in ``camera``: one name, or several joined by ``"+"`` (``"front+side"``)."""
    names = tuple(camera.split("+")) if isinstance(camera, str) else ()
    unknown = [name for name in names if name not in CAMERAS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"unknown camera {camera!r}: expected one of {sorted(CAMERAS)} or several distinct "
                         f"ones joined by '+', e.g. 'front+side'")
    return names


class TabletopEnv(gym.Env[dict[str, np.ndarray], np.ndarray], ABC):
    """A gantry arm with a parallel gripper over a table, seen by one or several fixed cameras.

    Args:
        image_size: side of each camera's square image in pixels (>= 16).
        camera: one of ``"front"`` (default), ``"top"``, ``"side"``, or several joined by ``"+"``
            (``"front+side"``): their images are stacked top to bottom into one
            ``(views * image_size, image_size)`` image, so a second view shows depth along the
            first one's line of sight. The first camera frames :attr:`view_box`.
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the camera image).

    Observation: ``{"image": uint8 (views * image_size, image_size, 3), "state": float32 (7,)}``;
    action: float32 ``(7,)`` in ``[-1, 1]`` (see :mod:`envs.interface`).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    task_name: ClassVar[str]
    max_episode_steps: ClassVar[int]
    cubes: ClassVar[tuple[str, ...]] = ()
    pads: ClassVar[tuple[str, ...]] = ()
    markers: ClassVar[tuple[str, ...]] = ()
    goal_phases: ClassVar[Mapping[str, str]] = {"done": "final"}  # expert phase -> goal name

    def __init__(
        self, image_size: int = DEFAULT_IMAGE_SIZE, camera: str = "front", render_mode: str | None = None
    ) -> None:
        if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
        self.cameras = parse_cameras(camera)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.image_size, self.camera, self.render_mode = int(image_size), camera, render_mode
        self.sim: TabletopSim = build_scene(self.image_size, self.cubes, self.pads, self.markers)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, shape=(*self.image_hw, 3), dtype=np.uint8),
                "state": spaces.Box(STATE_LOW, STATE_HIGH, shape=(STATE_DIM,), dtype=np.float32),
            }
        )
        self._renderer: mujoco.Renderer | None = mujoco.Renderer(self.sim.model, self.image_size, self.image_size)
        self.instruction = ""
        self._goals: dict[int | None, GoalImages] = {}  # every -> this episode's goal images
        self._start_state: np.ndarray | None = None  # sim state after the last reset
        close_at_exit(self)

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(height, width)`` of an observation image: the cameras' views stacked top to bottom."""
        return (len(self.cameras) * self.image_size, self.image_size)

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: arm at a random pose above the table, props placed by the task."""
        self._start_state = None  # until this reset succeeds, step() asks for one
        super().reset(seed=seed)
        self._goals = {}
        self.sim.reset(self.np_random.uniform(START_LOW, START_HIGH))
        self.sim.forward()  # kinematics of the start pose: tasks may place props relative to the hand
        self.instruction = self._reset_task(dict(options or {}))
        self.sim.forward()
        self._start_state = self.sim.get_state()  # the goal images start from here
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (7,) for one control period (0.1 s)."""
        if self._start_state is None:
            raise RuntimeError("call reset() before step(): no reset has succeeded yet")
        try:
            values = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if values is None or values.shape != (ACTION_DIM,) or not np.isfinite(values).all():
            shown = " ".join(repr(action).split())[:200]
            raise ValueError(f"action must be a finite array of shape ({ACTION_DIM},), got {shown}")
        action = values
        self.sim.step(action)
        info = self._info()
        return self._observation(), float(info["is_success"]), False, False, info

    def render(self) -> np.ndarray | None:
        """The camera image uint8 ``(H, W, 3)`` when ``render_mode == "rgb_array"``, else ``None``."""
        return self._render(self.sim) if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Free the offscreen renderer (safe to call twice)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        forget_at_exit(self)

    # ------------------------------------------------------------------ ManipulationEnv
    def make_expert(self, noise: float = 0.0, seed: int | None = None, correlation: float = 0.5) -> ScriptedExpert:
        """A scripted expert for the current episode (call after :meth:`reset`).

        Args:
            noise: standard deviation of the exploration noise in action units (0: clean).
            seed: seed of the noise generator; ``None`` draws one from ``self.np_random``
                (only when ``noise > 0``, so clean experts leave the env's generator alone).
            correlation: lag-one autocorrelation of the noise (AR(1)), in ``[0, 1)``.
        """
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if noise == 0:
            return self._expert(self.sim, None)
        if seed is None:
            seed = int(self.np_random.integers(2**32))
        return self._expert(self.sim, ExpertNoise(noise, correlation, np.random.default_rng(seed)))

    def goal_images(self, every: int | None = None) -> GoalImages:
        """Goal images of the current episode (cached), from the clean expert run in a copy of the
        simulation at the episode's start (whenever they are asked for).

        Args:
            every: also an extra sub-goal image every this many expert steps
                (:func:`envs.goals.expert_goal_images`); ``None``: the task's goals only.
        """
        if self._start_state is None:
            raise RuntimeError(f"{type(self).__name__}.goal_images: call reset() first")
        if every not in self._goals:
            sim = self.sim.copy()
            sim.set_state(self._start_state)
            limit = self.spec.max_episode_steps if self.spec and self.spec.max_episode_steps else self.max_episode_steps
            self._goals[every] = expert_goal_images(
                self._expert(sim, None),
                apply=sim.step,
                observe=lambda: (self._render(sim), sim.robot_state()),
                is_success=lambda: self._is_success(sim),
                capture=self.goal_phases,
                max_steps=limit,
                label=self.task_name,
                every=every,
            )
        return self._goals[every]

    def sim_state(self) -> np.ndarray:
        """The full simulator state (physics, servo set-points, pad poses), float64 ``(S,)``."""
        return self.sim.get_state()

    @cached_property
    def view_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Grip-site positions this env's (first) camera sees, ``(low (3,), high (3,))`` metres
        (:func:`envs.scene.view.view_box`): a box a planner can keep the hand inside."""
        return view_box(self.sim, self.cameras[0], self.image_size)

    def set_sim_state(self, state: np.ndarray) -> None:
        """Restore a state from :meth:`sim_state` of the current episode, e.g. for replay or the
        simulator oracle; the episode's goal images stay those of its start."""
        self.sim.set_state(state)

    # ------------------------------------------------------------------ helpers and hooks
    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": self._render(self.sim), "state": self.sim.robot_state()}

    def _info(self) -> dict[str, Any]:
        """``is_success``, ``object_pos`` and, for tasks with a pad, ``target_pos`` (the centre of
        the pad the object goes to, float32 ``(3,)``): privileged truth for evaluation and probes only."""
        info = {"is_success": self._is_success(self.sim), "object_pos": self._object_positions()}
        if self.pads:
            info["target_pos"] = self.sim.pad_pos(getattr(self, "target", self.pads[0])).astype(np.float32)
        return info

    def _object_positions(self) -> np.ndarray:
        """xyz of the cubes (the task's object first) and markers, float32 ``(3 * K,)``."""
        first = getattr(self, "object", None)
        cubes = sorted(self.cubes, key=lambda color: color != first)  # stable: keeps scene order
        positions = [self.sim.cube_pos(c) for c in cubes] + [self.sim.marker_pos(m) for m in self.markers]
        return np.concatenate(positions).astype(np.float32)

    def _render(self, sim: TabletopSim) -> np.ndarray:
        if self._renderer is None:
            raise RuntimeError(f"{type(self).__name__} is closed")
        views = []
        for camera in self.cameras:
            self._renderer.update_scene(sim.data, camera=camera)
            views.append(self._renderer.render())  # (S, S, 3) uint8, upright (a new array each call)
        return views[0] if len(views) == 1 else np.concatenate(views, axis=0)  # (views * S, S, 3)

    @abstractmethod
    def _reset_task(self, options: dict[str, Any]) -> str:
        """Place the props from ``self.np_random`` (robot already reset); return the instruction."""

    @abstractmethod
    def _is_success(self, sim: TabletopSim) -> bool:
        """Whether the task is solved in ``sim`` (the env's own or a copy)."""

    @abstractmethod
    def _expert(self, sim: TabletopSim, noise: ExpertNoise | None) -> ScriptedExpert:
        """The scripted expert of this task acting in ``sim``."""
