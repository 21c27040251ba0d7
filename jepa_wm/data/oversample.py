"""Oversample the training clips in which the object moves.

In push most clips show the arm moving through free space; the cube moves more than 5 mm in
about a quarter of the 4-frame training clips, so a predictor trained on the recorded mix learns
the arm's motion far better than where a push sends the cube (docs/research/push.md).
:func:`moving_clip_indices` lists every clip once and the clips whose object moved more than
``min_move`` ``repeat`` times in all;
``torch.utils.data.Subset(dataset, indices)`` then serves them, with any sampler (the
resumable one included). The object's recorded position (``obs/object``, a training label like
the robot's state) only chooses clips: the predictor never sees it.

>>> moves = clip_object_moves(train_set)              # (num_clips,) metres
>>> indices = moving_clip_indices(moves, min_move=0.005, repeat=4)
>>> train_data = torch.utils.data.Subset(train_set, indices)
"""

from __future__ import annotations

import h5py
import numpy as np

from jepa_wm.data.clips import ClipDataset
from jepa_wm.data.hdf5 import DATA, OBJECT, frame_rows


def clip_object_moves(dataset: ClipDataset, key: str = OBJECT) -> np.ndarray:
    """How far the object moves in each clip: float64 ``(len(dataset),)`` metres.

    A clip's move is the largest xy distance of the object, over the clip's frames, from where
    it is at the clip's first frame.

    Raises:
        ValueError: an episode without ``obs/<key>`` (e.g. reach, or robosuite's files).
    """
    episode, start = dataset.clip_locations()
    offsets = np.arange(dataset.clip_len) * dataset.frame_skip  # (T,)
    moves = np.zeros(len(episode))
    by_path: dict[str, list[int]] = {}
    for e, ref in enumerate(dataset.episodes):
        by_path.setdefault(ref.path, []).append(e)
    for path, episodes in by_path.items():
        with h5py.File(path, "r") as file:
            for e in episodes:
                ref = dataset.episodes[e]
                demo = file[DATA][ref.demo]
                if key not in demo["obs"]:
                    raise ValueError(f"{path} {ref.demo} has no obs/{key}: oversampling moving clips needs "
                                     f"episodes with an object (push, pick_place, ...)")
                track = frame_rows(demo, key)[:, :2]  # (N + 1, 2) object xy
                mine = np.flatnonzero(episode == e)
                frames = track[start[mine, None] + offsets]  # (clips, T, 2)
                moves[mine] = np.linalg.norm(frames - frames[:, :1], axis=-1).max(axis=1)
    return moves


def moving_clip_indices(moves: np.ndarray, min_move: float, repeat: int) -> np.ndarray:
    """Clip indices with every clip once and each clip that moved more than ``min_move`` ``repeat`` times.

    Args:
        moves: ``(num_clips,)`` from :func:`clip_object_moves`.
        min_move: metres; a clip moved when its move exceeds this.
        repeat: times a moving clip is listed (1: the dataset as recorded).

    Returns:
        int64 ``(num_clips + (repeat - 1) * num_moving,)``, sorted.
    """
    if repeat < 1 or min_move < 0:
        raise ValueError(f"need repeat >= 1 and min_move >= 0, got repeat={repeat}, min_move={min_move}")
    counts = np.where(np.asarray(moves) > min_move, repeat, 1)
    return np.repeat(np.arange(len(counts)), counts)
