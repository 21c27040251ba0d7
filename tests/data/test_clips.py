"""ClipDataset: shapes, action alignment, frame skip, split, DataLoader workers."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from jepa_wm.data import ClipDataset


def test_shapes_dtypes_and_alignment(synthetic_file):
    path, episodes = synthetic_file
    clips = ClipDataset(path, clip_len=5, split="all")
    lengths = [e.num_samples for e in episodes]
    assert len(clips) == sum(n + 1 - 4 for n in lengths)  # N + 1 frames per episode
    for index in range(len(clips)):
        item = clips[index]
        assert item["frames"].shape == (5, 3, 16, 16) and item["frames"].dtype == torch.uint8
        assert item["states"].shape == (5, 7) and item["states"].dtype == torch.float32
        assert item["actions"].shape == (4, 7) and item["actions"].dtype == torch.float32
        episode, start = episodes[item["episode"]], item["start"]
        frame_ids = start + np.arange(5)
        assert item["frames"][:, 0, 0, 0].tolist() == frame_ids.tolist()  # encoded frame index
        assert item["states"][:, 0].tolist() == frame_ids.tolist()
        # action j is the one taken between frame j and frame j + 1
        np.testing.assert_array_equal(item["actions"].numpy(), episode.actions[start : start + 4])
        np.testing.assert_array_equal(
            item["frames"].permute(0, 2, 3, 1).numpy(), episode.images[start : start + 5]
        )
    last = clips[len(clips) - 1]  # ends on the final frame, which only next_obs holds
    assert last["start"] + 4 == lengths[-1]


def test_frame_skip_sums_deltas_and_keeps_last_gripper(synthetic_file):
    path, episodes = synthetic_file
    k, clip_len = 3, 4
    clips = ClipDataset(path, clip_len=clip_len, frame_skip=k, split="all", clip_stride=2)
    span = (clip_len - 1) * k + 1
    assert len(clips) == sum((e.num_samples + 1 - span) // 2 + 1 for e in episodes)
    for index in range(0, len(clips), 3):
        item = clips[index]
        episode, start = episodes[item["episode"]], item["start"]
        assert start % 2 == 0
        frame_ids = start + k * np.arange(clip_len)
        assert item["states"][:, 0].tolist() == frame_ids.tolist()
        for j in range(clip_len - 1):
            raw = episode.actions[frame_ids[j] : frame_ids[j + 1]]  # (k, 7)
            np.testing.assert_allclose(item["actions"][j, :6].numpy(), raw[:, :6].sum(0), rtol=1e-6)
            assert item["actions"][j, 6] == raw[-1, 6]


def test_split_is_by_episode_disjoint_and_deterministic(tmp_path, write_file):
    paths = [tmp_path / "a.hdf5", tmp_path / "b.hdf5"]
    write_file(paths[0], [8] * 12)
    write_file(paths[1], [10] * 8)
    refs = {}
    for split in ("train", "val"):
        first = ClipDataset(paths, clip_len=3, split=split, val_fraction=0.25, split_seed=7)
        again = ClipDataset(paths, clip_len=3, split=split, val_fraction=0.25, split_seed=7)
        assert first.episodes == again.episodes
        refs[split] = {(ref.path, ref.demo) for ref in first.episodes}
    assert len(refs["val"]) == 5 and len(refs["train"]) == 15
    assert not refs["train"] & refs["val"]
    assert {path for path, _ in refs["val"]} == {str(p) for p in paths}  # drawn across files
    other = ClipDataset(paths, clip_len=3, split="val", val_fraction=0.25, split_seed=8)
    assert {(ref.path, ref.demo) for ref in other.episodes} != refs["val"]
    with pytest.raises(ValueError, match="val_fraction"):
        ClipDataset(paths, split="val", val_fraction=1.0)


def test_dataloader_with_two_workers_matches_direct_reads(synthetic_file):
    path, _ = synthetic_file
    clips = ClipDataset(path, clip_len=4, frame_skip=2, split="train", val_fraction=0.2)
    expected = [clips[i] for i in range(len(clips))]  # opens a handle in this process first
    restored = pickle.loads(pickle.dumps(clips))
    assert torch.equal(restored[3]["frames"], expected[3]["frames"])
    loader = DataLoader(clips, batch_size=5, shuffle=False, num_workers=2)
    batches = list(loader)
    frames = torch.cat([b["frames"] for b in batches])  # (clips, T, 3, H, W)
    assert frames.shape == (len(clips), 4, 3, 16, 16)
    assert torch.equal(frames, torch.stack([e["frames"] for e in expected]))
    actions = torch.cat([b["actions"] for b in batches])
    assert torch.equal(actions, torch.stack([e["actions"] for e in expected]))


def test_reads_lazily_from_disk(synthetic_file):
    path, _ = synthetic_file
    clips = ClipDataset(path, clip_len=3, split="all")
    with h5py.File(path, "a") as file:  # a change on disk shows up: nothing was cached at init
        demo = file["data/demo_0/obs/image"]
        demo[0] = 255 - demo[0]
        changed = demo[0]
    np.testing.assert_array_equal(clips[0]["frames"][0].permute(1, 2, 0).numpy(), changed)


def test_rejects_files_with_different_image_sizes(tmp_path, write_file):
    write_file(tmp_path / "a.hdf5", [6], size=16)
    write_file(tmp_path / "b.hdf5", [6], size=8)
    with pytest.raises(ValueError, match="one image size"):
        ClipDataset([tmp_path / "a.hdf5", tmp_path / "b.hdf5"], split="all")


def test_rejects_a_non_finite_action_naming_file_demo_and_key(tmp_path, write_file):
    # one NaN action once reached training (its loss went NaN); the clips are refused when opened
    path = tmp_path / "nan.hdf5"
    write_file(path, [8, 8, 8])
    with h5py.File(path, "a") as file:
        actions = file["data/demo_2/actions"][()]
        actions[5, 0] = np.nan
        file["data/demo_2/actions"][...] = actions
    with pytest.raises(ValueError, match=r"nan\.hdf5: 'data/demo_2/actions': expected finite values, found nan at "
                                         r"index \(5, 0\) \(1 non-finite\)"):
        ClipDataset(path, clip_len=3, split="all")
