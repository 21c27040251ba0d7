"""Latent MPC episodes toward goal images: the world model's energy wired into :class:`planners.MPC`.

Per episode (:func:`run_episode`): reset the env with a held-out seed, take its goal images
(sub-goals first, the final goal last), encode them once, then loop until the time limit:
encode the current observation, plan with the cost "latent energy of the predicted frame vs the
current goal latent" (:class:`WorldModelCosts`), execute the first action, re-plan. Success is
read from ``info["is_success"]`` only after the last step: the planner never sees it and the
episode never stops early on success.

>>> world_model = load_planning_world_model("runs/pretrain_encoder/tiny/encoder.pt",
...                                         "runs/train_predictor/tiny", image_size=64)
>>> result = run_episode(env, world_model, planner, EpisodeConfig(), seed=HELD_OUT_SEED_START)
>>> summarize([result])["success_rate"]

:func:`write_episode_video` and :func:`plot_energies` turn results into files a person can open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from envs.interface import ACTION_DIM, GoalImages
from jepa_wm.data.collect import HELD_OUT_SEED_START
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.ensemble import EnsembleWorldModel
from jepa_wm.gripper_reader import GripperReader, closed_labels
from jepa_wm.object_dynamics import ObjectDynamics
from jepa_wm.object_reader import ObjectReader
from jepa_wm.world_model import (  # image_tensor also re-exported: simulator_costs and scripts import it from here
    EncoderOnly,
    WorldModel,
    encoder_pool,
    find_predictor_checkpoint,
    image_tensor,
    load_world_model,
    read_predictor_checkpoint,
)
from planners import (
    MPC,
    LatentGoalCost,
    MPCConfig,
    ObjectiveConfig,
    SubgoalConfig,
    SubgoalSchedule,
    WorkspaceBox,
    change_token_weights,
    latent_energy,
)
from planners.base import check_positive_int
from planners.protocols import Planner
from planners.workspace import hand_distance

logger = logging.getLogger(__name__)

TRAIN_HINT = ("train one with `python experiments/pretrain_encoder.py` (encoder) and then "
              "`python experiments/train_predictor.py encoder=<encoder.pt> run_dir=<run dir>` (predictor)")


GRIPPER_GOALS = (None, "demo", "reader")  # where goals' gripper targets come from (EpisodeConfig.gripper_goals)


@dataclass(frozen=True)
class EpisodeConfig:
    """How one planning episode runs.

    Args:
        objective: distance and steps of the latent energy.
        mpc: receding-horizon settings.
        steps_per_goal: steps spent on each sub-goal; ``None`` derives them from the env's
            :attr:`GoalImages.steps` hint (the expert's steps between captures) times
            ``hint_scale``, the way V-JEPA 2-AC's 4, 10, 4 fit its episodes.
        hint_scale: how much slower than the clean expert the planner is allowed to be.
        energy_threshold: also switch sub-goals once the observed energy falls below this: one
            number for all, or one entry per goal (``None``: none for that goal;
            :class:`planners.SubgoalConfig`), e.g. a switch on arrival at the first sub-goal only.
        every: besides the task's sub-goals, an extra sub-goal image every this many steps of
            the expert's run (``env.unwrapped.goal_images(every)``); ``None``: none.
        max_steps: steps per episode; ``None`` runs until the env's time limit.
        oracle: score candidates by encoding the simulator's true future frames instead of
            predicting them (:class:`jepa_wm.simulator_costs.SimulatorCosts`): a diagnostic of
            the encoder's energy alone, privileged and slow.
        workspace: a box the planned grip-site positions should stay in (from the observed
            robot state and the planned deltas), charged as a cost; ``None``: no box.
        gripper_goals: where each goal's gripper target (``objective.gripper_weight``) comes
            from: ``"reader"``, read from the goal image by ``gripper_reader``
            (:mod:`jepa_wm.gripper_reader`); ``"demo"``, the gripper the expert had at that goal
            image (:func:`demo_gripper_targets`; privileged, a diagnostic); ``None``: no targets.
        gripper_reader: the :class:`~jepa_wm.gripper_reader.GripperReader` for ``"reader"``.
        object_reader: the :class:`~jepa_wm.object_reader.ObjectReader` that ``objective.object_weight``
            and ``object_arrival`` need: it reads the object's position from each goal latent, each
            prediction and each observation.
        object_arrival: ``None`` or a distance ``d`` (m): on any goal, hold still without planning
            while the reader puts the observed object within ``d`` of where it puts it in the final
            goal (on ``objective.object_dims``): a push that has brought the cube there stops instead of
            pushing it on. The planner's own read of the image, never the simulator's state.
        hand_reader: an :class:`~jepa_wm.object_reader.ObjectReader` trained on the grip site
            (``train_object_reader.py target=hand``) that ``objective.hand_weight`` needs: it reads the
            hand position each goal image shows.
        object_model: an :class:`~jepa_wm.object_dynamics.ObjectDynamics`: plan with it and the
            object reader instead of the latent energy (:class:`~jepa_wm.object_model_costs.ObjectModelCosts`:
            the cube read from each observation, its target from the final goal image); ``None``: the latent
            energy.
        object_model_options: keyword arguments of :class:`~jepa_wm.object_model_costs.ObjectModelCosts`
            (its cost's weights and its filter's noise levels); empty: its defaults.
    """

    objective: ObjectiveConfig = ObjectiveConfig()
    mpc: MPCConfig = MPCConfig()
    steps_per_goal: Sequence[int] | None = None
    hint_scale: float = 3.0
    energy_threshold: float | Sequence[float | None] | None = None
    every: int | None = None
    max_steps: int | None = None
    oracle: bool = False
    workspace: WorkspaceBox | None = None
    gripper_goals: str | None = None
    gripper_reader: GripperReader | None = None
    object_reader: ObjectReader | None = None
    object_arrival: float | None = None
    hand_reader: ObjectReader | None = None
    object_model: ObjectDynamics | None = None
    object_model_options: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.object_model is not None and self.oracle:
            raise ValueError("the simulator oracle scores the latent energy of true frames; it does not take an "
                             "object model (object_model.dynamics=null, or world_model.oracle=false)")
        if self.object_arrival is not None and (isinstance(self.object_arrival, bool)
                                                or not isinstance(self.object_arrival, (int, float))
                                                or not self.object_arrival > 0):
            raise ValueError(f"object_arrival must be None or a distance > 0 (m), got {self.object_arrival!r}")
        if self.uses_object_reader != (self.object_reader is not None):
            raise ValueError("objective.object_weight > 0, object_arrival or an object model and an object_reader "
                             "go together "
                             "(world_model.object_reader: a checkpoint of experiments/train_object_reader.py); got "
                             f"object_weight={self.objective.object_weight}, object_arrival={self.object_arrival} "
                             f"with {'a' if self.object_reader is not None else 'no'} reader")
        if (self.objective.hand_weight > 0) != (self.hand_reader is not None):
            raise ValueError("objective.hand_weight > 0 and a hand_reader go together (world_model.hand_reader: a "
                             "checkpoint of experiments/train_object_reader.py target=hand); got hand_weight="
                             f"{self.objective.hand_weight} with {'a' if self.hand_reader is not None else 'no'} reader")
        if self.gripper_goals not in GRIPPER_GOALS:
            raise ValueError(f"gripper_goals must be one of {list(GRIPPER_GOALS)}, got {self.gripper_goals!r}")
        if (self.gripper_goals == "reader") != (self.gripper_reader is not None):
            raise ValueError("gripper_goals='reader' and a gripper_reader go together (world_model.gripper_reader: "
                             f"a checkpoint of experiments/train_gripper_reader.py); got gripper_goals="
                             f"{self.gripper_goals!r} with {'a' if self.gripper_reader is not None else 'no'} reader")
        if not self.hint_scale > 0:
            raise ValueError(f"hint_scale must be positive, got {self.hint_scale}")
        for name in ("max_steps", "every"):  # None: the time limit / no extra sub-goals
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if self.every is not None and self.steps_per_goal is not None:
            raise ValueError(f"steps_per_goal ({list(self.steps_per_goal)}) needs every=None: with extra sub-goal "
                             f"images every {self.every} expert steps the number of goals depends on the expert's run")
        if self.steps_per_goal is not None:
            object.__setattr__(self, "steps_per_goal", tuple(int(s) for s in self.steps_per_goal))
        threshold = self.energy_threshold
        if threshold is not None and not isinstance(threshold, (int, float)):
            object.__setattr__(self, "energy_threshold", SubgoalConfig(energy_threshold=threshold).energy_threshold)

    @property
    def uses_object_reader(self) -> bool:
        """Whether these settings read object positions (``objective.object_weight``, ``object_arrival`` or an
        object model)."""
        return self.objective.object_weight > 0 or self.object_arrival is not None or self.object_model is not None


@dataclass
class EpisodeResult:
    """One episode: ``success`` from the env after the last step, per-step timings and energies.

    ``final_state`` is the robot state ``(7,)`` observed after the last step and
    ``final_object_pos`` the env's true object positions ``(3 * K,)`` then (``info["object_pos"]``,
    the manipulated object first; the marker in ``reach``): for failure analysis, never seen by
    the planner. ``frames`` are the observations ``(steps + 1)`` x uint8 ``(H, W, 3)`` and ``goal_images``
    the episode's goals, for videos; they are left out of :meth:`as_dict`.
    """

    seed: int
    success: bool
    steps: int
    goal_names: tuple[str, ...]
    steps_per_goal: tuple[int, ...] | None
    time_per_action_s: list[float]  # wall time of each action: its observed energy, then the plan or the hold
    mpc: dict[str, Any]  # planners.MPCLog.as_dict() but act_times_s (= time_per_action_s)
    final_state: list[float] = field(default_factory=list)
    final_object_pos: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    goal_images: tuple[np.ndarray, ...] = field(default=(), repr=False)

    @property
    def median_time_per_action_s(self) -> float:
        return float(np.median(self.time_per_action_s))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (no images)."""
        return {
            "seed": self.seed, "success": self.success, "steps": self.steps,
            "goal_names": list(self.goal_names),
            "steps_per_goal": None if self.steps_per_goal is None else list(self.steps_per_goal),
            "median_time_per_action_s": self.median_time_per_action_s, "time_per_action_s": self.time_per_action_s,
            "final_state": self.final_state, "final_object_pos": self.final_object_pos, "mpc": self.mpc,
        }


