"""Training data for the language-goal predictor: for each episode seed, what the robot sees first
and the goal images of every instruction its scene offers (the episode's own and the hard negatives).

Collect with :func:`collect_goal_episodes` (``experiments/collect_language_goals.py``), read with
:class:`GoalEpisodes`::

    summary = collect_goal_episodes({"name": "pick_place_multi", "palette": "lang"}, range(200),
                                    Path("data/language_goals_pick_place_multi.hdf5"))
    data = GoalEpisodes("data/language_goals_pick_place_multi.hdf5")
    episode = data.episode(data.seeds[0])    # obs_image (H, W, 3), goals[(object, target)].images

Layout (one HDF5 file)::

    /                         attrs: format, task_config (JSON), split ("training" | "evaluation"), version
    episodes/seed_<s>/        attrs: task, seed, pairs (JSON [[object, target], ...]), own_pair (JSON)
        obs_image   (H, W, 3) uint8      the first observation's image (after ``reset(seed=s)``)
        obs_state   (7,)      float32    the first observation's robot state
        goals/<k>/            attrs: names (G strings), steps (G,), object, target (``""``: none)
            images  (G, H, W, 3) uint8   the goal images of ``pairs[k]``, the final goal last
            states  (G, 7)       float32 the robot state at each goal image

``pick_place_multi`` offers every (cube, pad) pair present in the scene that its ``pairs`` setting
allows (``env.unwrapped.instruction_pairs``); the other tasks have one pair (:func:`episode_roles`;
``reach`` has no object: its pairs are ``(None, colour)``).

Crash safety: the writer holds ``<out>.lock``; a new file is created whole (a temporary name, then
``os.replace``); each seed is written as ``episodes/_incoming_seed_<s>``, flushed, renamed to
``seed_<s>`` and flushed again. Reopening removes uncommitted (or damaged) groups and skips seeds
already present, so an interrupted collection resumes where it stopped. Training files hold seeds
below :data:`envs.interface.HELD_OUT_SEED_START` only, evaluation files (``evaluation=True``) seeds
at or above it only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

import envs
from envs.interface import HELD_OUT_SEED_START, GoalImages
from jepa_wm import __version__
from jepa_wm.data.hdf5 import (
    IMAGE_COMPRESSION,
    IMAGE_COMPRESSION_LEVEL,
    check_hdf5_output,
)
from jepa_wm.language.instructions import episode_roles
from jepa_wm.locks import hold

log = logging.getLogger(__name__)

FORMAT = "jepa_wm.language_goals/1"
EPISODES = "episodes"
SEED_PREFIX = "seed_"
UNCOMMITTED_PREFIX = "_incoming_"
TRAINING, EVALUATION = "training", "evaluation"

Pair = tuple[str | None, str | None]  # (object colour, target colour); None where the task has no such role


class GoalDataError(ValueError):
    """A language-goal file (or one of its groups) is not what :mod:`goal_data` writes."""


@dataclass(frozen=True, eq=False)
class GoalEpisode:
    """One episode seed's start and the goals of every instruction its scene offers.

    Attributes:
        seed: the env seed.
        obs_image: uint8 ``(H, W, 3)``, the first observation's image.
        obs_state: float32 ``(7,)``, the first observation's robot state.
        own_pair: the episode's own ``(object, target)``.
        pairs: every instruction pair of the scene (``own_pair`` among them), in file order.
        goals: per pair its :class:`~envs.interface.GoalImages` (images ``G`` x ``(H, W, 3)``,
            names, steps, states ``(G, 7)``).
    """

    seed: int
    obs_image: np.ndarray
    obs_state: np.ndarray
    own_pair: Pair
    pairs: list[Pair]
    goals: dict[Pair, GoalImages]

    @property
    def negatives(self) -> list[Pair]:
        """The scene's pairs other than the episode's own (the hard negatives)."""
        return [pair for pair in self.pairs if pair != self.own_pair]


@dataclass(frozen=True)
class GoalCollectionSummary:
    """What :func:`collect_goal_episodes` did: seeds asked for, newly collected, already present."""

    out: str
    split: str
    seeds: int
    collected: int
    skipped: int
    pairs: int  # goal sets written by this run
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_name(seed: int) -> str:
    """``seed_<seed>``: the group of one episode seed."""
    return f"{SEED_PREFIX}{seed}"


def lock_path(out: Path) -> Path:
    """``<out>.lock``: held by the one process writing ``out``."""
    return out.with_name(out.name + ".lock")


def normalize_task_config(task_config: Mapping[str, Any]) -> dict[str, Any]:
    """The task config as stored: plain JSON values, keys sorted, ``None`` (the task's default) dropped."""
    if not isinstance(task_config, Mapping) or "name" not in task_config:
        raise ValueError(f"task config: expected a mapping with a 'name' (configs/task/*.yaml), got {task_config!r}")
    plain = json.loads(json.dumps({str(k): v for k, v in task_config.items() if v is not None}))
    return dict(sorted(plain.items()))


def check_seeds(seeds: Iterable[int], evaluation: bool) -> list[int]:
    """``seeds`` as distinct ints in order, after checking they belong to the split.

    Raises:
        ValueError: a seed that is not a non-negative int, a training seed at or above
            :data:`HELD_OUT_SEED_START` or an evaluation seed below it.
    """
    checked: list[int] = []
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seeds: expected non-negative ints, got {seed!r}")
        if not evaluation and seed >= HELD_OUT_SEED_START:
            raise ValueError(f"seed {seed} is a held-out evaluation seed (>= {HELD_OUT_SEED_START}); training data "
                             f"uses seeds below it (evaluation=true collects an evaluation file)")
        if evaluation and seed < HELD_OUT_SEED_START:
            raise ValueError(f"seed {seed} is a training seed; evaluation data uses seeds >= {HELD_OUT_SEED_START}")
        if int(seed) not in checked:
            checked.append(int(seed))
    return checked


# ------------------------------------------------------------------------------------------ checks
def check_output(out: Path, task_config: dict[str, Any], split: str) -> None:
    """Refuse an ``out`` this collection may not write, reading only (nothing is created or changed).

    Raises:
        GoalDataError: ``out`` is a directory or another non-file, not an HDF5 file, not a
            language-goal file, or one collected with another task config or split.
    """
    if not check_hdf5_output(out, "language-goal", GoalDataError):
        return
    try:
        file = h5py.File(out, "r")
    except OSError as err:
        raise GoalDataError(f"out: {out} cannot be opened ({' '.join(str(err).split())}); pick another out=") from None
    with file:
        _check_header(file, out, task_config, split)


def _read_header(file: h5py.File, path: Path) -> tuple[dict[str, Any], str]:
    """``(task_config, split)`` of an open language-goal file."""
    attrs = file.attrs
    if attrs.get("format") != FORMAT or EPISODES not in file:
        raise GoalDataError(f"{path} is not a language-goal file (no format={FORMAT!r} attribute and "
                            f"'{EPISODES}' group)")
    try:
        task_config, split = json.loads(attrs["task_config"]), str(attrs["split"])
    except (KeyError, TypeError, ValueError) as err:
        raise GoalDataError(f"{path}: unreadable task_config / split attributes ({err})") from None
    if split not in (TRAINING, EVALUATION) or not isinstance(task_config, dict):
        raise GoalDataError(f"{path}: expected split 'training' or 'evaluation' and a task_config mapping, "
                            f"got {split!r} and {task_config!r}")
    return task_config, split


def _check_header(file: h5py.File, path: Path, task_config: dict[str, Any], split: str) -> None:
    found_config, found_split = _read_header(file, path)
    if found_split != split:
        raise GoalDataError(f"{path} holds {found_split} seeds, this run collects {split} seeds; training and "
                            f"evaluation data never share a file: use another out=")
    diffs = [f"{key}: file has {found_config.get(key)!r}, this run asks for {task_config.get(key)!r}"
             for key in sorted(set(found_config) | set(task_config)) if found_config.get(key) != task_config.get(key)]
    if diffs:
        raise GoalDataError(f"{path} was collected with another task config ({'; '.join(diffs)}); use another out= "
                            f"or the task config it was made with")


def _pair_of(value: Any) -> Pair:
    if not (isinstance(value, list) and len(value) == 2 and all(v is None or isinstance(v, str) for v in value)):
        raise ValueError(f"expected [object, target] (strings or null), got {value!r}")
    return value[0], value[1]


def _check_episode(group: h5py.Group, where: str) -> tuple[list[Pair], Pair]:
    """Check one committed ``seed_<s>`` group's structure (shapes, dtypes, attributes; no pixels read).

    Returns:
        ``(pairs, own_pair)``.

    Raises:
        GoalDataError: one line naming ``where`` (file and group) and what is wrong.
    """
    def fail(what: str) -> GoalDataError:
        return GoalDataError(f"{where}: {what}")

    try:
        pairs = [_pair_of(p) for p in json.loads(group.attrs["pairs"])]
        own = _pair_of(json.loads(group.attrs["own_pair"]))
    except (KeyError, TypeError, ValueError) as err:
        raise fail(f"unreadable pairs / own_pair attributes ({err})") from None
    if not pairs or own not in pairs or len(set(pairs)) != len(pairs):
        raise fail(f"expected distinct pairs including own_pair {own}, got {pairs}")
    image, state = group.get("obs_image"), group.get("obs_state")
    if not isinstance(image, h5py.Dataset) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise fail(f"expected obs_image uint8 (H, W, 3), got {_describe(image)}")
    if not isinstance(state, h5py.Dataset) or state.dtype != np.float32 or state.shape != (7,):
        raise fail(f"expected obs_state float32 (7,), got {_describe(state)}")
    goals = group.get("goals")
    names = sorted(goals) if isinstance(goals, h5py.Group) else None
    if names != sorted(str(k) for k in range(len(pairs))):
        raise fail(f"expected goals/0 .. goals/{len(pairs) - 1}, one per pair, got {names}")
    for k, pair in enumerate(pairs):
        goal = goals[str(k)]
        images, states = goal.get("images"), goal.get("states")
        if (not isinstance(images, h5py.Dataset) or images.dtype != np.uint8 or images.ndim != 4
                or images.shape[0] == 0 or images.shape[1:] != image.shape):
            raise fail(f"goals/{k}: expected images uint8 (G, {', '.join(map(str, image.shape))}), got {_describe(images)}")
        n = images.shape[0]
        if not isinstance(states, h5py.Dataset) or states.dtype != np.float32 or states.shape != (n, 7):
            raise fail(f"goals/{k}: expected states float32 ({n}, 7), got {_describe(states)}")
        if len(goal.attrs.get("names", ())) != n or len(goal.attrs.get("steps", ())) != n:
            raise fail(f"goals/{k}: expected {n} names and steps, one per image")
        stored = (str(goal.attrs.get("object", "")) or None, str(goal.attrs.get("target", "")) or None)
        if stored != pair:
            raise fail(f"goals/{k}: holds the goals of {stored}, the pairs attribute says {pair}")
    return pairs, own


def _describe(node: Any) -> str:
    if isinstance(node, h5py.Dataset):
        return f"{node.dtype} {node.shape}"
    return "nothing" if node is None else type(node).__name__


# ------------------------------------------------------------------------------------------ writing
def _scene_goals(env: Any) -> tuple[Pair, list[Pair], list[GoalImages]]:
    """The current episode's own pair, its scene's instruction pairs and each pair's goal images."""
    unwrapped = env.unwrapped
    own = episode_roles(env)
    pairs: list[Pair] = list(getattr(unwrapped, "instruction_pairs", None) or [own])
    if own not in pairs:  # reset draws the own pair among the allowed ones; keep it whatever happens
        pairs.insert(0, own)
    goals = [unwrapped.goal_images() if pair == own else unwrapped.goal_images_for(*pair) for pair in pairs]
    return own, pairs, goals


def _write_episode(parent: h5py.Group, name: str, task: str, seed: int, obs: Mapping[str, np.ndarray],
                   own: Pair, pairs: list[Pair], goals: list[GoalImages]) -> None:
    group = parent.create_group(name)
    group.create_dataset("obs_image", data=np.asarray(obs["image"], dtype=np.uint8))
    group.create_dataset("obs_state", data=np.asarray(obs["state"], dtype=np.float32))
    goal_groups = group.create_group("goals")
    for k, (pair, goal) in enumerate(zip(pairs, goals, strict=True)):
        sub = goal_groups.create_group(str(k))
        images = np.stack(goal.images).astype(np.uint8)  # (G, H, W, 3)
        sub.create_dataset("images", data=images, chunks=images.shape, compression=IMAGE_COMPRESSION,
                           compression_opts=IMAGE_COMPRESSION_LEVEL)
        sub.create_dataset("states", data=np.asarray(goal.states, dtype=np.float32).reshape(len(images), 7))
        sub.attrs["names"] = list(goal.names)
        sub.attrs["steps"] = np.asarray(goal.steps, dtype=np.int64)
        sub.attrs["object"], sub.attrs["target"] = pair[0] or "", pair[1] or ""
    group.attrs["task"] = task
    group.attrs["seed"] = seed
    group.attrs["own_pair"] = json.dumps(list(own))
    group.attrs["pairs"] = json.dumps([list(p) for p in pairs])


def _create(out: Path, task_config: dict[str, Any], split: str) -> None:
    """Create an empty language-goal file whole: under a temporary name, then ``os.replace``."""
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as file:
            file.create_group(EPISODES)
            file.attrs["format"] = FORMAT
            file.attrs["task_config"] = json.dumps(task_config)
            file.attrs["split"] = split
            file.attrs["version"] = __version__
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _clean(episodes: h5py.Group, out: Path) -> set[int]:
    """Remove uncommitted and damaged groups (logged); returns the seeds committed."""
    done: set[int] = set()
    for name in list(episodes):
        if name.startswith(SEED_PREFIX) and name[len(SEED_PREFIX):].isdigit():
            try:
                _check_episode(episodes[name], f"{out}:{EPISODES}/{name}")
            except GoalDataError as err:
                log.warning("removing a damaged episode group (%s); its seed is collected again", err)
            else:
                done.add(int(name[len(SEED_PREFIX):]))
                continue
        else:
            log.info("removing %s/%s left by an interrupted collection", EPISODES, name)
        del episodes[name]
    return done


def collect_goal_episodes(task_config: Mapping[str, Any], seeds: Sequence[int], out: Path, progress: bool = False,
                          evaluation: bool = False) -> GoalCollectionSummary:
    """Collect, for each seed, the first observation and the goal images of every instruction pair.

    Args:
        task_config: a ``configs/task/*.yaml`` mapping (``name`` plus env arguments; ``None`` = default).
        seeds: env seeds (below :data:`HELD_OUT_SEED_START`, or at/above it with ``evaluation``).
        out: the HDF5 file; created, or resumed when it holds a collection of the same task config
            and split (seeds present are skipped).
        progress: show a tqdm bar.
        evaluation: collect held-out evaluation seeds instead of training seeds.

    Raises:
        ValueError: bad seeds or task config, or an ``out`` that is not a language-goal file of these
            settings (:func:`check_output`); nothing is created or changed.
        LockedError: another process is writing ``out``.
    """
    start = time.monotonic()
    out = Path(out)
    config = normalize_task_config(task_config)
    split = EVALUATION if evaluation else TRAINING
    wanted = check_seeds(seeds, evaluation)
    check_output(out, config, split)
    env = envs.make_from_config(config)  # a bad task config fails here, before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    collected = pairs_written = 0
    with contextlib.ExitStack() as stack:
        lock = stack.enter_context(hold(lock_path(out), f"the language-goal file {out}"))
        stack.callback(lock.unlink, missing_ok=True)  # removed while still held
        stack.callback(env.close)
        check_output(out, config, split)  # again under the lock: another run may have created it
        if not out.exists():
            _create(out, config, split)
        file = stack.enter_context(h5py.File(out, "a"))
        episodes = file[EPISODES]
        done = _clean(episodes, out)
        file.flush()
        todo = [seed for seed in wanted if seed not in done]
        bar = stack.enter_context(tqdm(total=len(wanted), initial=len(wanted) - len(todo), unit="ep",
                                       disable=not progress, dynamic_ncols=True))
        for seed in todo:
            obs, _ = env.reset(seed=seed)
            own, pairs, goals = _scene_goals(env)
            _write_episode(episodes, UNCOMMITTED_PREFIX + seed_name(seed), config["name"], seed, obs, own, pairs, goals)
            file.flush()  # contents on disk before the group gets its final name
            episodes.move(UNCOMMITTED_PREFIX + seed_name(seed), seed_name(seed))
            file.flush()
            collected += 1
            pairs_written += len(pairs)
            bar.update(1)
    summary = GoalCollectionSummary(out=str(out), split=split, seeds=len(wanted), collected=collected,
                                    skipped=len(wanted) - collected, pairs=pairs_written,
                                    seconds=round(time.monotonic() - start, 3))
    log.info("language goals: %d seeds collected, %d already in %s", collected, summary.skipped, out)
    return summary


# ------------------------------------------------------------------------------------------ reading
class GoalEpisodes:
    """A language-goal file opened for reading; checked on opening (structure only, no pixels).

    Args:
        path: a file written by :func:`collect_goal_episodes`.

    Raises:
        GoalDataError: one line naming the file (and group) that is not as written here.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise GoalDataError(f"{self.path}: expected a language-goal .hdf5 file, found "
                                f"{'a directory' if self.path.is_dir() else 'nothing'}")
        self._file: h5py.File | None = None
        self._pid = -1
        try:
            file = self._open()
            self.task_config, self.split = _read_header(file, self.path)
            self.version = str(file.attrs.get("version", ""))
            self.seeds: list[int] = sorted(self._check_episodes(file[EPISODES]))
        except BaseException:
            self.close()
            raise

    def _check_episodes(self, episodes: h5py.Group) -> list[int]:
        """The seeds of ``episodes``, after checking each group's structure."""
        seeds: list[int] = []
        for name in episodes:
            where = f"{self.path}:{EPISODES}/{name}"
            if not (name.startswith(SEED_PREFIX) and name[len(SEED_PREFIX):].isdigit()):
                raise GoalDataError(f"{where}: an uncommitted or unknown group (open the file for collection "
                                    f"again to clean it up)")
            _check_episode(episodes[name], where)
            seeds.append(int(name[len(SEED_PREFIX):]))
        return seeds

    def _open(self) -> h5py.File:
        """The open file, reopened in a forked process (h5py handles do not survive a fork)."""
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as err:
                raise GoalDataError(f"{self.path}: cannot be opened as HDF5 ({' '.join(str(err).split())})") from None
            self._pid = os.getpid()
        return self._file

    def __len__(self) -> int:
        return len(self.seeds)

    def __enter__(self) -> GoalEpisodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None and self._pid == os.getpid():
            file.close()

    def episode(self, seed: int) -> GoalEpisode:
        """The episode of ``seed``; ``KeyError`` for a seed the file lacks."""
        name = seed_name(seed)
        group = self._open()[EPISODES].get(name)
        if group is None:
            raise KeyError(f"{self.path} has no episode seed {seed} ({len(self)} seeds)")
        pairs, own = _check_episode(group, f"{self.path}:{EPISODES}/{name}")
        goals: dict[Pair, GoalImages] = {}
        for k, pair in enumerate(pairs):
            sub = group["goals"][str(k)]
            images = sub["images"][:]  # (G, H, W, 3)
            goals[pair] = GoalImages(images=tuple(images), names=tuple(str(n) for n in sub.attrs["names"]),
                                     steps=tuple(int(s) for s in sub.attrs["steps"]), states=sub["states"][:])
        return GoalEpisode(seed=seed, obs_image=group["obs_image"][:], obs_state=group["obs_state"][:],
                           own_pair=own, pairs=pairs, goals=goals)



def expert_stages(path: str | Path, seeds: Sequence[int] | None = None) -> dict[str, dict[str, list]]:
    """Per task of the file, what a goal from a sentence lacks and the clean expert shows at its goal stages:
    the stages' names, the median cumulative steps to each (the sub-goal schedule's hints) and the
    gripper command at each (+1 closed, -1 open: the majority over every instruction of ``seeds``,
    default all of the file's).

    Returns:
        ``{task: {"names": [G names], "steps": [G ints], "gripper": [G floats]}}`` (``{}`` for an empty file).
    """
    from jepa_wm.plugins.gripper_reader.reader import closed_labels
    from jepa_wm.state_integration import StateIntegration

    steps: list[np.ndarray] = []
    closed: list[np.ndarray] = []
    names: tuple[str, ...] = ()
    gripper_open = StateIntegration().gripper_open
    with GoalEpisodes(path) as data:
        episodes = data._open()[EPISODES]
        for seed in data.seeds if seeds is None else seeds:
            for sub in episodes[seed_name(seed)]["goals"].values():
                names = tuple(str(n) for n in sub.attrs["names"])
                steps.append(np.asarray(sub.attrs["steps"], dtype=np.int64))
                closed.append(closed_labels(sub["states"][:, 6], gripper_open))
        task = str(data.task_config["name"])
    if not steps:
        return {}
    if len({len(s) for s in steps}) != 1:
        raise GoalDataError(f"{path}: its instructions have different numbers of goal stages")
    majority = np.stack(closed).mean(axis=0) > 0.5
    return {task: {"names": list(names), "steps": [int(v) for v in np.median(np.stack(steps), axis=0).round()],
                   "gripper": [1.0 if c else -1.0 for c in majority]}}
