"""The frozen encoder's latents of a language-goal file, encoded once and kept beside it.

Training and evaluating the language-goal predictor compare latents, never pixels: the first
frame's latents are its input and the goal images' latents its targets. :func:`build_goal_latents`
encodes a :class:`~jepa_wm.language.goal_data.GoalEpisodes` file into
``<file stem>.latents.<encoder fingerprint>.hdf5`` next to it; :func:`load_goal_latents` reads it
into one :class:`GoalLatentSet` in memory (float16)::

    cache = build_goal_latents("data/language_goals_ppm_lang_train.hdf5", encoder)
    data = load_goal_latents([cache])
    data.goals[data.own]          # (P_own, G, N, D): every episode's own goal stages

Cache layout::

    /                   attrs: format, encoder_fingerprint, source (the goal file), task_config (JSON), split
    seed_<s>/obs        (N, D) float16           the first frame's latents
    seed_<s>/goals      (K, G, N, D) float16     the goal latents of the scene's K instruction pairs
                        attrs: task, pairs (JSON), own_pair (JSON), names (JSON: the G stage names)

Building is resumable: each seed is written as ``_incoming_seed_<s>`` and renamed once flushed; a
rebuilt goal file's new seeds are added; a cache of another encoder or goal file is refused. The
writer holds ``<cache>.lock``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.language.goal_data import (
    SEED_PREFIX,
    UNCOMMITTED_PREFIX,
    GoalDataError,
    GoalEpisodes,
    Pair,
)
from jepa_wm.locks import hold

log = logging.getLogger(__name__)

FORMAT = "jepa_wm.language_goal_latents/1"


def goal_latents_path(goal_file: str | Path, fingerprint: str) -> Path:
    """``<dir>/<stem>.latents.<fingerprint>.hdf5`` next to the goal file."""
    goal_file = Path(goal_file)
    return goal_file.with_name(f"{goal_file.stem}.latents.{fingerprint}.hdf5")


def _encode(encoder: FrozenEncoder, images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, H, W, 3)`` -> float16 ``(n, N, D)``."""
    frames = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)[None]  # (1, n, 3, H, W)
    latents = encoder.encode(frames)[0].to("cpu", torch.float16)
    if not torch.isfinite(latents).all():
        raise ValueError("the encoder gave non-finite latents")
    return latents.numpy()