# ---------------------------------------------------------------------- loading
def trained_tasks(checkpoint: Mapping[str, Any]) -> list[str]:
    """Tasks whose episodes a predictor checkpoint was trained on (from its data summary)."""
    files = (checkpoint.get("data") or {}).get("files", [])
    return sorted({f["meta"]["task"] for f in files if "task" in f.get("meta", {})})


def load_planning_world_model(
    encoder_path: str | Path, predictor_path: str | Path | Sequence[str | Path] | None, *,
    image_size: int | Sequence[int], action_dim: int = ACTION_DIM, device: torch.device | str = "cpu",
    check_fingerprint: bool = True, task: str | None = None, precision: str = "float32",
) -> WorldModel | EncoderOnly:
    """The world model for planning in a task with ``image_size`` observations: an int for square
    ones, or ``(height, width)`` (the env's ``image_hw``; several camera views are stacked in height).

    Args:
        predictor_path: a predictor checkpoint (file or training run directory), or a list of
            them trained on this encoder's latents: several make an
            :class:`jepa_wm.ensemble.EnsembleWorldModel` (their mean prediction). ``None``: the
            encoder alone (:class:`jepa_wm.world_model.EncoderOnly`), for the simulator oracle.
        task: when given, the predictor must have been trained on episodes of this task
            (checked against the data summary of its checkpoint, when it records tasks).
        precision: ``"float32"`` or ``"bfloat16"``: the predictor's rollouts under bf16
            autocast (:class:`jepa_wm.world_model.WorldModel`).

    Raises:
        FileNotFoundError: a checkpoint is missing (the message says how to train one).
        ValueError: the checkpoints do not fit each other or the task (task not trained on,
            action size, image size, encoder width, tokens per frame, encoder weights).
    """
    encoder_path = Path(encoder_path)
    if not encoder_path.is_file():
        raise FileNotFoundError(f"encoder checkpoint {encoder_path} not found: expected the encoder.pt "
                                f"written at the end of encoder pretraining; {TRAIN_HINT}")
    if predictor_path is None:
        return EncoderOnly(_checked_encoder(encoder_path, image_size, pool=1).to(device))
    paths = [predictor_path] if isinstance(predictor_path, (str, Path)) else list(predictor_path)
    if not paths:
        raise ValueError("world_model.predictor is an empty list: give a predictor checkpoint or several")
    checkpoints = [_read_planning_predictor(path, task) for path in paths]
    pools = {encoder_pool(checkpoint) for checkpoint in checkpoints}
    if len(pools) > 1:
        raise ValueError(f"the predictors {[str(p) for p in paths]} pool the encoder's tokens differently "
                         f"({sorted(pools)}): an ensemble needs one token grid")
    encoder = _checked_encoder(encoder_path, image_size, pool=pools.pop()).to(device)
    members, fingerprint = [], encoder.fingerprint() if check_fingerprint else None  # hashed once for all
    for path, checkpoint in zip(paths, checkpoints, strict=True):
        try:
            members.append(load_world_model(checkpoint, encoder, action_dim=action_dim, precision=precision,
                                            check_fingerprint=check_fingerprint, fingerprint=fingerprint))
        except ValueError as err:
            raise ValueError(f"the world model does not fit this task or encoder: {path}: {err}") from err
    return members[0] if len(members) == 1 else EnsembleWorldModel(members)


