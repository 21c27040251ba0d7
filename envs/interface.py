"""The contract every task in :mod:`envs` keeps, whatever simulates it.

Conventions (after V-JEPA 2-AC, and matching robosuite's Panda end-effector controller):

* **Action** ``(7,)`` float32 in ``Box(-1, 1)``: delta end-effector position (x, y, z),
  delta orientation as extrinsic ``xyz`` Euler angles, gripper command. One unit of
  position is :data:`POS_SCALE` metres, one unit of rotation :data:`ROT_SCALE` radians
  (robosuite's defaults); the gripper command is absolute: -1 open, +1 closed.
* **State** ``(7,)`` float32: end-effector position in metres (world frame), extrinsic
  ``xyz`` Euler angles in radians, gripper opening in metres (distance between the fingers).
* **Observation**: ``{"image": uint8 (H, W, 3) upright, "state": float32 (7,)}``.
  Camera name and size are constructor arguments (``camera=``, ``image_size=``; 64x64 default);
  our own tasks stack several cameras' views top to bottom (``camera="front+side"``:
  ``(2 * image_size, image_size, 3)``), and every env gives its image's ``(H, W)`` as ``image_hw``.
* **Success** is ``info["is_success"]`` computed from the true simulator state; it is never
  part of the observation. ``info["object_pos"]`` float32 ``(3 * K,)`` holds the true xyz of
  the task's objects (the manipulated one first; the marker for ``reach``), for probes and
  analysis; tasks that place the object somewhere add ``info["target_pos"]`` float32 ``(3,)``.
  They come with ``reset`` and ``step``; planners must not read them.
* ``env.unwrapped.instruction`` is a sentence naming the episode's goal (for language goals).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

ACTION_DIM = 7
STATE_DIM = 7
POS_SCALE = 0.05  # metres per action unit (robosuite OSC default output_max)
ROT_SCALE = 0.5  # radians per action unit (robosuite OSC default output_max)
DEFAULT_IMAGE_SIZE = 64
HELD_OUT_SEED_START = 1_000_000  # planning / evaluation seeds start here; training episodes use seeds below


@dataclass(frozen=True)
class GoalImages:
    """Goal images for one episode, produced by running the scripted expert in a copy.

    Attributes:
        images: sub-goal images in the order they should be reached, the final goal last;
            each uint8 ``(H, W, 3)``, rendered like the observations.
        names: one name per image, e.g. ``("grasped", "above_target", "final")``.
        steps: expert step at which each image was captured (a hint for sub-goal schedules).
        states: the 7-D robot state at each image, float32 ``(len(images), 7)``.
    """

    images: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    steps: tuple[int, ...]
    states: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if n == 0:
            raise ValueError("GoalImages needs at least the final goal image")
        if len(self.names) != n or len(self.steps) != n or len(self.states) != n:
            raise ValueError(
                f"GoalImages fields must have one entry per image ({n}); got "
                f"{len(self.names)} names, {len(self.steps)} steps, {len(self.states)} states"
            )

    @property
    def final(self) -> np.ndarray:
        """The final goal image, uint8 ``(H, W, 3)``."""
        return self.images[-1]

    @property
    def subgoals(self) -> tuple[np.ndarray, ...]:
        """The sub-goal images before the final one (empty for single-goal tasks)."""
        return self.images[:-1]


@runtime_checkable
class Expert(Protocol):
    """A scripted policy bound to one environment; it may read the true simulator state.

    Made by ``env.unwrapped.make_expert(noise=..., seed=...)`` after ``reset``;
    ``noise`` is the standard deviation of exploration noise in action units
    (0 gives the clean expert).
    """

    @property
    def phase(self) -> str:
        """Name of the current phase, e.g. ``"approach"``, ``"grasp"``, ``"lift"``, ``"done"``."""
        ...

    def act(self) -> np.ndarray:
        """The next action, float32 ``(7,)`` inside the action space."""
        ...


@runtime_checkable
class ManipulationEnv(Protocol):
    """What experiments and goal makers may rely on beyond the gymnasium API (``env.unwrapped``)."""

    task_name: str
    instruction: str
    image_size: int  # side of one camera's square view
    camera: str  # a camera name, or several joined by "+" (views stacked top to bottom)
    image_hw: tuple[int, int]  # (height, width) of an observation image
    goal_phases: Mapping[str, str]  # expert phase -> goal name, in the order of goal_images() (every=None)

    def make_expert(self, noise: float = 0.0, seed: int | None = None) -> Expert:
        """A scripted expert for the current episode."""
        ...

    def goal_images(self, every: int | None = None) -> GoalImages:
        """Goal (and sub-goal) images for the current episode; leaves this env's state untouched.
        ``every``: also an image every this many steps of the expert's run."""
        ...

    def sim_state(self) -> np.ndarray:
        """The full simulator state, flattened float64 ``(S,)`` (stored as ``states`` for replay)."""
        ...
