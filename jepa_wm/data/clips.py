"""Fixed-length training clips read lazily from robomimic-layout HDF5 files.

A demo of ``N`` steps has ``N + 1`` frames: ``obs/`` holds frames ``0 .. N-1`` and the last
one comes from ``next_obs/`` (frame ``N``). A clip of ``T`` frames with ``frame_skip`` ``k``
takes frames ``s, s + k, ..., s + (T - 1) k`` and the ``T - 1`` actions between them:

* action ``j`` of the clip moves frame ``j`` to frame ``j + 1``;
* with ``k > 1`` it aggregates the ``k`` recorded actions ``s + jk .. s + jk + k - 1``:
  the six delta dimensions (position, Euler angles) are summed, and the gripper dimension
  (an absolute command) is the last one issued. Summing Euler deltas is exact for position
  and a small-angle approximation for rotation.

Only the lengths of the demos are read at construction; each process (DataLoader worker)
opens its own read-only h5py handles on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_wm.data.formats import FORMATS_BY_NAME, ObsFormat, validate_file
from jepa_wm.data.hdf5 import DATA, frame_rows

log = logging.getLogger(__name__)

Split = Literal["train", "val", "all"]


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode lives: ``path``, ``data/<demo>``, ``num_samples`` steps, its format."""

    path: str
    demo: str
    num_samples: int
    format: ObsFormat


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic episode split: ``(train indices, val indices)``, both sorted, disjoint.

    ``round(val_fraction * n)`` episodes (at least one when ``val_fraction > 0``) go to
    validation, drawn by a permutation seeded with ``seed``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = 0 if val_fraction == 0 else max(1, round(val_fraction * n))
    if n_val >= n and n_val > 0:
        raise ValueError(f"cannot hold out {n_val} of {n} episodes for validation and still train")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class ClipDataset(Dataset):
    """Clips of ``clip_len`` frames from one or several robomimic-layout files.

    Each item is a dict:

    * ``frames``: uint8 ``(T, 3, H, W)``
    * ``states``: float32 ``(T, 7)``
    * ``actions``: float32 ``(T - 1, 7)``; action ``j`` is taken between frames ``j`` and ``j + 1``
    * ``episode``: index into :attr:`episodes`; ``start``: step of the first frame in the demo.

    Args:
        paths: one file or several (same image size); formats are detected per file.
        clip_len: frames per clip ``T`` (at least 2).
        frame_skip: recorded steps between consecutive clip frames (see the module docstring).
        split: ``"train"``, ``"val"`` or ``"all"`` episodes.
        val_fraction: fraction of episodes held out for ``"val"`` (split by episode).
        split_seed: seed of the episode split.
        clip_stride: steps between the starts of consecutive clips of an episode.
        flip_images: flip frames upside down (older robosuite datasets are stored that way).
    """

    read_frames = True  # False in subclasses whose items carry something else (cached latents)

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        clip_len: int = 8,
        frame_skip: int = 1,
        split: Split = "train",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        clip_stride: int = 1,
        flip_images: bool = False,
    ) -> None:
        if clip_len < 2 or frame_skip < 1 or clip_stride < 1:
            raise ValueError(
                f"need clip_len >= 2, frame_skip >= 1, clip_stride >= 1; "
                f"got {clip_len}, {frame_skip}, {clip_stride}"
            )
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not paths:
            raise ValueError("ClipDataset needs at least one file")
        self.clip_len, self.frame_skip, self.clip_stride = clip_len, frame_skip, clip_stride
        self.flip_images = flip_images
        self.summaries = [validate_file(path) for path in paths]
        shapes = {s.image_shape for s in self.summaries}
        if len(shapes) > 1:
            found = ", ".join(f"{s.path}: {s.image_shape}" for s in self.summaries)
            raise ValueError(f"all files must have one image size; found {found}")
        self.image_shape: tuple[int, int, int] = shapes.pop()
        all_episodes = [
            EpisodeRef(s.path, demo, n, FORMATS_BY_NAME[s.format])
            for s in self.summaries
            for demo, n in s.demo_lengths.items()
        ]
        if split == "all":
            chosen = np.arange(len(all_episodes))
        else:
            train, val = split_episodes(len(all_episodes), val_fraction, split_seed)
            chosen = train if split == "train" else val
        self.episodes = [all_episodes[i] for i in chosen]
        span = (clip_len - 1) * frame_skip + 1  # raw frames covered by one clip
        counts = np.array(
            [max(0, (ep.num_samples + 1 - span) // clip_stride + 1) for ep in self.episodes]
        )
        if (counts == 0).any():
            log.warning("%d episodes are shorter than a clip (%d frames)", (counts == 0).sum(), span)
        self._span = span
        self._ends = np.cumsum(counts)  # clip i belongs to the first episode with i < _ends[e]
        self._handles: dict[str, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}  # h5py handles do not cross process boundaries
        return state

    def _file(self, path: str) -> h5py.File:
        """This process's read-only handle on ``path`` (opened on first use)."""
        if self._pid != os.getpid():  # forked into a DataLoader worker: open our own handles
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = h5py.File(path, "r")
        return self._handles[path]

    def _demo(self, episode: EpisodeRef) -> h5py.Group:
        return self._file(episode.path)[DATA][episode.demo]

    def clip_locations(self) -> tuple[np.ndarray, np.ndarray]:
        """Where every clip comes from: ``(episode, start)``, int64 ``(len(self),)`` each.

        Clip ``i`` covers recorded frames ``start[i] + j * frame_skip`` (``j < clip_len``) of
        ``episodes[episode[i]]``; the order is that of :meth:`__getitem__`.
        """
        counts = np.diff(self._ends, prepend=0)  # clips per episode
        episode = np.repeat(np.arange(len(counts)), counts)
        first = np.repeat(self._ends - counts, counts)  # index of each clip's episode's first clip
        return episode, (np.arange(len(episode)) - first) * self.clip_stride

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} clips")
        e = int(np.searchsorted(self._ends, index, side="right"))
        first = int(self._ends[e - 1]) if e else 0
        start = (index - first) * self.clip_stride
        stop = start + self._span
        episode = self.episodes[e]
        fmt, demo, k = episode.format, self._demo(episode), self.frame_skip
        item: dict[str, torch.Tensor | int] = {}
        if self.read_frames:
            frames = frame_rows(demo, fmt.image_key, start, stop)[::k]  # (T, H, W, 3)
            if self.flip_images:
                frames = frames[:, ::-1]
            item["frames"] = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        raw_state = {key: frame_rows(demo, key, start, stop)[::k] for key, _ in fmt.state_keys}
        raw_actions = demo["actions"][start : stop - 1].astype(np.float32)  # ((T-1) k, 7)
        raw_actions = raw_actions.reshape(self.clip_len - 1, k, -1)  # (T-1, k, 7)
        actions = np.concatenate(
            [raw_actions[:, :, :6].sum(axis=1), raw_actions[:, -1, 6:]], axis=1
        )  # (T-1, 7)
        item["states"] = torch.from_numpy(fmt.build_state(raw_state))  # (T, 7)
        item["actions"] = torch.from_numpy(actions)
        item["episode"], item["start"] = e, start
        return item