def _checked_encoder(encoder_path: Path, image_size: int | Sequence[int], pool: int) -> FrozenEncoder:
    """The encoder checkpoint at ``encoder_path``, checked to take the task's images."""
    encoder = load_encoder_checkpoint(encoder_path, pool=pool)
    check_encoder_fits_images(encoder, image_size, encoder_path)
    return encoder


def check_encoder_fits_images(encoder: FrozenEncoder, image_size: int | Sequence[int],
                              encoder_path: str | Path) -> None:
    """Raise ``ValueError`` (saying which ``task.image_size`` and how many cameras) unless
    ``encoder`` takes the task's images: ``image_size`` an int (square) or ``(height, width)``."""
    image_hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if tuple(encoder.img_hw) != image_hw:
        height, width = encoder.img_hw
        views, task_views = height // width, image_hw[0] // image_hw[1]
        cameras = "" if views == task_views else (
            (f" and {views} cameras in task.camera (e.g. front+side)" if views > 1 else
             " and one camera in task.camera (null: the task's own)")
            + " (plan.py takes task.camera from the world model config: world_model.camera; world_model=tiny "
              "plans on one camera, world_model=tiny_2cam on front+side)")
        raise ValueError(f"the task renders {image_hw[0]}x{image_hw[1]} (height x width) images, the encoder "
                         f"{encoder_path} expects {height}x{width}: set task.image_size={width}{cameras}, or use "
                         f"an encoder pretrained on this task's images")