def build_goal_latents(goal_file: str | Path, encoder: FrozenEncoder, cache_path: str | Path | None = None,
                       seeds: Sequence[int] | None = None, progress: bool = True) -> Path:
    """Encode the first frame and every goal image of each seed of ``goal_file`` not yet cached.

    Args:
        goal_file: a language-goal file (:mod:`jepa_wm.language.goal_data`).
        encoder: the frozen video encoder the planner's world model uses.
        cache_path: default :func:`goal_latents_path` with the encoder's fingerprint.
        seeds: the seeds to encode (default: all of the file's).
        progress: a progress bar over the seeds to encode.

    Returns:
        The cache's path.

    Raises:
        GoalDataError: ``goal_file`` is not a language-goal file, lacks a seed asked for, or the
            cache belongs to another encoder or file.
        LockedError: another process is writing the cache.
    """
    fingerprint = encoder.fingerprint()
    cache_path = Path(cache_path) if cache_path is not None else goal_latents_path(goal_file, fingerprint)
    with GoalEpisodes(goal_file) as episodes, contextlib.ExitStack() as stack:
        wanted = list(episodes.seeds if seeds is None else seeds)
        missing = sorted(set(wanted) - set(episodes.seeds))
        if missing:
            raise GoalDataError(f"{goal_file} has no seeds {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                                f"({len(episodes)} seeds, {episodes.seeds[0] if episodes.seeds else '-'} and up)")
        lock = stack.enter_context(hold(cache_path.with_name(cache_path.name + ".lock"),
                                        f"the latent cache {cache_path}"))
        stack.callback(lock.unlink, missing_ok=True)
        header = {"format": FORMAT, "encoder_fingerprint": fingerprint, "source": str(Path(goal_file).resolve()),
                  "task_config": json.dumps(episodes.task_config, sort_keys=True), "split": episodes.split}
        cache = stack.enter_context(h5py.File(cache_path, "a"))
        _check_cache_header(cache, header, cache_path)
        for name in [n for n in cache if n.startswith(UNCOMMITTED_PREFIX)]:
            del cache[name]
        todo = [seed for seed in wanted if f"{SEED_PREFIX}{seed}" not in cache]
        log.info("encoding %d of %d seeds of %s into %s", len(todo), len(wanted), goal_file, cache_path)
        for seed in tqdm(todo, desc="encoding goal images", unit="seed", disable=not (todo and progress)):
            episode = episodes.episode(seed)
            images = [episode.obs_image[None]] + [np.stack(episode.goals[pair].images) for pair in episode.pairs]
            latents = _encode(encoder, np.concatenate(images))  # (1 + K * G, N, D)
            stages = len(episode.goals[episode.own_pair].images)
            group = cache.create_group(f"{UNCOMMITTED_PREFIX}{SEED_PREFIX}{seed}")
            group.create_dataset("obs", data=latents[0])
            group.create_dataset("goals", data=latents[1:].reshape(len(episode.pairs), stages, *latents.shape[1:]))
            group.attrs["task"] = str(episodes.task_config["name"])
            group.attrs["pairs"] = json.dumps([list(p) for p in episode.pairs])
            group.attrs["own_pair"] = json.dumps(list(episode.own_pair))
            group.attrs["names"] = json.dumps(list(episode.goals[episode.own_pair].names))
            cache.flush()
            cache.move(group.name, f"{SEED_PREFIX}{seed}")
            cache.flush()
    return cache_path


def _check_cache_header(cache: h5py.File, header: dict[str, str], cache_path: Path) -> None:
    if not cache.attrs.get("format"):
        cache.attrs.update(header)
        return
    for key, value in header.items():
        if str(cache.attrs.get(key)) != value:
            raise GoalDataError(f"{cache_path}: its {key} is {cache.attrs.get(key)!r}, expected {value!r} "
                                f"(a cache of another encoder or goal file; delete it to build it again)")


@dataclass(frozen=True, eq=False)
class GoalLatentSet:
    """Every instruction pair of every cached seed, in memory.

    Attributes:
        obs: ``(S, N, D)`` float16: each seed's first-frame latents.
        goals: ``(P, G, N, D)`` float16: each pair's goal latents, stages aligned on the final goal
            (the last index); tasks with fewer stages are padded at the front.
        stage_mask: ``(P, G)`` bool, True for the stages a pair has.
        seed_index: ``(P,)`` long: the row of ``obs`` of each pair's seed.
        own: ``(P,)`` bool: the episode's own instruction (the others are its scene's hard negatives).
        negatives: ``(P, K)`` long: the other pairs of the same seed (``-1``: none).
        seeds: ``(S,)`` the env seeds; tasks: ``(S,)`` their task names; sources: ``(S,)`` the index of
            the cache each seed came from (in the order given).
        pairs: ``(object, target)`` of each pair.
        stage_names: each pair's stage names (its own count).
        fingerprint: the encoder's fingerprint.
    """

    obs: Tensor
    goals: Tensor
    stage_mask: Tensor
    seed_index: Tensor
    own: Tensor
    negatives: Tensor
    seeds: list[int]
    tasks: list[str]
    sources: list[int]
    pairs: list[Pair]
    stage_names: list[tuple[str, ...]]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.pairs)


