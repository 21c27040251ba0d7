"""Oversampling the clips whose object moves: moves by hand, repeats, and the error on files without an object."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from torch.utils.data import Subset

from jepa_wm.data import ClipDataset
from jepa_wm.data.hdf5 import demo_name, init_data_group, write_demo
from jepa_wm.data.oversample import clip_object_moves, moving_clip_indices
from tests.data.conftest import ENV_ARGS, META, synthetic_episode


def _file_with_objects(path: Path, tracks: list[np.ndarray]) -> None:
    """One demo per track; track i: ``(N + 1, 3)`` object xyz."""
    with h5py.File(path, "w") as file:
        data = init_data_group(file, ENV_ARGS, META)
        for i, track in enumerate(tracks):
            episode = replace(synthetic_episode(len(track) - 1, seed=i), objects=track.astype(np.float32))
            write_demo(data, demo_name(i), episode)


def test_clip_moves_match_a_hand_computation_and_moving_clips_repeat(tmp_path: Path) -> None:
    still = np.zeros((10, 3))
    pushed = np.zeros((12, 3))
    pushed[6:, 0] = 0.03  # the object jumps 3 cm in x between frames 5 and 6
    pushed[6:, 2] = 0.5  # z does not count
    path = tmp_path / "objects.hdf5"
    _file_with_objects(path, [still, pushed])
    data = ClipDataset(path, clip_len=3, frame_skip=2, split="all")
    episode, start = data.clip_locations()
    for i in range(len(data)):
        item = data[i]
        assert (item["episode"], item["start"]) == (episode[i], start[i])
    moves = clip_object_moves(data)
    # a clip covers frames start, start + 2, start + 4: it moved when those straddle the jump
    expected = [0.0 if e == 0 or not (s < 6 <= s + 4) else 0.03 for e, s in zip(episode, start)]
    np.testing.assert_allclose(moves, expected, atol=1e-6)

    indices = moving_clip_indices(moves, min_move=0.005, repeat=3)
    moving = np.flatnonzero(moves > 0.005)
    assert len(moving) == 4  # starts 2-5 (their frames straddle 5 -> 6), not 0, 1, 6, 7
    assert len(indices) == len(data) + 2 * len(moving)
    assert all((indices == i).sum() == (3 if i in moving else 1) for i in range(len(data)))
    subset = Subset(data, indices.tolist())
    assert subset[len(subset) - 1]["start"] == data[len(data) - 1]["start"]
    np.testing.assert_array_equal(moving_clip_indices(moves, min_move=0.005, repeat=1), np.arange(len(data)))
    with pytest.raises(ValueError, match="repeat"):
        moving_clip_indices(moves, min_move=0.005, repeat=0)


def test_files_without_an_object_are_refused(synthetic_file) -> None:
    path, _ = synthetic_file
    with pytest.raises(ValueError, match="no obs/object"):
        clip_object_moves(ClipDataset(path, clip_len=3, split="all"))