def _read_planning_predictor(predictor_path: str | Path, task: str | None) -> dict[str, Any]:
    """A predictor checkpoint's contents, checked to exist and (when ``task`` is given) to have
    been trained on ``task``."""
    try:
        predictor_file = find_predictor_checkpoint(predictor_path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"predictor checkpoint not found: {err}; {TRAIN_HINT}") from err
    if not predictor_file.is_file():
        raise FileNotFoundError(f"predictor checkpoint {predictor_file} not found: expected a training run "
                                f"directory or one of its step_*.pt files; {TRAIN_HINT}")
    checkpoint = read_predictor_checkpoint(predictor_file)
    tasks = trained_tasks(checkpoint)
    if task is not None and tasks and task not in tasks:
        raise ValueError(
            f"the predictor {predictor_file} was trained on tasks {tasks}, not on {task!r}: collect episodes "
            f"(`python experiments/collect.py task={task} episodes=300 workers=2 out=data/{task}.hdf5`), "
            f"then train an encoder and predictor on them ({TRAIN_HINT}, with data.paths=[data/{task}.hdf5]) "
            f"and pass world_model.encoder=... world_model.predictor=...; or set world_model.any_task=true"
        )
    return checkpoint


def encode_goals(world_model: WorldModel | EncoderOnly, goals: GoalImages) -> Tensor:
    """Goal latents ``(G, N, D)`` of the goal images, in order (sub-goals first, final last).

    Raises:
        ValueError: a goal image is not the encoder's size (``(H, W, 3)`` uint8 expected).
    """
    expected = (*world_model.encoder.img_hw, 3)
    for name, image in zip(goals.names, goals.images, strict=True):
        if image.shape != expected or image.dtype != np.uint8:
            raise ValueError(f"goal image {name!r} must be uint8 {expected} (the encoder's size), "
                             f"got {image.dtype} {image.shape}; render goals at the observation size")
    images = torch.stack([image_tensor(image) for image in goals.images])  # (G, 3, H, W)
    with torch.no_grad():
        return world_model.encode(images)  # (G, N, D)


