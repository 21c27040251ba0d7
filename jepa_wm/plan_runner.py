"""Run many planning episodes from a resolved ``plan`` config, sequentially or in worker processes.

``experiments/plan.py`` is a thin wrapper around :func:`run_episodes`. Each worker process
builds its own env, world model and planner once (:func:`build`) and then runs whole
episodes; episode ``i`` uses seed ``seed + i`` for the env and the planner, so the results
are the same for any number of workers. Processes are spawned (never forked), which is safe
with MuJoCo's GL contexts and torch's thread pools.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tqdm import tqdm

import envs
from jepa_wm.gripper_reader import GripperReader
from jepa_wm.object_dynamics import ObjectDynamics
from jepa_wm.object_reader import ObjectReader
from jepa_wm.planning import EpisodeConfig, EpisodeResult, load_planning_world_model, run_episode, write_episode_video
from jepa_wm.world_model import WorldModel
from planners import MPCConfig, ObjectiveConfig, SubgoalConfig, SubgoalSchedule, WorkspaceBox
from planners.protocols import Planner

logger = logging.getLogger(__name__)

Setup = tuple[gym.Env, WorldModel, Planner, EpisodeConfig, Planner | None]  # the last: the far planner
_worker: dict[str, Setup] = {}  # per process: what build() made


class PlanSetupError(ValueError):
    """A ``plan`` config that cannot run: a missing or mismatched checkpoint or a bad setting.

    The message says what was expected and what came (and how to train a missing checkpoint).
    """


def build(resolved: Mapping[str, Any], device: torch.device) -> Setup:
    """The env, world model, planner, episode settings and far planner of a resolved ``plan`` config.

    The far planner (``None`` without one) is ``planner`` with the config's ``far_planner``
    overrides merged in (e.g. ``{config: {horizon: 2}}``), used while the observed energy is
    above ``mpc.far_energy``.

    The settings are checked against the task before any episode runs: explicit sub-goal
    steps must fit the task's goals, and the simulator oracle needs an env that can save and
    restore its state.

    Raises:
        PlanSetupError: a missing or mismatched checkpoint, or settings the task cannot take.
    """
    env = envs.make_from_config(resolved["task"])
    world = resolved["world_model"]
    try:
        if world["predictor"] is None and not world["oracle"]:
            raise ValueError("world_model.predictor=null plans with the encoder alone, which only the simulator "
                             "oracle can do: add world_model.oracle=true, or give a predictor checkpoint")
        world_model = load_planning_world_model(world["encoder"], world["predictor"], device=device,
                                                image_size=env.unwrapped.image_hw,
                                                check_fingerprint=world["check_fingerprint"],
                                                precision=world["precision"],
                                                task=None if world["any_task"] else resolved["task"]["name"])
        planner = instantiate(resolved["planner"], seed=resolved["seed"], device=device)
        far_planner = _far_planner(resolved, device)
        reader = _gripper_reader(resolved, env)
        objective = ObjectiveConfig(**resolved["objective"])
        object_model = _object_model(resolved)
        object_reader = _object_reader(world, objective, resolved["subgoals"].get("object_arrival"), world_model,
                                       device, object_model is not None)
        hand_reader = _hand_reader(world, objective, world_model, device)
        config = EpisodeConfig(objective=objective, mpc=MPCConfig(**resolved["mpc"]),
                               max_steps=resolved["max_steps"], oracle=world["oracle"], **resolved["subgoals"],
                               workspace=workspace_box(resolved.get("workspace"), env), gripper_reader=reader,
                               object_reader=object_reader, hand_reader=hand_reader, object_model=object_model,
                               object_model_options={key: value for key, value in resolved["object_model"].items()
                                                     if key != "dynamics"})
        _check_task_fits(env, config)
    except (FileNotFoundError, ValueError, TypeError, InstantiationException) as err:
        env.close()
        raise PlanSetupError(str(err)) from err
    return env, world_model, planner, config, far_planner


def _gripper_reader(resolved: Mapping[str, Any], env: gym.Env) -> GripperReader | None:
    """The world model's gripper reader when ``subgoals.gripper_goals=reader``, else ``None``.

    Raises:
        FileNotFoundError: the reader checkpoint is missing (the message says how to train one).
        ValueError: no reader configured, or one for another image size than the task's.
    """
    if resolved["subgoals"].get("gripper_goals") != "reader":
        return None
    path = resolved["world_model"].get("gripper_reader")
    if path is None:
        raise ValueError("subgoals.gripper_goals=reader needs world_model.gripper_reader: a checkpoint of "
                         "experiments/train_gripper_reader.py")
    reader, _ = GripperReader.load(path)
    if reader.image_hw != tuple(env.unwrapped.image_hw):
        raise ValueError(f"the gripper reader {path} reads {reader.image_hw[0]}x{reader.image_hw[1]} images, the task "
                         f"renders {env.unwrapped.image_hw[0]}x{env.unwrapped.image_hw[1]}: train one on this task's images")
    return reader


def _object_model(resolved: Mapping[str, Any]) -> ObjectDynamics | None:
    """The object model of ``object_model.dynamics`` (``None`` when null), checked to be trained on this task
    (unless ``world_model.any_task``).

    Raises:
        FileNotFoundError: the checkpoint is missing (the message says how to train one).
        ValueError: it is not an object model, or one of another task.
    """
    path = resolved["object_model"]["dynamics"]
    if path is None:
        return None
    model, meta = ObjectDynamics.load(path)
    task = resolved["task"]["name"]
    if meta.get("task") != task and not resolved["world_model"]["any_task"]:
        raise ValueError(f"the object model {path} was trained on {meta.get('task')!r} episodes, not {task!r}: train "
                         f"one with `python experiments/train_object_dynamics.py task={task}` (or "
                         "world_model.any_task=true)")
    return model


def _object_reader(world: Mapping[str, Any], objective: ObjectiveConfig, object_arrival: float | None,
                   world_model: WorldModel, device: torch.device, object_model: bool = False) -> ObjectReader | None:
    """``world["object_reader"]`` when ``objective.object_weight > 0``, ``subgoals.object_arrival`` is set or an
    object model plans, else ``None``.

    Raises:
        FileNotFoundError: the reader checkpoint is missing (the message says how to train one).
        ValueError: no reader configured, one trained on another encoder's latents, or one that reads the hand.
    """
    if objective.object_weight == 0 and object_arrival is None and not object_model:
        return None
    path = world.get("object_reader")
    if path is None:
        raise ValueError(f"objective.object_weight={objective.object_weight}, subgoals.object_arrival="
                         f"{object_arrival} and object_model.dynamics need world_model.object_reader: a checkpoint "
                         "of experiments/train_object_reader.py")
    reader, _ = ObjectReader.load(path, encoder_fingerprint=world_model.encoder.fingerprint(), target="object")
    return reader.to(device)


def _hand_reader(world: Mapping[str, Any], objective: ObjectiveConfig, world_model: WorldModel,
                 device: torch.device) -> ObjectReader | None:
    """``world["hand_reader"]`` when ``objective.hand_weight > 0``, else ``None``.

    Raises:
        FileNotFoundError: the reader checkpoint is missing (the message says how to train one).
        ValueError: no reader configured, one trained on another encoder's latents, or one that reads the object.
    """
    if objective.hand_weight == 0:
        return None
    path = world.get("hand_reader")
    if path is None:
        raise ValueError(f"objective.hand_weight={objective.hand_weight} needs world_model.hand_reader: a checkpoint of "
                         "experiments/train_object_reader.py target=hand on this world model's encoder (or plan "
                         "without the hand term: objective.hand_weight=0)")
    reader, _ = ObjectReader.load(path, encoder_fingerprint=world_model.encoder.fingerprint(), target="hand")
    return reader.to(device)


def _far_planner(resolved: Mapping[str, Any], device: torch.device) -> Planner | None:
    """The planner with ``resolved["far_planner"]``'s overrides merged in; ``None`` without them.

    Raises:
        ValueError: ``far_planner`` and ``mpc.far_energy`` are not both set (or both unset).
    """
    overrides, far_energy = resolved.get("far_planner"), resolved["mpc"].get("far_energy")
    if (overrides is None) != (far_energy is None):
        raise ValueError(f"far_planner and mpc.far_energy go together (the far planner plans while the observed "
                         f"energy is above far_energy): got far_planner={overrides!r}, mpc.far_energy={far_energy!r}")
    if overrides is None:
        return None
    merged = OmegaConf.to_container(OmegaConf.merge(resolved["planner"], overrides), resolve=True)
    return instantiate(merged, seed=resolved["seed"], device=device)


def _check_task_fits(env: gym.Env, config: EpisodeConfig) -> None:
    """Raise ``ValueError`` when ``config``'s sub-goal steps or oracle do not fit ``env``'s task;
    warn about settings the task ignores (sub-goal steps of a single-goal task, ``max_steps``
    beyond the time limit) or that do nothing alone (a gripper cost without gripper targets,
    or targets without a cost)."""
    task = env.unwrapped
    if (config.objective.gripper_weight > 0) != (config.gripper_goals is not None):
        logger.warning("objective.gripper_weight=%g with subgoals.gripper_goals=%s does nothing: the gripper cost needs "
                       "both (e.g. objective.gripper_weight=0.05 subgoals.gripper_goals=demo)",
                       config.objective.gripper_weight, config.gripper_goals)
    if config.oracle and not callable(getattr(task, "set_sim_state", None)):
        raise ValueError(f"world_model.oracle=true needs an env that restores simulator states "
                         f"(set_sim_state); {type(task).__name__} has none")
    limit = env.spec.max_episode_steps if env.spec else None
    if config.max_steps is not None and limit is not None and config.max_steps > limit:
        logger.warning("max_steps=%d is beyond the task's time limit: episodes end after %d steps "
                       "(raise it with task.max_episode_steps)", config.max_steps, limit)
    names = list(task.goal_phases.values())  # the goal images' names, in order
    per_goal = isinstance(config.energy_threshold, tuple)  # one threshold per goal
    if config.steps_per_goal is None and not per_goal:
        return  # steps derived from the goal images' step hints, one per goal
    if len(names) == 1:
        ignored = [name for name, given in (("subgoals.steps_per_goal", config.steps_per_goal is not None),
                                            ("the per-goal subgoals.energy_threshold", per_goal)) if given]
        logger.warning("%s %s ignored: task %r has a single goal", " and ".join(ignored),
                       "is" if len(ignored) == 1 else "are", task.task_name)
        return
    try:  # steps derived from the hints: any positive numbers stand in for them
        SubgoalSchedule(names, SubgoalConfig(steps_per_goal=config.steps_per_goal or (1,) * len(names),
                                             energy_threshold=config.energy_threshold))
    except ValueError as err:
        raise ValueError(f"subgoals: task {task.task_name!r} has the goals {names}; {err}") from None


def workspace_box(settings: Mapping[str, Any] | None, env: gym.Env) -> WorkspaceBox | None:
    """The plan config's ``workspace`` as a :class:`WorkspaceBox` (``None``: no box).

    ``settings["box"]``: ``"view"`` (the box the task's camera sees, ``env.unwrapped.view_box``;
    no box, with a warning, for envs that do not define one), ``None``, or ``[low, high]``.

    Raises:
        ValueError: ``box`` is none of these.
    """
    box = (settings or {}).get("box")
    if box is None:
        return None
    weight = float(settings.get("weight", 1.0))
    if box == "view":
        if not hasattr(env.unwrapped, "view_box"):
            logger.warning("%s defines no view box: planning without a workspace box",
                           type(env.unwrapped).__name__)
            return None
        low, high = env.unwrapped.view_box
        return WorkspaceBox(low.tolist(), high.tolist(), weight)
    if not isinstance(box, (list, tuple)) or len(box) != 2:
        raise ValueError(f"workspace.box must be 'view', null or [[x, y, z], [x, y, z]] (low, high), got {box!r}")
    return WorkspaceBox(box[0], box[1], weight)


def _start_worker(resolved: Mapping[str, Any], device: torch.device, threads: int) -> None:
    torch.set_num_threads(threads)
    _worker["setup"] = build(resolved, device)


def _episode(index: int, out: Path, resolved: Mapping[str, Any], progress: bool) -> EpisodeResult:
    """Episode ``index`` (seed ``seed + index``) with this process's setup; writes its video."""
    env, world_model, planner, config, far_planner = _worker["setup"]
    video = resolved["video"]
    result = run_episode(env, world_model, planner, config, seed=resolved["seed"] + index, keep_frames=video,
                         progress=progress, far_planner=far_planner)
    if video:
        write_episode_video(out / f"episode_{index:03d}_seed_{result.seed}.mp4", result,
                            scale=resolved["video_scale"])
        result.frames.clear()
    return result