def load_goal_latents(cache_paths: Sequence[str | Path], max_stages: int | None = None,
                      seeds: Sequence[Sequence[int] | None] | None = None) -> GoalLatentSet:
    """Read caches (one encoder) into one :class:`GoalLatentSet`.

    Args:
        cache_paths: files of :func:`build_goal_latents`.
        max_stages: the stage count to align on (default: the most any pair has).
        seeds: per cache, the seeds to read (``None``: every seed it holds).

    Raises:
        GoalDataError: no cache, an unreadable one, a seed asked for that a cache lacks, or caches of
            different encoders.
    """
    if not cache_paths:
        raise GoalDataError("no latent cache to read")
    rows: list[tuple[int, np.ndarray, str, list[Pair], Pair, list[str]]] = []  # (seed, goals, task, pairs, own, names)
    obs: list[np.ndarray] = []
    fingerprints = set()
    sources: list[int] = []
    wanted_per_cache = list(seeds) if seeds is not None else [None] * len(cache_paths)
    if len(wanted_per_cache) != len(cache_paths):
        raise ValueError(f"seeds must hold one entry per cache ({len(cache_paths)}), got {len(wanted_per_cache)}")
    for source, (path, wanted) in enumerate(zip(cache_paths, wanted_per_cache, strict=True)):
        try:
            with h5py.File(path, "r") as cache:
                if cache.attrs.get("format") != FORMAT:
                    raise GoalDataError(f"{path}: not a language-goal latent cache (format "
                                        f"{cache.attrs.get('format')!r})")
                fingerprints.add(str(cache.attrs["encoder_fingerprint"]))
                names = sorted((n for n in cache if n.startswith(SEED_PREFIX)), key=lambda n: int(n[len(SEED_PREFIX):]))
                if wanted is not None:
                    missing = sorted(set(wanted) - {int(n[len(SEED_PREFIX):]) for n in names})
                    if missing:
                        raise GoalDataError(f"{path} has no seeds {missing[:5]}{' ...' if len(missing) > 5 else ''}: "
                                            f"build it for them first")
                    names = [f"{SEED_PREFIX}{seed}" for seed in sorted(set(wanted))]
                for name in names:
                    group = cache[name]
                    obs.append(group["obs"][:])
                    sources.append(source)
                    pairs = [(p[0], p[1]) for p in json.loads(group.attrs["pairs"])]
                    own = tuple(json.loads(group.attrs["own_pair"]))
                    rows.append((int(name[len(SEED_PREFIX):]), group["goals"][:], str(group.attrs["task"]), pairs,
                                 own, json.loads(group.attrs["names"])))
        except OSError as err:
            raise GoalDataError(f"{path}: cannot be read as a latent cache ({' '.join(str(err).split())})") from None
    if len(fingerprints) > 1:
        raise GoalDataError(f"the latent caches come from different encoders: {sorted(fingerprints)}")
    if not rows:
        raise GoalDataError(f"the latent caches {[str(p) for p in cache_paths]} hold no seed")
    stages = max_stages or max(goals.shape[1] for _, goals, *_ in rows)
    total = sum(goals.shape[0] for _, goals, *_ in rows)
    most = max(goals.shape[0] for _, goals, *_ in rows)
    tokens, dim = obs[0].shape
    goals_all = torch.zeros(total, stages, tokens, dim, dtype=torch.float16)
    stage_mask = torch.zeros(total, stages, dtype=torch.bool)
    seed_index, own_flags, pairs_all, names_all = [], [], [], []
    negatives = torch.full((total, max(most - 1, 1)), -1, dtype=torch.long)
    row = 0
    for s, (_, goals, _, pairs, own, names) in enumerate(rows):
        count, g = goals.shape[:2]
        if g > stages:
            raise GoalDataError(f"seed {rows[s][0]} has {g} goal stages, more than {stages}")
        goals_all[row:row + count, stages - g:] = torch.from_numpy(goals)
        stage_mask[row:row + count, stages - g:] = True
        for k in range(count):
            others = [row + j for j in range(count) if j != k]
            negatives[row + k, :len(others)] = torch.tensor(others, dtype=torch.long)
        seed_index += [s] * count
        own_flags += [pair == own for pair in pairs]
        pairs_all += pairs
        names_all += [tuple(names)] * count
        row += count
    return GoalLatentSet(obs=torch.from_numpy(np.stack(obs)), goals=goals_all, stage_mask=stage_mask,
                         seed_index=torch.tensor(seed_index), own=torch.tensor(own_flags), negatives=negatives,
                         seeds=[r[0] for r in rows], tasks=[r[2] for r in rows], sources=sources, pairs=pairs_all,
                         stage_names=names_all, fingerprint=fingerprints.pop())