def hint_steps(goals: GoalImages, hint_scale: float) -> tuple[int, ...]:
    """Steps on each sub-goal (the final goal has none): the expert's steps between goal captures
    (``goals.steps`` are cumulative) times ``hint_scale``, at least 1 each."""
    gaps = np.diff(np.asarray(goals.steps), prepend=0)[:-1]  # expert steps spent on each sub-goal
    return tuple(max(1, round(hint_scale * int(g))) for g in gaps)


def subgoal_config(goals: GoalImages, config: EpisodeConfig) -> SubgoalConfig:
    """When to move between ``goals``: ``config.steps_per_goal`` when set, else :func:`hint_steps`
    with ``config.hint_scale``."""
    steps = config.steps_per_goal
    if steps is None and len(goals.names) > 1:
        steps = hint_steps(goals, config.hint_scale)
    several = len(goals.names) > 1  # a single (final) goal never switches: both rules ignored
    return SubgoalConfig(steps_per_goal=steps if several else None,
                         energy_threshold=config.energy_threshold if several else None)


@dataclass(frozen=True)
class Goal:
    """A goal for the MPC beyond its latent ``(N, D)``: the weights ``(N,)`` of its tokens in
    the energy, its gripper target (-1 open, +1 closed), its object position ``(3,)`` as the
    object reader reads the latent (:class:`planners.LatentGoalCost`) and its hand position ``(3,)``
    as the hand reader reads it (:meth:`WorldModelCosts.penalty`)."""

    latent: Tensor
    token_weights: Tensor | None = None
    gripper: float | None = None
    object_position: Tensor | None = None
    hand_position: Tensor | None = None


def planning_goals(latents: Tensor, first: Tensor, change_weight: float = 0.0,
                   grippers: Sequence[float] | None = None, objects: Tensor | None = None,
                   hands: Tensor | None = None) -> list[Goal]:
    """Goal latents ``(G, N, D)`` in order as :class:`Goal`: with ``change_weight``, each weighted
    by how its tokens change from the goal before (the first goal: from ``first`` ``(N, D)``, the
    episode's first observation; :func:`planners.change_token_weights`), with its entry of
    ``grippers`` (one per goal) as its gripper target, its row of ``objects`` ``(G, 3)`` as its
    object position and its row of ``hands`` ``(G, 3)`` as its hand position."""
    for name, values in (("gripper target", grippers), ("object position", objects), ("hand position", hands)):
        if values is not None and len(values) != len(latents):
            raise ValueError(f"expected one {name} per goal ({len(latents)}), got {len(values)}")
    previous = torch.cat([first[None].to(latents), latents[:-1]])  # (G, N, D)
    return [Goal(goal, change_token_weights(goal, before, change_weight) if change_weight else None,
                 None if grippers is None else float(grippers[i]), None if objects is None else objects[i],
                 None if hands is None else hands[i])
            for i, (goal, before) in enumerate(zip(latents, previous, strict=True))]


