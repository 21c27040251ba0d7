"""Encode a robomimic-layout dataset once and keep the frozen encoder's latents on disk.

The cache ``<dataset>.latents.<fingerprint>.hdf5`` mirrors the dataset's demos::

    data/                   attrs: encoder_fingerprint, encoder_config (JSON), source_format,
                                   flip_images, dataset (path it was built from)
    data/demo_<i>/latents   (N + 1, tokens, D) float16: frame k of the demo (obs 0 .. N-1,
                            then next_obs N-1), encoded by FrozenEncoder.encode
                            attrs: num_samples (N), image_digest (first and last frame)

Building is resumable: demos already in the cache are kept, new demos of a grown dataset are
added, and each demo is committed by a rename after it is fully written. A cache made by
another encoder (weights, architecture or preprocessing), with other image flipping, or whose
demos no longer match the dataset (length or images) is refused with :class:`StaleCacheError`.
A cache that cannot be read at all (truncated by a crash or a full disk) is reported by name and
built again into a temporary file that replaces it when complete; one being written by another
process is refused with :class:`~jepa_wm.locks.LockedError`. The encoder's latents must be finite.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from jepa_wm.data.formats import FORMATS_BY_NAME, ObsFormat, validate_file
from jepa_wm.data.hdf5 import (
    DATA,
    UNCOMMITTED_PREFIX,
    commit_staged,
    frame_rows,
    remove_uncommitted,
)
from jepa_wm.encoders.frozen import FrozenEncoder
from jepa_wm.locks import LockedError

logger = logging.getLogger(__name__)

LATENTS = "latents"


class StaleCacheError(ValueError):
    """A latent cache that does not belong to this dataset and encoder."""


class UnreadableCacheError(StaleCacheError):
    """A latent cache file that HDF5 cannot open (truncated, or not HDF5)."""


def open_latent_cache(cache_path: str | Path, mode: str = "r") -> h5py.File:
    """``h5py.File(cache_path, mode)``, with errors that name the cache.

    Raises:
        LockedError: another process has the cache open for writing (a build is running).
        UnreadableCacheError: the file exists but cannot be read (truncated, not HDF5).
    """
    try:
        return h5py.File(cache_path, mode)
    except BlockingIOError:  # HDF5's file lock
        raise LockedError(f"the latent cache {cache_path} is in use by another running process (a build?); "
                          "wait for it to end") from None
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as err:
        reason = " ".join(str(err).split())  # HDF5's messages span lines
        raise UnreadableCacheError(f"the latent cache {cache_path} cannot be read ({reason})") from None


def latent_cache_path(dataset_path: str | Path, fingerprint: str) -> Path:
    """``<dir>/<stem>.latents.<fingerprint>.hdf5`` next to the dataset."""
    dataset_path = Path(dataset_path)
    return dataset_path.with_name(f"{dataset_path.stem}.latents.{fingerprint}.hdf5")


def _frames(demo: h5py.Group, fmt: ObsFormat, flip: bool) -> np.ndarray:
    """All N + 1 frames of a demo, (N + 1, H, W, 3) uint8."""
    frames = frame_rows(demo, fmt.image_key)
    return frames[:, ::-1] if flip else frames


def _image_digest(demo: h5py.Group, fmt: ObsFormat) -> str:
    """Hash of a demo's first and last frames: cheap evidence that the images are the same."""
    first, last = demo["obs"][fmt.image_key][:1], demo["next_obs"][fmt.image_key][-1:]
    return hashlib.sha256(first.tobytes() + last.tobytes()).hexdigest()[:16]


def _expected_attrs(
    encoder: FrozenEncoder, fingerprint: str, fmt: ObsFormat, flip: bool
) -> dict[str, object]:
    return {
        "encoder_fingerprint": fingerprint,
        "encoder_config": json.dumps(encoder.describe(), sort_keys=True),
        "source_format": fmt.name,
        "flip_images": flip,
    }


def _check_header(data: h5py.Group, expected: dict[str, object], cache_path: Path) -> None:
    for key, value in expected.items():
        found = data.attrs.get(key)
        found = found.item() if isinstance(found, np.generic) else found
        if found != value:
            raise StaleCacheError(
                f"{cache_path}: data.attrs[{key!r}] is {found!r}, expected {value!r}"
            )


