"""From a resolved plan config to planning episodes, sequentially or in worker processes.

``experiments/plan.py`` is a thin wrapper around :func:`run_episodes`. :func:`build` turns the config
into objects: the task's env, the world model (``world_model._target_``, e.g.
:class:`~jepa_wm.planning.latent_model.LatentModel`), the cost terms (``costs.<name>._target_``), the
planner, the goal schedule and the :class:`~jepa_wm.planning.agent.MPCAgent`; every rule between
settings is checked there, by the object that owns it, before any episode runs.

Each worker process builds its own setup once and then runs whole episodes; episode ``i`` uses
seed ``seed + i`` for the env and the planner, so the results are the same for any number of
workers. Processes are spawned (never forked), which is safe with MuJoCo's GL contexts and torch's
thread pools. Workers never outlive the main process: they are terminated when it stops on an error,
Ctrl-C or SIGTERM, and end by themselves when it is killed (:func:`jepa_wm.workers.exit_with_parent`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tqdm import tqdm

import envs
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import BuildContext, EnergySettings, WeightedSum
from jepa_wm.planning.episode import EpisodeResult, check_planning_seed, run_episode
from jepa_wm.planning.outputs import write_episode_video
from jepa_wm.protocols import CostModel, GoalSource
from jepa_wm.workers import exit_with_parent
from planners import MPCConfig
from planners.base import check_positive_int
from planners.protocols import Planner

logger = logging.getLogger(__name__)

_worker: dict[str, PlanSetup] = {}  # per process: what build() made


class PlanSetupError(ValueError):
    """A ``plan`` config that cannot run: a missing or mismatched checkpoint or a bad setting.

    The message says what was expected and what came (and how to train a missing checkpoint).
    """


@dataclass
class PlanSetup:
    """What :func:`build` makes: the env, the agent and where each episode's goal comes from."""

    env: gym.Env
    agent: MPCAgent
    goals: GoalSource


def build(resolved: Mapping[str, Any], device: torch.device) -> PlanSetup:
    """The env, agent and goal schedule of a resolved ``plan`` config.

    Raises:
        PlanSetupError: a missing or mismatched checkpoint, or settings the task or world model cannot take.
    """
    try:
        env = envs.make_from_config(resolved["task"])
    except (ValueError, TypeError) as err:
        raise PlanSetupError(f"task: {err}") from None
    try:
        context = BuildContext(env=env, device=device, task=resolved["task"]["name"])
        model: CostModel = _build(resolved["world_model"], "world_model", context=context)
        cost = WeightedSum({name: _build(term, f"costs.{name}", context=context, model=model)
                            for name, term in resolved["costs"].items() if term is not None})
        goals: GoalSource = _build(resolved["goal"], "goal", context=context, model=model)
        goals.check_task(list(env.unwrapped.goal_phases.values()), context.task)
        planner = _instantiate(resolved["planner"], "planner", seed=resolved["seed"], device=device)
        agent = MPCAgent(model, planner, cost, EnergySettings(**resolved["energy"]), MPCConfig(**resolved["mpc"]),
                         far_planner=_far_planner(resolved, device))
        _check_max_steps(env, resolved["max_steps"])
    except (FileNotFoundError, ValueError, TypeError, InstantiationException) as err:
        env.close()
        raise PlanSetupError(str(err)) from err
    return PlanSetup(env, agent, goals)


def _build(settings: Mapping[str, Any], name: str, **runtime: Any) -> Any:
    """Instantiate ``settings`` (a ``_target_`` and its arguments) with the runtime objects ``runtime``
    (the build context, the world model) passed in, not merged into the config."""
    if not isinstance(settings, Mapping) or "_target_" not in settings:
        raise ValueError(f"{name} must be a mapping with a _target_ (the class or builder to call), got {settings!r}")
    factory = _instantiate(settings, name, _partial_=True, _convert_="all")
    try:
        return factory(**runtime)
    except TypeError as err:
        raise TypeError(f"{name}: {err}") from None


