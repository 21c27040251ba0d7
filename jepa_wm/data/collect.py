"""Resumable, parallel collection of scripted-expert episodes into one robomimic-layout file.

Episode ``i`` runs the task's scripted expert with env seed ``seed + i`` until the time limit
(not stopping at success: the world model must see what happens after). Training data uses
seeds below :data:`HELD_OUT_SEED_START`; planning evaluations use seeds from it upwards, so
no evaluation scene is ever in the training data.

Interrupting a run (Ctrl-C, SIGTERM, even SIGKILL) loses no finished episode, and running
it again resumes: workers write each finished episode to its own part file, and only the
main process appends parts to ``<out>`` (see :mod:`jepa_wm.data.store`). SIGINT / SIGTERM
wait until the current append is done, stop the workers, take in the parts they finished,
and raise :class:`CollectionInterrupted`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

import envs
import jepa_wm
from envs.interface import HELD_OUT_SEED_START
from jepa_wm.data.formats import DatasetSummary
from jepa_wm.data.hdf5 import META_ATTR, Episode
from jepa_wm.data.store import EpisodeStore, parts_dir, saved_episodes, write_part
from jepa_wm.workers import exit_with_parent, parent_alive

log = logging.getLogger(__name__)

GYM_ENV_TYPE = 2  # robomimic's EnvType.GYM_TYPE: env_args["env_name"] is a gymnasium id


@dataclass(frozen=True)
class CollectionConfig:
    """Settings of one collection run.

    Args:
        task: registered task name (see ``envs.registered_tasks()``).
        episodes: number of episodes ``N`` the file should hold (indices ``0 .. N-1``).
        out: output HDF5 path; parts go to ``<out>.parts/``.
        seed: base seed; episode ``i`` uses env seed ``seed + i``.
        noise: expert noise (action units): a number, or ``(low, high)`` to draw each
            episode's level uniformly (seeded by the episode seed) for more diverse data.
        workers: parallel worker processes; 1 collects in this process.
        image_size, camera, max_episode_steps: env arguments; None keeps the task default.
        env_options: the task's other env arguments (e.g. pick_place_multi's scene: ``palette``,
            ``pairs``); recorded in the file's header, so a file of another scene is refused.
    """

    task: str
    episodes: int
    out: Path
    seed: int = 0
    noise: float | tuple[float, float] = (0.05, 0.3)
    workers: int = 1
    image_size: int | None = None
    camera: str | None = None
    max_episode_steps: int | None = None
    env_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, minimum in (("episodes", 1), ("workers", 1), ("seed", 0)):
            _check_int(name, getattr(self, name), minimum)
        for name in ("image_size", "max_episode_steps"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if self.camera is not None and not isinstance(self.camera, str):
            raise ValueError(f"camera must be a camera name or None, got {self.camera!r}")
        if not isinstance(self.task, str):
            raise ValueError(f"task must be a task name, got {self.task!r}")
        if not isinstance(self.env_options, Mapping) or not all(isinstance(k, str) for k in self.env_options):
            raise ValueError(f"env_options must map env argument names to values, got {self.env_options!r}")
        object.__setattr__(self, "env_options", dict(self.env_options))
        if not isinstance(self.out, str | os.PathLike):
            raise ValueError(f"out must be the path of an .hdf5 collection file, got {self.out!r}")
        noise = self.noise if isinstance(self.noise, tuple | list) else (self.noise, self.noise)
        if not (len(noise) == 2 and all(_is_number(level) for level in noise) and 0 <= noise[0] <= noise[1]):
            raise ValueError(f"noise must be a level >= 0 or (low, high) with low <= high, got {self.noise!r}")
        object.__setattr__(self, "noise", (float(noise[0]), float(noise[1])))
        object.__setattr__(self, "out", Path(self.out))
        if self.seed + self.episodes > HELD_OUT_SEED_START:
            raise ValueError(
                f"training seeds must lie in [0, {HELD_OUT_SEED_START}) (held-out planning seeds "
                f"start there); seed={self.seed} with {self.episodes} episodes does not"
            )

    @property
    def parts_dir(self) -> Path:
        """``<out>.parts``: one file per finished episode until the run completes."""
        return parts_dir(self.out)

    def env_kwargs(self) -> dict[str, Any]:
        """Arguments for ``envs.make`` (only those set)."""
        names = ("image_size", "camera", "max_episode_steps")
        return {**{name: getattr(self, name) for name in names if getattr(self, name) is not None},
                **self.env_options}

    def episode_noise(self, index: int) -> float:
        """Noise level of episode ``index``."""
        low, high = self.noise
        rng = np.random.default_rng([self.seed + index, 1])  # a stream apart from env / expert
        return float(rng.uniform(low, high))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _check_int(name: str, value: object, minimum: int) -> None:
    """``ValueError`` unless ``value`` is an integer >= ``minimum`` (``True`` is not one)."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class CollectionInterrupted(Exception):
    """Raised by :func:`collect` after SIGINT / SIGTERM; ``<out>`` is valid and resumable."""

    def __init__(self, signum: int, saved: int, episodes: int, out: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name}: {saved}/{episodes} episodes saved in {out}; "
            "run the same command again to resume"
        )
        self.exit_code = 128 + signum


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, a used-up quota