def build_latent_cache(
    dataset_path: str | Path,
    encoder: FrozenEncoder,
    *,
    cache_path: str | Path | None = None,
    flip_images: bool = False,
    progress: bool = True,
) -> Path:
    """Encode every demo of ``dataset_path`` not yet in the cache; return the cache path.

    Args:
        dataset_path: a robomimic-layout HDF5 file (any format :mod:`jepa_wm.data.formats`
            reads).
        encoder: the frozen encoder; its ``chunk_size`` bounds the frames per forward pass.
        cache_path: where to write; default :func:`latent_cache_path` with the encoder's
            fingerprint.
        flip_images: flip frames upside down before encoding (as ``ClipDataset`` does).
        progress: show a progress bar over the demos to encode.

    Raises:
        StaleCacheError: the existing cache was built by another encoder or setting, or its
            demos differ from the dataset's (an unreadable cache is built again instead).
        LockedError: another process is writing the cache.
        ValueError: the encoder gives non-finite latents.
    """
    summary = validate_file(dataset_path)
    fmt = FORMATS_BY_NAME[summary.format]
    fingerprint = encoder.fingerprint()
    cache_path = (
        Path(cache_path) if cache_path is not None else latent_cache_path(dataset_path, fingerprint)
    )
    expected = _expected_attrs(encoder, fingerprint, fmt, flip_images)
    with h5py.File(dataset_path, "r") as source, _cache_for_writing(cache_path) as cache:
        source_data = source[DATA]
        if DATA in cache:
            data = cache[DATA]
            _check_header(data, expected, cache_path)
            stale = remove_uncommitted(data)
            if stale:
                logger.info("removed %d interrupted demos from %s", len(stale), cache_path)
        else:
            data = cache.create_group(DATA)
            data.attrs.update({**expected, "dataset": str(Path(dataset_path).resolve())})
        todo = []
        for name, length in summary.demo_lengths.items():
            if name in data:
                _check_demo(data[name], source_data[name], length, fmt, cache_path)
            else:
                todo.append(name)
        logger.info(
            "encoding %d of %d demos into %s", len(todo), len(summary.demo_lengths), cache_path
        )
        for name in tqdm(todo, desc="encoding demos", unit="demo", disable=not (todo and progress)):
            demo = source_data[name]
            frames = torch.from_numpy(
                np.ascontiguousarray(_frames(demo, fmt, flip_images))
            )  # (N+1, H, W, 3)
            latents = encoder.encode(frames.permute(0, 3, 1, 2).unsqueeze(0))[0]  # (N+1, tokens, D)
            latents = latents.to("cpu", torch.float16).numpy()
            _check_finite_latents(latents, dataset_path, name)
            group = data.create_group(UNCOMMITTED_PREFIX + name)
            group.create_dataset(LATENTS, data=latents)
            group.attrs["num_samples"] = summary.demo_lengths[name]
            group.attrs["image_digest"] = _image_digest(demo, fmt)
            commit_staged(cache, name)
            cache.flush()
    return cache_path


@contextlib.contextmanager
def _cache_for_writing(cache_path: Path) -> Iterator[h5py.File]:
    """The cache opened for appending. One that cannot be read is built anew in ``<cache>.tmp``,
    which replaces it once the ``with`` block completes (derived data: nothing is lost)."""
    tmp = None
    try:
        cache = open_latent_cache(cache_path, "a")
    except UnreadableCacheError as err:
        logger.warning("%s: building it again", err)
        tmp = cache_path.with_name(cache_path.name + ".tmp")
        cache = h5py.File(tmp, "w")
    try:
        with cache:
            yield cache
        if tmp is not None:
            os.replace(tmp, cache_path)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _check_finite_latents(latents: np.ndarray, dataset_path: str | Path, demo: str) -> None:
    """``ValueError`` unless the encoder's float16 latents of ``demo`` are all finite."""
    bad = int(latents.size - np.isfinite(latents).sum())
    if bad:
        raise ValueError(f"{dataset_path}: {demo}: expected finite latents from the encoder, got {bad} "
                         f"non-finite of {latents.size} (float16)")


def _check_demo(
    cached: h5py.Group, demo: h5py.Group, length: int, fmt: ObsFormat, cache_path: Path
) -> None:
    where = f"{cache_path}: {cached.name}"
    if int(cached.attrs["num_samples"]) != length:
        raise StaleCacheError(
            f"{where} has {int(cached.attrs['num_samples'])} samples, the dataset {length}"
        )
    if cached.attrs["image_digest"] != _image_digest(demo, fmt):
        raise StaleCacheError(f"{where}: the dataset's images changed since the cache was built")


def check_latent_cache(
    cache_path: str | Path,
    dataset_path: str | Path,
    encoder: FrozenEncoder,
    *,
    flip_images: bool = False,
) -> None:
    """Raise :class:`StaleCacheError` unless the cache covers every demo, for ``encoder``."""
    summary = validate_file(dataset_path)
    fmt = FORMATS_BY_NAME[summary.format]
    cache_path = Path(cache_path)
    if not cache_path.is_file():
        raise StaleCacheError(f"no latent cache at {cache_path}; build it with build_latent_cache")
    expected = _expected_attrs(encoder, encoder.fingerprint(), fmt, flip_images)
    with h5py.File(dataset_path, "r") as source, open_latent_cache(cache_path) as cache:
        if DATA not in cache:
            raise StaleCacheError(f"{cache_path} has no '{DATA}' group")
        data = cache[DATA]
        _check_header(data, expected, cache_path)
        missing = [name for name in summary.demo_lengths if name not in data]
        if missing:
            raise StaleCacheError(
                f"{cache_path} lacks {len(missing)} demos of the dataset, e.g. {missing[:5]}"
            )
        for name, length in summary.demo_lengths.items():
            _check_demo(data[name], source[DATA][name], length, fmt, cache_path)