def _instantiate(settings: Mapping[str, Any], name: str, **kwargs: Any) -> Any:
    """hydra's ``instantiate``, its errors as one line: ``<name>.<key>: <the cause>``."""
    try:
        return instantiate(settings, **kwargs)
    except InstantiationException as err:
        key = re.search(r"full_key: (\S+)", str(err))
        where = f"{name}.{key.group(1)}" if key else name
        cause = err.__cause__ if err.__cause__ is not None else err
        raise ValueError(f"{where}: {' '.join(str(cause).split())}") from None


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
    return _instantiate(merged, "far_planner", seed=resolved["seed"], device=device)


def resolve_device(name: str | None) -> torch.device:
    """The torch device ``name`` (``None``: CUDA when available, else the CPU), checked to exist here.

    Raises:
        PlanSetupError: not a device name, or a device this machine or torch build does not have.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise PlanSetupError(f"device must be a torch device such as cpu, cuda or cuda:1, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise PlanSetupError(f"device={name} asks for a CUDA GPU but {build}; use device=cpu (or null)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PlanSetupError(f"device={name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type != "cpu":
        raise PlanSetupError(f"device must be cpu or cuda[:index], got {name!r}")
    return device


def check_run_settings(resolved: Mapping[str, Any], *, workers: int, threads: int | None) -> None:
    """The run's own settings (how many episodes where, their seeds, the videos), before anything is built.

    Raises:
        PlanSetupError: a setting of the wrong type or out of range, in one line.
    """
    try:
        for name, value in (("workers", workers), ("episodes", resolved["episodes"])):
            check_positive_int(value, name)
        if threads is not None:
            check_positive_int(threads, "threads")
        check_planning_seed(resolved["seed"])
        if not isinstance(resolved["video"], bool):
            raise ValueError(f"video must be true or false, got {resolved['video']!r}")
        check_positive_int(resolved["video_scale"], "video_scale")
    except ValueError as err:
        raise PlanSetupError(str(err)) from None


def _check_max_steps(env: gym.Env, max_steps: int | None) -> None:
    """``max_steps`` must be ``None`` or an int >= 1; warn when it is beyond the task's time limit."""
    if max_steps is not None:
        check_positive_int(max_steps, "max_steps")
    limit = env.spec.max_episode_steps if env.spec else None
    if max_steps is not None and limit is not None and max_steps > limit:
        logger.warning("max_steps=%d is beyond the task's time limit: episodes end after %d steps "
                       "(raise it with task.max_episode_steps)", max_steps, limit)


def _start_worker(parent: int, resolved: Mapping[str, Any], device: torch.device, threads: int) -> None:
    exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process decides
    torch.set_num_threads(threads)
    _worker["setup"] = build(resolved, device)


def _episode(index: int, out: Path, resolved: Mapping[str, Any], progress: bool) -> EpisodeResult:
    """Episode ``index`` (seed ``seed + index``) with this process's setup; writes its video."""
    setup: PlanSetup = _worker["setup"]
    video = resolved["video"]
    result = run_episode(setup.env, setup.agent, setup.goals, seed=resolved["seed"] + index,
                         max_steps=resolved["max_steps"], keep_frames=video, progress=progress)
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
        resolved: a resolved ``configs/plan.yaml`` (task, world_model, planner, costs, energy, goal,
            mpc, max_steps, seed, episodes, video, video_scale).
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
    check_run_settings(resolved, workers=workers, threads=threads)
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
            _worker.pop("setup").env.close()
        return results
    build(resolved, device).env.close()  # fail fast, here, on a missing or mismatched checkpoint
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(os.getpid(), resolved, device, threads or 1))
    try:
        jobs = [pool.submit(_episode, i, out, resolved, False) for i in range(resolved["episodes"])]
        for job in tqdm(as_completed(jobs), total=len(jobs), desc="episodes", disable=not progress):
            results.append(job.result())
            if on_result is not None:
                on_result(results[-1])
    except BaseException:  # a failed episode, Ctrl-C or SIGTERM: stop the running and queued episodes now
        _terminate(pool)
        raise
    pool.shutdown()
    return sorted(results, key=lambda r: r.seed)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued episodes and end the workers now, not after their current episode."""
    processes = list(getattr(pool, "_processes", None) or {})  # pid -> Process (ProcessPoolExecutor's own map)
    pool.shutdown(wait=False, cancel_futures=True)
    for pid in processes:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