def demo_gripper_targets(goals: GoalImages, gripper_open: float) -> list[float]:
    """The gripper command each goal image shows, from the expert's state there (privileged: a
    diagnostic of what a gripper read from the goal images would give): +1 (closed) where the
    fingers are less than 80% of ``gripper_open`` apart (shut, or closed on a cube), else -1."""
    closed = closed_labels(np.asarray(goals.states, dtype=float)[:, 6], gripper_open)
    return [1.0 if shut else -1.0 for shut in closed]


def _gripper_targets(goals: GoalImages, config: EpisodeConfig, gripper_open: float) -> list[float] | None:
    """Each goal's gripper target as ``config.gripper_goals`` says (``None``: no targets)."""
    if config.gripper_goals == "demo":
        return demo_gripper_targets(goals, gripper_open)
    if config.gripper_goals == "reader":
        return config.gripper_reader.targets(goals.images)  # type: ignore[union-attr]  (checked by EpisodeConfig)
    return None


def _as_goal(goal: Tensor | Goal) -> Goal:
    return goal if isinstance(goal, Goal) else Goal(goal)


# ---------------------------------------------------------------------- cost
class WorldModelCosts:
    """``make_cost`` and ``energy_fn`` for :class:`planners.MPC` from a world model.

    Observations are env dicts ``{"image": (H, W, 3) uint8, "state": (7,)}``, goals latents
    ``(N, D)`` or :class:`Goal`. The latest observation's latent is kept, so the energy
    and the cost of one step encode it once. With a ``workspace`` box, plans are charged for
    leaving it (positions from the observed state and the world model's ``integration.pos_scale``).
    With an ``object_reader``, goals that carry an object position charge predictions by where the
    reader puts the object (``objective.object_weight``).
    """

    def __init__(self, world_model: WorldModel, objective: ObjectiveConfig = ObjectiveConfig(),
                 workspace: WorkspaceBox | None = None, object_reader: ObjectReader | None = None) -> None:
        self.world_model = world_model
        self.objective = objective
        self.workspace = workspace
        self.object_reader = object_reader
        self._last: tuple[np.ndarray, Tensor] | None = None

    def latent(self, obs: Mapping[str, np.ndarray]) -> Tensor:
        """The observation's latent ``(N, D)``."""
        image = obs["image"]
        if self._last is None or self._last[0] is not image:
            with torch.no_grad():
                self._last = (image, self.world_model.encode(image_tensor(image)))  # (N, D)
        return self._last[1]

    def object_position(self, obs: Mapping[str, np.ndarray]) -> Tensor:
        """Where the object reader puts the object in the observation ``(3,)`` (m)."""
        if self.object_reader is None:
            raise ValueError("object_position needs an object_reader")
        with torch.no_grad():
            return self.object_reader(self.latent(obs)[None])[0]

    def make_cost(self, obs: Mapping[str, np.ndarray], goal: Tensor | Goal) -> LatentGoalCost:
        """Cost of candidate actions ``(B, H, 7)``: energy of their rollout from ``obs`` vs ``goal``."""
        goal = _as_goal(goal)
        target = goal.object_position if self.object_reader is not None else None
        return LatentGoalCost(self.rollout_fn(obs), goal.latent, self.objective, self.penalty(obs, goal),
                              observed=self.latent(obs), token_weights=goal.token_weights, gripper_target=goal.gripper,
                              object_reader=None if target is None else self.object_reader, object_target=target)

    def rollout_fn(self, obs: Mapping[str, np.ndarray]) -> Callable[[Tensor], Tensor]:
        """The predicted latents of candidate actions from ``obs``: ``(B, H, 7) -> (B, H, N, D)``."""
        z = self.latent(obs)[None]  # (1, N, D)
        state = torch.as_tensor(obs["state"], dtype=torch.float32, device=z.device)[None]  # (1, 7)
        return lambda actions: self.world_model.rollout(z, state, actions)

    def penalty(self, obs: Mapping[str, np.ndarray], goal: Tensor | Goal | None = None
                ) -> Callable[[Tensor], Tensor] | None:
        """The cost ``actions (B, H, A) -> (B,)`` of the planned grip-site positions from ``obs``: the
        workspace box's, plus ``objective.hand_weight`` x the last planned position's distance (m)
        to the goal's read hand position (:attr:`Goal.hand_position`, on ``objective.hand_dims``)
        beyond ``objective.hand_margin``; ``None`` when neither applies."""
        start = torch.as_tensor(obs["state"][:3], dtype=torch.float32)  # (3,) observed grip site
        scale = self.world_model.integration.pos_scale
        hand = _as_goal(goal).hand_position if goal is not None and self.objective.hand_weight > 0 else None
        if self.workspace is None and hand is None:
            return None
        workspace, objective = self.workspace, self.objective

        def cost(actions: Tensor) -> Tensor:
            total = actions.new_zeros(actions.shape[0])  # (B,)
            if workspace is not None:
                total = total + workspace.cost(start, actions, pos_scale=scale)
            if hand is not None:
                distance = hand_distance(start, actions, scale, hand, objective.hand_dims)
                total = total + objective.hand_weight * (distance - objective.hand_margin).clamp(min=0)
            return total

        return cost

    def energy(self, obs: Mapping[str, np.ndarray], goal: Tensor | Goal) -> float:
        """Energy of the observation itself toward ``goal``."""
        goal = _as_goal(goal)
        return float(latent_energy(self.latent(obs)[None], goal.latent, self.objective.distance,
                                   self.objective.smoothing, token_weights=goal.token_weights))