class CollectionDiskFull(Exception):
    """Raised by :func:`collect` when the disk is full; every finished episode is kept."""

    def __init__(self, out: Path, saved: int, episodes: int) -> None:
        super().__init__(
            f"the disk is full (no space left for {out} on its device or in its quota): {saved}/{episodes} "
            f"episodes are kept in {out} and {parts_dir(out)}; free some space and run the same command "
            "again to resume"
        )


def _disk_full(err: BaseException | None) -> bool:
    """Whether ``err`` (or an error it was raised from) is ENOSPC or EDQUOT; HDF5 names the errno
    only in its message (``errno = 28, error message = 'No space left on device'``)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if getattr(err, "errno", None) in _NO_SPACE or any(os.strerror(code) in str(err) for code in _NO_SPACE):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class _Stop(BaseException):
    """Raised by the signal handler (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _SignalGuard:
    """Turns SIGINT / SIGTERM into :class:`_Stop`, held back inside :meth:`critical`."""

    def __init__(self) -> None:
        self._critical = False
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self._critical:
            self._pending = signum
        else:
            raise _Stop(signum)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A section a signal must not cut; a signal received inside stops the run after it."""
        self._critical = True
        try:
            yield
        finally:
            self._critical = False
        if self._pending is not None:
            raise _Stop(self._pending)


class PartResult(NamedTuple):
    """A finished episode, written to its part file."""

    index: int
    steps: int
    success: bool


@dataclass
class EpisodeRunner:
    """Runs episodes of one config in one process; the env is built on first use."""

    config: CollectionConfig
    _env: Any = field(default=None, repr=False)

    @property
    def env(self) -> Any:
        if self._env is None:
            self._env = envs.make(self.config.task, **self.config.env_kwargs())
        return self._env

    def close(self) -> None:
        """Close the env if one was built."""
        if self._env is not None:
            self._env.close()
            self._env = None

    def header(self) -> dict[str, Any]:
        """The ``data`` attributes every file of this config carries (robomimic ``env_args``
        with the resolved env arguments, and our ``jepa_wm`` settings)."""
        env, cfg = self.env, self.config
        env_kwargs = {
            "image_size": int(env.unwrapped.image_size),
            "camera": str(env.unwrapped.camera),
            "max_episode_steps": int(env.spec.max_episode_steps),
            **cfg.env_options,  # none for the tasks' defaults: their headers are as before
        }
        env_args = {"env_name": env.spec.id, "type": GYM_ENV_TYPE, "env_kwargs": env_kwargs}
        settings = {"task": cfg.task, "seed": cfg.seed, "noise": list(cfg.noise)}
        return {"env_args": env_args, META_ATTR: {**settings, "version": jepa_wm.__version__}}

    def run(self, index: int) -> Episode:
        """Episode ``index``: reset with seed ``seed + index``, run the noisy expert to the end."""
        seed, noise = self.config.seed + index, self.config.episode_noise(index)
        env = self.env
        obs, info = env.reset(seed=seed)
        expert = env.unwrapped.make_expert(noise=noise, seed=seed)
        images, robot_states, objects = [obs["image"]], [obs["state"]], [info["object_pos"]]
        actions, rewards, dones, success, sim_states = [], [], [], [], []
        done = False
        while not done:
            sim_states.append(env.unwrapped.sim_state())
            action = np.asarray(expert.act(), dtype=np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            images.append(obs["image"])
            robot_states.append(obs["state"])
            objects.append(info["object_pos"])
            actions.append(action)
            rewards.append(reward)
            dones.append(done)
            success.append(bool(info["is_success"]))
        return Episode(
            images=np.stack(images),
            robot_states=np.stack(robot_states).astype(np.float32),
            actions=np.stack(actions),
            rewards=np.asarray(rewards, dtype=np.float64),
            dones=np.asarray(dones, dtype=bool),
            success=np.asarray(success, dtype=bool),
            sim_states=np.stack(sim_states).astype(np.float64),
            seed=seed,
            noise=noise,
            instruction=str(env.unwrapped.instruction),
            objects=np.stack(objects).astype(np.float32),
        )

    def run_to_part(self, index: int) -> PartResult:
        """Run episode ``index`` and write it atomically to its part file."""
        episode = self.run(index)
        write_part(self.config.out, index, episode, self.header())
        return PartResult(index, episode.num_samples, bool(episode.success[-1]))


_WORKER: EpisodeRunner | None = None
_PARENT = 0  # pid of the main process, seen from a worker


def _init_worker(config: CollectionConfig) -> None:
    global _WORKER, _PARENT
    _PARENT = os.getppid()
    exit_with_parent(_PARENT)  # if the main process is killed, stop now rather than run the queued tasks
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    _WORKER = EpisodeRunner(config)


def _worker_run(index: int) -> PartResult:
    assert _WORKER is not None, "worker process was not initialised"
    if not parent_alive(_PARENT):
        os._exit(1)
    return _WORKER.run_to_part(index)


@contextlib.contextmanager
def _episode_results(
    config: CollectionConfig, runner: EpisodeRunner, todo: list[int]
) -> Iterator[Iterator[PartResult]]:
    """Finished episodes of ``todo`` as they complete (in-process for one worker)."""
    if config.workers == 1:
        yield (runner.run_to_part(index) for index in todo)
        return
    runner.close()  # the workers build their own envs
    pool = get_context("spawn").Pool(config.workers, initializer=_init_worker, initargs=(config,))
    try:
        yield pool.imap_unordered(_worker_run, todo)
    finally:
        pool.terminate()
        pool.join()


def collect(config: CollectionConfig, progress: bool = True) -> DatasetSummary:
    """Collect (or resume collecting) ``config.episodes`` episodes into ``config.out``.

    Returns:
        The :func:`~jepa_wm.data.formats.validate_file` summary of the finished file.

    Raises:
        CollectionInterrupted: after SIGINT / SIGTERM; ``config.out`` holds every finished
            episode, and the same call resumes.
        CollectionDiskFull: the disk filled up; every finished episode is kept (in ``out`` or
            its parts), and the same call resumes once there is space.
        ValueError: ``config.out`` is not a collection file (a directory, another file), or it
            (or its parts) were collected with other settings.
        LockedError: another live process collects into ``config.out``; nothing was changed.
    """
    runner = EpisodeRunner(config)
    try:
        store = EpisodeStore(config.out, runner.header())
        with _SignalGuard() as guard, contextlib.ExitStack() as stack:
            try:
                with guard.critical():
                    stack.enter_context(store)
                _run(config, runner, store, guard, progress)
            except _Stop as stop:
                if not store.is_open:
                    raise CollectionInterrupted(stop.signum, 0, config.episodes, config.out) from None
                # the workers are stopped: take in the parts they finished (a second signal
                # waits for this, then is ignored)
                with contextlib.suppress(_Stop), guard.critical():
                    store.merge_parts()
                saved = sum(index < config.episodes for index in store.indices())
                raise CollectionInterrupted(stop.signum, saved, config.episodes, config.out) from None
            # every episode is in: a signal now waits for the parts to be deleted, then is ignored
            with contextlib.suppress(_Stop), guard.critical():
                summary = store.finish()  # still under the store's lock
    except (OSError, RuntimeError) as err:  # h5py reports some failed writes as RuntimeError
        if not _disk_full(err):
            raise
        raise CollectionDiskFull(config.out, saved_episodes(config.out, config.episodes), config.episodes) from None
    finally:
        runner.close()
    return summary


def _run(
    config: CollectionConfig, runner: EpisodeRunner, store: EpisodeStore, guard: _SignalGuard, progress: bool
) -> None:
    """Collect the episodes ``store`` lacks and append each as it finishes."""
    todo = sorted(set(range(config.episodes)) - store.indices())
    saved = config.episodes - len(todo)
    log.info(
        "%s: %d episodes present, collecting %d with %d workers",
        config.out, saved, len(todo), config.workers,
    )
    start, steps, successes = time.perf_counter(), 0, 0
    bar = tqdm(total=config.episodes, initial=saved, unit="ep", disable=not progress, dynamic_ncols=True)
    with bar, _episode_results(config, runner, todo) as results:
        for done, result in enumerate(results, start=1):
            with guard.critical():
                store.add(result.index)
            steps, successes = steps + result.steps, successes + result.success
            bar.set_postfix(success=f"{successes / done:.0%}", refresh=False)
            bar.update()
    if todo:
        elapsed = time.perf_counter() - start
        log.info(
            "collected %d episodes in %.1f s: %.2f episodes/s, %.0f env steps/s",
            len(todo), elapsed, len(todo) / elapsed, steps / elapsed,
        )