def run_episodes(
    resolved: Mapping[str, Any],
    out: str | Path,
    *,
    device: torch.device,
    workers: int = 1,
    threads: int | None = None,
    on_result: Callable[[EpisodeResult], None] | None = None,
    progress: bool = True,
) -> list[EpisodeResult]:
    """Run ``resolved["episodes"]`` episodes; videos (when ``resolved["video"]``) go to ``out``.

    Args:
        resolved: a resolved ``configs/plan.yaml`` (task, world_model, planner, objective, mpc,
            subgoals, max_steps, seed, episodes, video, video_scale).
        out: folder for the videos.
        device: torch device of the world model and planner.
        workers: processes running episodes in parallel (1: this process).
        threads: torch threads per process (None: 1 with several workers, else unchanged).
        on_result: called in this process with each finished episode, in completion order.
        progress: progress bar over episodes (over steps with one worker).

    Returns:
        The episodes, ordered by seed.

    Raises:
        PlanSetupError: ``workers`` or ``episodes`` below 1, or from :func:`build`, before any
            episode runs. Errors inside an episode propagate as they are (with several workers
            the queued episodes are cancelled first).
    """
    for name, value in (("workers", workers), ("episodes", resolved["episodes"])):
        if not isinstance(value, int) or value < 1:
            raise PlanSetupError(f"{name} must be an int >= 1, got {value!r}")
    out, results = Path(out), []
    if workers == 1:
        if threads is not None:
            torch.set_num_threads(threads)
        _worker["setup"] = build(resolved, device)
        try:
            for i in range(resolved["episodes"]):
                results.append(_episode(i, out, resolved, progress))
                if on_result is not None:
                    on_result(results[-1])
        finally:
            _worker.pop("setup")[0].close()
        return results
    build(resolved, device)[0].close()  # fail fast, here, on a missing or mismatched checkpoint
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(resolved, device, threads or 1)) as pool:
        jobs = [pool.submit(_episode, i, out, resolved, False) for i in range(resolved["episodes"])]
        try:
            for job in tqdm(as_completed(jobs), total=len(jobs), desc="episodes", disable=not progress):
                results.append(job.result())
                if on_result is not None:
                    on_result(results[-1])
        except BaseException:  # a failed episode or Ctrl-C: do not run the queued episodes first
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return sorted(results, key=lambda r: r.seed)
