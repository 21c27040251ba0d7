"""A robosuite manipulation environment behind the contract of :mod:`envs.interface`.

The Panda arm is driven by robosuite's BASIC composite controller, whose arm part is the
OSC_POSE end-effector delta controller (1 action unit = 0.05 m and 0.5 rad). robosuite takes
the rotation as an axis-angle vector; this wrapper takes extrinsic ``xyz`` Euler angles and
converts them exactly (rotation vector of the Euler rotation). The controller's rotation input
range is widened to +-2 units at the same 0.5 rad/unit scale, so that no converted rotation
(at most 0.93 rad for Euler angles in [-0.5, 0.5] rad) is clipped by robosuite.

Randomness: robosuite draws object placements and the robot's initial joint noise from one
generator (``env.rng``) shared by its placement samplers. Each ``reset`` draws an episode seed
from ``self.np_random`` and re-seeds that generator in place, so a seeded reset is
deterministic. The scene model itself (e.g. the Lift cube's size) is drawn once, at
construction, from ``model_seed``; resets are soft (``hard_reset=False``) and keep it.

Rendering: shadows and reflections are off (they double the cost of a frame and barely show
from the task cameras) and the offscreen buffer is the image size; multisample anti-aliasing
stays on unless ``antialias=False`` (about 1.6x faster frames, jagged edges). Images are
flipped upright (robosuite's renderer returns them upside down).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
import robosuite
from robosuite.utils.transform_utils import convert_quat
from scipy.spatial.transform import Rotation

from envs._gl import close_at_exit, forget_at_exit
from envs.goals import expert_goal_images
from envs.interface import ACTION_DIM, DEFAULT_IMAGE_SIZE, POS_SCALE, ROT_SCALE, STATE_DIM, GoalImages
from envs.robosuite_tasks.experts import ExpertSettings, ScriptedPickPlaceExpert

# Arguments this wrapper sets itself; they cannot be passed through to robosuite.
_RESERVED_KWARGS = frozenset(
    {
        "robots",
        "controller_configs",
        "has_renderer",
        "has_offscreen_renderer",
        "use_camera_obs",
        "camera_names",
        "camera_heights",
        "camera_widths",
        "hard_reset",
        "ignore_done",
        "horizon",
        "seed",
        "control_freq",
        "renderer",
    }
)
_ROT_INPUT_MAX = 2.0  # action units of rotation robosuite accepts before clipping
_REACH = 1.2  # metres from the robot base that bound the end-effector position (Panda: 0.855)
# Guard against an expert that never finishes while making goal images.
GOAL_STEP_LIMIT = 400


def panda_osc_config() -> dict[str, Any]:
    """robosuite's BASIC composite controller config for the Panda, arm part OSC_POSE.

    Only the right arm is kept (the Panda has nothing else), and the rotation input range is
    widened to +-2 units with the output range scaled alike (still 0.5 rad per unit).
    """
    config = robosuite.load_composite_controller_config(controller="BASIC", robot="Panda")
    arm = copy.deepcopy(config["body_parts"]["right"])
    if arm["type"] != "OSC_POSE":
        raise RuntimeError(f"expected robosuite's Panda arm controller to be OSC_POSE, got {arm['type']}")
    arm["input_max"] = [1.0] * 3 + [_ROT_INPUT_MAX] * 3
    arm["input_min"] = [-1.0] * 3 + [-_ROT_INPUT_MAX] * 3
    arm["output_max"] = [POS_SCALE] * 3 + [ROT_SCALE * _ROT_INPUT_MAX] * 3
    arm["output_min"] = [-POS_SCALE] * 3 + [-ROT_SCALE * _ROT_INPUT_MAX] * 3
    return {"type": config["type"], "body_parts": {"right": arm}}


def euler_to_axis_angle(euler_units: np.ndarray) -> np.ndarray:
    """Rotation vector ``(3,)`` of the extrinsic ``xyz`` Euler rotation ``euler_units`` ``(3,)``.

    Both in action units (``ROT_SCALE`` radians each); exact, not the small-angle shortcut.
    """
    return Rotation.from_euler("xyz", euler_units * ROT_SCALE).as_rotvec() / ROT_SCALE


class RobosuiteTaskEnv(gym.Env):
    """Base class of the robosuite-backed tasks; a subclass names the robosuite env and its objects.

    Args:
        image_size: side of the square RGB observation, in pixels.
        camera: name of the robosuite camera to render (``"agentview"``, ``"frontview"``, ...).
        control_freq: control steps per simulated second.
        render_mode: ``"rgb_array"`` (``render()`` returns the observation image) or ``None``.
        antialias: multisample anti-aliasing of the images (off renders about 1.6x faster).
        model_seed: seed of the scene model drawn once at construction (object sizes).
        **robosuite_kwargs: passed to the robosuite environment (e.g. ``initialization_noise``,
            ``table_full_size``, ``reward_shaping``); arguments this wrapper sets are refused.

    Subclasses set ``task_name``, ``robosuite_env``, ``instruction``, ``expert_settings`` and
    ``goal_phases`` and implement :meth:`_object_bodies` and :meth:`place_target`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}
    task_name: ClassVar[str]
    robosuite_env: ClassVar[str]
    instruction: ClassVar[str]
    expert_settings: ClassVar[ExpertSettings]
    # Expert phase entered -> name of the goal image captured there, in order; the last is "final".
    goal_phases: ClassVar[dict[str, str]]

    def __init__(
        self,
        image_size: int = DEFAULT_IMAGE_SIZE,
        camera: str = "agentview",
        control_freq: float = 20,
        render_mode: str | None = "rgb_array",
        antialias: bool = True,
        model_seed: int = 0,
        **robosuite_kwargs: Any,
    ) -> None:
        if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if control_freq <= 0:
            raise ValueError(f"control_freq must be positive, got {control_freq}")
        reserved = sorted(_RESERVED_KWARGS & robosuite_kwargs.keys())
        if reserved:
            raise ValueError(f"robosuite arguments {reserved} are set by {type(self).__name__}; use its own arguments")
        self._init_kwargs = dict(
            image_size=int(image_size),
            camera=camera,
            control_freq=control_freq,
            render_mode=render_mode,
            antialias=antialias,
            model_seed=model_seed,
            **robosuite_kwargs,
        )
        self.image_size = int(image_size)
        self.camera = camera
        self.render_mode = render_mode
        self._episode_seed: int | None = None
        self._initial_state: np.ndarray | None = None
        self._goals: dict[int | None, GoalImages] = {}  # every -> this episode's goal images
        self._goal_env: RobosuiteTaskEnv | None = None  # a second instance the goal expert runs in
        self._sim_env = robosuite.make(
            self.robosuite_env,
            robots="Panda",
            controller_configs=panda_osc_config(),
            has_renderer=False,
            has_offscreen_renderer=True,
            use_camera_obs=False,
            hard_reset=False,
            ignore_done=True,
            control_freq=control_freq,
            seed=model_seed,
            **robosuite_kwargs,
        )
        close_at_exit(self)  # after robosuite opened its EGL display: our hook must run first
        if camera not in self._sim_env.sim.model.camera_names:
            cameras = self._sim_env.sim.model.camera_names
            self.close()
            raise ValueError(f"camera must be one of {cameras}, got {camera!r}")
        self._configure_renderer(antialias)
        robot = self._sim_env.robots[0]
        self._eef_site = robot.eef_site_id["right"]
        self._eef_body = self._sim_env.sim.model.body_name2id(robot.robot_model.eef_name["right"])
        self._finger_qpos = list(robot._ref_gripper_joint_pos_indexes["right"])
        # State bounds: within the arm's reach of its base, Euler angles, finger distance.
        base = robot.base_pos
        state_low = np.concatenate([base - _REACH, [-np.pi] * 3, [-0.01]]).astype(np.float32)
        state_high = np.concatenate([base + _REACH, [np.pi] * 3, [0.09]]).astype(np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, shape=(self.image_size, self.image_size, 3), dtype=np.uint8),
                "state": gym.spaces.Box(state_low, state_high, shape=(STATE_DIM,), dtype=np.float32),
            }
        )

    # --- gymnasium API -------------------------------------------------------------------

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(height, width)`` of an observation image (one square camera view)."""
        return (self.image_size, self.image_size)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Reset to a new episode; ``seed`` makes it (and everything after) deterministic."""
        self._require_open()
        super().reset(seed=seed)
        self._reset_episode(int(self.np_random.integers(2**63 - 1)))
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        """Apply ``action`` (float ``(7,)`` in [-1, 1]) for one control step."""
        reward = self._apply(action)
        return self._observation(), reward, False, False, self._info()

    def render(self) -> np.ndarray | None:
        """The current camera image, uint8 ``(H, W, 3)`` upright (``None`` without a render mode)."""
        return self._render_image() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Release the simulator, its offscreen renderer and the goal-making copy (idempotent)."""
        if self._goal_env is not None:
            self._goal_env.close()
            self._goal_env = None
        if self._sim_env is not None:
            context = self._sim_env.sim._render_context_offscreen
            if context is not None:
                context.gl_ctx.make_current()  # free GL objects in their own context
            self._sim_env.close()
            self._sim_env = None
        forget_at_exit(self)

    # --- the rest of the contract (env.unwrapped) ---------------------------------------

    def make_expert(self, noise: float = 0.0, seed: int | None = None) -> ScriptedPickPlaceExpert:
        """A scripted expert for the current episode (reads the true state; see :mod:`.experts`).

        Args:
            noise: standard deviation of the exploration noise in action units (0: clean).
            seed: seed of the noise; ``None`` draws one from ``self.np_random`` (only when
                ``noise > 0``, so a clean expert leaves the env's generator alone).
        """
        self._require_reset()
        if seed is None and noise > 0:
            seed = int(self.np_random.integers(2**32))
        return ScriptedPickPlaceExpert(self, self.expert_settings, noise=noise, seed=seed)

    def sim_state(self) -> np.ndarray:
        """The flattened MuJoCo state ``(time, qpos, qvel)``, float64 ``(S,)``."""
        return self._sim_env.sim.get_state().flatten()

    def goal_images(self, every: int | None = None) -> GoalImages:
        """Sub-goal and goal images of this episode, from the clean expert run in a second instance.

        The copy is reset to this episode's start (same episode seed, bitwise the same state)
        and the expert runs there until it is done; this env is not touched. Cached per episode.

        Args:
            every: also an extra sub-goal image every this many expert steps
                (:func:`envs.goals.expert_goal_images`); ``None``: the task's goals only.
        """
        self._require_reset()
        if every not in self._goals:
            if self._goal_env is None:
                self._goal_env = type(self)(**self._init_kwargs)
            self._goals[every] = self._goal_env._expert_goals(self._episode_seed, self._initial_state, every)
        return self._goals[every]

    # --- what the expert reads (privileged) ------------------------------------------------

    def eef_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector (grip site) position ``(3,)`` and hand rotation matrix ``(3, 3)``, world frame."""
        data = self._sim_env.sim.data
        rotation = Rotation.from_quat(self._eef_quat_xyzw()).as_matrix()
        return np.array(data.site_xpos[self._eef_site]), rotation

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Position ``(3,)`` and rotation matrix ``(3, 3)`` of the object the task moves."""
        data = self._sim_env.sim.data
        body = self._object_bodies()[0]
        return np.array(data.body_xpos[body]), np.array(data.body_xmat[body]).reshape(3, 3)

    def _object_bodies(self) -> tuple[int, ...]:
        """MuJoCo body ids of the task's objects, the one the task moves first."""
        raise NotImplementedError

    def place_target(self) -> np.ndarray | None:
        """Resting position ``(3,)`` of the object's centre at the goal; ``None`` for lifting."""
        raise NotImplementedError

    # --- internals -----------------------------------------------------------------------

    def _configure_renderer(self, antialias: bool) -> None:
        """Cheap offscreen rendering: no shadow map, no reflections, an image-sized buffer."""
        sim = self._sim_env.sim
        sim.model.vis.quality.shadowsize = 0
        if not antialias:
            sim.model.vis.quality.offsamples = 0
        context = sim._render_context_offscreen
        context.gl_ctx.make_current()
        context.update_offscreen_size(self.image_size, self.image_size)  # re-creates the GL buffers
        context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def _reset_episode(self, episode_seed: int) -> None:
        """Re-seed robosuite's generator in place (its samplers share it) and reset the sim."""
        self._sim_env.rng.bit_generator.state = np.random.default_rng(episode_seed).bit_generator.state
        self._sim_env.reset()
        self._episode_seed = episode_seed
        self._initial_state = self.sim_state()
        self._goals = {}

    def _require_open(self) -> None:
        if self._sim_env is None:
            raise RuntimeError(f"{self.task_name} is closed")

    def _require_reset(self) -> None:
        self._require_open()
        if self._episode_seed is None:
            raise RuntimeError(f"call reset() on {self.task_name} before using the episode")

    def _apply(self, action: np.ndarray) -> float:
        """Send ``action`` to robosuite's controller and simulate one control step; returns its reward."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        self._require_reset()
        action = np.clip(action, -1.0, 1.0)
        base_rotation = self._sim_env.robots[0].base_ori  # (3, 3): the controller's input frame
        command = np.concatenate(
            [
                base_rotation.T @ action[:3],
                base_rotation.T @ euler_to_axis_angle(action[3:6]),
                action[6:],
            ]
        )
        self._sim_env.step(command)
        # robosuite's lite physics ends on mj_step2, leaving positions, contacts and camera poses
        # one physics substep behind qpos; refresh them so observations, reward and success match
        # sim_state() (mj_forward leaves the state and the warm start alone: same trajectory).
        self._sim_env.sim.forward()
        return float(self._sim_env.reward(command))

    def _is_success(self) -> bool:
        return bool(self._sim_env._check_success())

    def _info(self) -> dict[str, Any]:
        """Privileged fields (not for planners): success, the objects' xyz, float32 ``(3 * K,)``, and
        ``target_pos`` (:meth:`place_target`) for tasks that place the object."""
        positions = self._sim_env.sim.data.body_xpos[list(self._object_bodies())]  # (K, 3)
        info = {"is_success": self._is_success(), "object_pos": positions.astype(np.float32).ravel()}
        target = self.place_target()
        if target is not None:
            info["target_pos"] = np.asarray(target, dtype=np.float32)  # (3,) where the object should rest
        return info

    def _eef_quat_xyzw(self) -> np.ndarray:
        """robosuite's ``robot0_eef_quat``: the hand body's quaternion, (x, y, z, w)."""
        return convert_quat(np.array(self._sim_env.sim.data.body_xquat[self._eef_body]), to="xyzw")

    def _robot_state(self) -> np.ndarray:
        """eef xyz, extrinsic xyz Euler angles, finger distance (m): float32 ``(7,)``."""
        data = self._sim_env.sim.data
        fingers = data.qpos[self._finger_qpos]
        state = np.empty(STATE_DIM, dtype=np.float32)
        state[:3] = data.site_xpos[self._eef_site]
        state[3:6] = Rotation.from_quat(self._eef_quat_xyzw()).as_euler("xyz")
        state[6] = fingers[0] - fingers[1]
        return state

    def _render_image(self) -> np.ndarray:
        sim = self._sim_env.sim
        sim._render_context_offscreen.gl_ctx.make_current()  # other envs may own the current context
        raw = sim.render(width=self.image_size, height=self.image_size, camera_name=self.camera)
        return np.ascontiguousarray(raw[::-1])  # (H, W, 3): OpenGL rows run bottom-up

    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": self._render_image(), "state": self._robot_state()}

    def _expert_goals(self, episode_seed: int, initial_state: np.ndarray, every: int | None = None) -> GoalImages:
        """Run the clean expert from the start of episode ``episode_seed`` and capture its goals."""
        self._reset_episode(episode_seed)
        if not np.array_equal(self.sim_state(), initial_state):
            raise RuntimeError(f"{self.task_name}: the goal copy did not reproduce the start of episode {episode_seed}")
        return expert_goal_images(
            self.make_expert(noise=0.0),
            apply=self._apply,
            observe=lambda: (self._render_image(), self._robot_state()),
            is_success=self._is_success,
            capture=self.goal_phases,
            max_steps=GOAL_STEP_LIMIT,
            restart_phase="approach",  # the object was dropped: the expert starts over
            label=self.task_name,
            every=every,
        )
