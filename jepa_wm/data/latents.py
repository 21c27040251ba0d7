"""Training clips of cached encoder latents, with the dataset's states and actions.

:class:`LatentClipDataset` *is* a :class:`~jepa_wm.data.clips.ClipDataset` (same episodes,
split, clip indexing, frame skip and action aggregation); each item's frames are replaced by
their latents from the cache that :func:`jepa_wm.encoders.latent_cache.build_latent_cache`
wrote next to the dataset (``data/demo_i/latents``, float16 ``(N + 1, tokens, D)``, frame k
at row k). Items:

* ``latents``: float32 ``(T, N, D)``
* ``states``: float32 ``(T, 7)``, ``actions``: float32 ``(T - 1, 7)``, ``episode``, ``start``
  as in ``ClipDataset``.

:func:`usable_caches` finds the caches of an encoder for a set of files;
:func:`open_clips` opens clips of cached latents when possible, else of frames;
:func:`normalization_stats` gives the state/action mean and std the predictor stores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_wm.data.clips import ClipDataset
from jepa_wm.data.hdf5 import DATA
from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.encoders.latent_cache import (
    LATENTS,
    StaleCacheError,
    check_latent_cache,
    latent_cache_path,
    open_latent_cache,
)
from jepa_wm.locks import LockedError

log = logging.getLogger(__name__)


class LatentClipDataset(ClipDataset):
    """:class:`ClipDataset` whose items carry cached ``latents`` instead of ``frames``.

    Args:
        paths: the dataset file(s), as for ``ClipDataset``.
        cache_paths: one latent cache per dataset file, in the same order.
        **clip_kwargs: ``clip_len``, ``frame_skip``, ``split``, ``val_fraction``,
            ``split_seed``, ``clip_stride``, ``flip_images`` of ``ClipDataset``.

    Raises:
        StaleCacheError: a cache lacks a demo of the split, disagrees on its length, was
            built with other image flipping, or the caches come from different encoders.
    """

    read_frames = False  # the clip's frames are not decoded: the latents replace them

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        cache_paths: str | Path | Sequence[str | Path],
        **clip_kwargs: Any,
    ) -> None:
        super().__init__(paths, **clip_kwargs)
        cache_paths = [cache_paths] if isinstance(cache_paths, (str, Path)) else list(cache_paths)
        if len(cache_paths) != len(self.summaries):
            raise ValueError(f"need one latent cache per dataset file: {len(self.summaries)} files, "
                             f"{len(cache_paths)} caches")
        self.cache_of = {s.path: str(c) for s, c in zip(self.summaries, cache_paths)}
        fingerprints = {self._check_cache(s.path, self.cache_of[s.path]) for s in self.summaries}
        if len(fingerprints) > 1:
            raise StaleCacheError(f"the latent caches come from different encoders: {sorted(fingerprints)}")
        self.encoder_fingerprint: str = fingerprints.pop()

    def _check_cache(self, dataset_path: str, cache_path: str) -> str:
        """Every demo of this split is cached with its length; returns the encoder fingerprint."""
        if not Path(cache_path).is_file():
            raise StaleCacheError(f"no latent cache at {cache_path} for {dataset_path}")
        with open_latent_cache(cache_path) as cache:
            data = cache[DATA]
            if bool(data.attrs["flip_images"]) != self.flip_images:
                raise StaleCacheError(
                    f"{cache_path} was built with flip_images={bool(data.attrs['flip_images'])}, "
                    f"the dataset reads flip_images={self.flip_images}"
                )
            for episode in self.episodes:
                if episode.path != dataset_path:
                    continue
                if episode.demo not in data:
                    raise StaleCacheError(f"{cache_path} lacks {episode.demo} of {dataset_path}")
                cached = int(data[episode.demo].attrs["num_samples"])
                if cached != episode.num_samples:
                    raise StaleCacheError(f"{cache_path}: {episode.demo} has {cached} samples cached, "
                                          f"{episode.num_samples} in {dataset_path}")
            return str(data.attrs["encoder_fingerprint"])

    def _latents(self, dataset_path: str, demo: str) -> h5py.Dataset:
        return self._file(self.cache_of[dataset_path])[DATA][demo][LATENTS]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        item = super().__getitem__(index)
        episode = self.episodes[item["episode"]]
        start, stop = item["start"], item["start"] + self._span
        latents = self._latents(episode.path, episode.demo)[start:stop:self.frame_skip]  # (T, N, D)
        item["latents"] = torch.from_numpy(latents.astype(np.float32))
        return item


def usable_caches(
    paths: Sequence[str | Path], encoder: FrozenEncoder, *, flip_images: bool = False
) -> list[Path] | None:
    """The latent cache of ``encoder`` for each dataset file, or None unless all are complete.

    A cache is complete when :func:`~jepa_wm.encoders.latent_cache.check_latent_cache`
    accepts it (same encoder weights and preprocessing, every demo, same images).
    """
    fingerprint = encoder.fingerprint()
    caches = [latent_cache_path(path, fingerprint) for path in paths]
    for path, cache in zip(paths, caches):
        try:
            check_latent_cache(cache, path, encoder, flip_images=flip_images)
        except (StaleCacheError, LockedError, OSError, KeyError) as err:  # unreadable (torn) or being built
            log.info("latent cache unusable: %s", err)
            return None
    return caches


LatentSource = Literal["auto", "cache", "frames"]
LATENT_SOURCES: tuple[str, ...] = ("auto", "cache", "frames")


def open_clips(
    paths: Sequence[str | Path], encoder: FrozenEncoder, *, source: LatentSource = "auto", split: str = "train",
    **clip_kwargs: Any,
) -> ClipDataset:
    """Clips of ``paths`` for training or evaluating on ``encoder``'s latents.

    Args:
        paths: dataset files.
        encoder: the frozen encoder the latents come from.
        source: ``"cache"`` requires complete latent caches (a :class:`LatentClipDataset`);
            ``"frames"`` gives a :class:`ClipDataset` of images (encode them on the fly);
            ``"auto"`` uses the caches when complete, else frames.
        split: ``"train"``, ``"val"`` or ``"all"``.
        **clip_kwargs: the other ``ClipDataset`` arguments.

    Raises:
        StaleCacheError: ``source="cache"`` and a cache is missing or stale.
    """
    if source not in LATENT_SOURCES:
        raise ValueError(f"source must be one of {LATENT_SOURCES}, got {source!r}")
    flip = bool(clip_kwargs.get("flip_images", False))
    caches = None if source == "frames" else usable_caches(paths, encoder, flip_images=flip)
    if caches is None and source == "cache":
        raise StaleCacheError(f"the latent caches of {list(map(str, paths))} are missing or stale "
                              "(build them with jepa_wm.encoders.latent_cache.build_latent_cache)")
    if caches is None:
        log.info("%s clips: encoding frames on the fly (no complete latent cache)", split)
        return ClipDataset(paths, split=split, **clip_kwargs)
    log.info("%s clips: cached latents %s", split, [str(c) for c in caches])
    return LatentClipDataset(paths, caches, split=split, **clip_kwargs)


@dataclass(frozen=True)
class NormalizationStats:
    """Per-dimension mean and std of raw states and actions (each float32 ``(7,)``)."""

    state_mean: torch.Tensor
    state_std: torch.Tensor
    action_mean: torch.Tensor
    action_std: torch.Tensor

    def to_dict(self) -> dict[str, list[float]]:
        return {name: getattr(self, name).tolist() for name in self.__dataclass_fields__}


def normalization_stats(
    dataset: Dataset, *, max_clips: int = 2048, min_std: float = 1e-2, seed: int = 0
) -> NormalizationStats:
    """State and action statistics over (a random subset of) a clip dataset's items.

    Args:
        dataset: yields dicts with ``states`` (T, 7) and ``actions`` (T - 1, 7).
        max_clips: clips read at most (drawn without replacement, seeded).
        min_std: floor of the stds, so dimensions that never move in the data (e.g. the
            orientation in position-only tasks) do not blow up when normalised.
        seed: seed of the subset.
    """
    if len(dataset) == 0:
        raise ValueError("cannot compute normalisation statistics of an empty dataset")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(dataset), size=min(max_clips, len(dataset)), replace=False)
    items = [dataset[int(i)] for i in chosen]
    states = torch.cat([item["states"] for item in items])  # (M, 7)
    actions = torch.cat([item["actions"] for item in items])  # (M', 7)
    return NormalizationStats(
        state_mean=states.mean(0), state_std=states.std(0).clamp_min(min_std),
        action_mean=actions.mean(0), action_std=actions.std(0).clamp_min(min_std),
    )