# ---------------------------------------------------------------------- episodes
def _object_arrived(costs: WorldModelCosts, target: Tensor, dims: Sequence[int], distance: float,
                    obs: Mapping[str, np.ndarray]) -> bool:
    """Whether the object read from ``obs`` lies within ``distance`` (m) of ``target`` ``(3,)`` on ``dims``."""
    dims = list(dims)
    read = costs.object_position(obs)  # (3,)
    return bool(torch.linalg.vector_norm(read[dims] - target.to(read)[dims]) < distance)


def run_episode(env: gym.Env, world_model: WorldModel | EncoderOnly, planner: Planner, config: EpisodeConfig,
                seed: int, *, keep_frames: bool = True, progress: bool = False,
                far_planner: Planner | None = None) -> EpisodeResult:
    """One MPC episode of ``env`` from ``reset(seed=seed)`` toward the env's goal images.

    Args:
        env: a task from :func:`envs.make` (time-limited).
        world_model: encoder + predictor for this task's images and actions.
        planner: any planner over 7-D actions.
        config: objective, MPC, sub-goal and length settings.
        seed: a held-out seed (``>= HELD_OUT_SEED_START``); also seeds the planner.
        keep_frames: keep observations and goal images for videos.
        progress: tqdm bar over the steps.
        far_planner: the planner used while the goal is far (``config.mpc.far_energy``).
    """
    if seed < HELD_OUT_SEED_START:
        raise ValueError(f"planning seeds must be held out (>= {HELD_OUT_SEED_START}), got {seed}: "
                         f"lower seeds are training episodes")
    obs, info = env.reset(seed=seed)
    goals = env.unwrapped.goal_images(config.every)
    latents = encode_goals(world_model, goals)  # (G, N, D)
    with torch.no_grad():
        objects = None if config.object_reader is None else config.object_reader(latents)  # (G, 3)
        hands = None if config.hand_reader is None else config.hand_reader(latents)  # (G, 3)
    if config.oracle:
        from jepa_wm.simulator_costs import SimulatorCosts  # it builds on this module

        costs: WorldModelCosts = SimulatorCosts(env, world_model, config.objective, config.workspace,
                                                config.object_reader)
    elif config.object_model is not None:
        from jepa_wm.object_model_costs import ObjectModelCosts  # it builds on this module

        assert config.object_reader is not None and objects is not None
        costs = ObjectModelCosts(world_model, config.object_reader, config.object_model, objects[-1],
                                 config.objective, config.workspace, **config.object_model_options)
    else:
        costs = WorldModelCosts(world_model, config.objective, config.workspace, config.object_reader)
    schedule_config = subgoal_config(goals, config)
    weight = config.objective.change_weight
    grippers = _gripper_targets(goals, config, world_model.integration.gripper_open)
    targets = (planning_goals(latents, costs.latent(obs), weight, grippers, objects, hands)
               if weight or grippers or objects is not None or hands is not None else list(latents))
    schedule = SubgoalSchedule(targets, schedule_config)
    done_fn = None
    if config.object_arrival is not None:
        assert objects is not None
        done_fn = partial(_object_arrived, costs, objects[-1], config.objective.object_dims, config.object_arrival)
    mpc = MPC(planner, costs.make_cost, config.mpc, energy_fn=costs.energy, far_planner=far_planner, done_fn=done_fn)
    mpc.reset(schedule, seed=seed)
    limit = config.max_steps or env.spec.max_episode_steps
    frames = [obs["image"]] if keep_frames else []
    last = [(obs, info)]  # the latest observation and info, kept by `step`

    def step(action: np.ndarray) -> tuple[Any, ...]:
        outcome = env.step(action)
        last[0] = (outcome[0], outcome[4])
        if keep_frames:
            frames.append(outcome[0]["image"])
        return outcome

    mpc.run(obs, step, limit, progress=progress, desc=f"episode {seed}")
    obs, info = last[0]
    log = mpc.log.as_dict()
    step_times = log.pop("act_times_s")  # recorded as time_per_action_s
    success = bool(info["is_success"])  # read once, after the episode
    logger.info("seed %d: success %s after %d steps, median %.3f s per action", seed, success,
                len(step_times), float(np.median(step_times)))
    return EpisodeResult(
        seed=seed, success=success, steps=len(step_times), goal_names=goals.names,
        steps_per_goal=schedule_config.steps_per_goal, time_per_action_s=step_times, mpc=log,
        final_state=np.asarray(obs["state"], dtype=float).tolist(),
        final_object_pos=np.asarray(info["object_pos"], dtype=float).tolist(),
        frames=frames if keep_frames else [], goal_images=goals.images if keep_frames else (),
    )


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Success rate and the median / 95th percentile of the time per action over all steps."""
    if not results:
        raise ValueError("summarize needs at least one episode result")
    times = np.concatenate([r.time_per_action_s for r in results])
    return {
        "episodes": len(results),
        "success_rate": float(np.mean([r.success for r in results])),
        "median_time_per_action_s": float(np.median(times)),
        "p95_time_per_action_s": float(np.percentile(times, 95)),
    }


# ---------------------------------------------------------------------- files
def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return image.repeat(scale, axis=0).repeat(scale, axis=1)  # (H * s, W * s, 3)


def write_episode_video(path: str | Path, result: EpisodeResult, *, scale: int = 4, fps: int = 10) -> Path:
    """An mp4 with, side by side, the observation, the current sub-goal and the final goal.

    Needs ``run_episode(..., keep_frames=True)``.
    """
    import imageio.v2 as imageio

    if not result.frames or not result.goal_images:
        raise ValueError("the result holds no frames: run the episode with keep_frames=True")
    indices = result.mpc["goal_indices"]
    final = result.goal_images[-1]
    path = Path(path)
    with imageio.get_writer(path, fps=fps, macro_block_size=1) as writer:
        for t, frame in enumerate(result.frames):
            goal = result.goal_images[indices[min(t, len(indices) - 1)]]
            writer.append_data(_upscale(np.concatenate([frame, goal, final], axis=1), scale))
    return path


def plot_energies(path: str | Path, results: Sequence[EpisodeResult]) -> Path:
    """``energy.png``: the observed latent energy toward the current goal over steps, per episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(r.mpc["observed_energies"], marker=".", label=f"seed {r.seed} ({'success' if r.success else 'fail'})")
        switches = [t for t in range(1, r.steps) if r.mpc["goal_indices"][t] != r.mpc["goal_indices"][t - 1]]
        for t in switches:
            ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("latent energy to the current goal")
    ax.set_title("observed energy (dotted: sub-goal switches)")
    if len(results) <= 10:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
