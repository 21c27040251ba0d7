"""Round trip of the robomimic layout, and committing demos by rename."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from jepa_wm.data import Episode, read_demo, validate_file
from jepa_wm.data.formats import DatasetFormatError
from jepa_wm.data.hdf5 import DATA, META_ATTR, append_demo, init_data_group, remove_uncommitted
from jepa_wm.data.store import EpisodeStore, write_part


def test_round_trip_arrays_and_attributes(synthetic_file, header):
    path, episodes = synthetic_file
    env_args, meta = header
    with h5py.File(path, "r") as file:
        data = file[DATA]
        assert json.loads(data.attrs["env_args"]) == env_args
        assert json.loads(data.attrs["jepa_wm"]) == meta
        assert data.attrs["total"] == sum(e.num_samples for e in episodes)
        for i, expected in enumerate(episodes):
            demo = data[f"demo_{i}"]
            n = expected.num_samples
            assert demo.attrs["num_samples"] == n
            assert demo.attrs["success"] == expected.success[-1]
            assert demo["obs/image"].dtype == np.uint8 and demo["obs/image"].compression
            assert demo["actions"].shape == (n, 7) and demo["actions"].dtype == np.float32
            assert demo["next_obs/state"].shape == (n, 7)
            np.testing.assert_array_equal(demo["next_obs/image"][: n - 1], demo["obs/image"][1:])
            got = read_demo(data, f"demo_{i}")
            for field in ("images", "robot_states", "actions", "rewards", "dones", "success", "sim_states"):
                a, b = getattr(got, field), getattr(expected, field)
                assert a.dtype == b.dtype, field
                np.testing.assert_array_equal(a, b, err_msg=field)
            for attr in ("seed", "noise", "instruction"):
                assert getattr(got, attr) == getattr(expected, attr)
    summary = validate_file(path)
    assert (summary.episodes, summary.samples, summary.format) == (6, 70, "jepa_wm")
    assert summary.successes == 6 and summary.image_shape == (16, 16, 3)


def test_episode_rejects_misaligned_arrays(make_episode):
    good = make_episode(5, seed=0)
    with pytest.raises(ValueError, match=r"Episode.images: expected uint8 \(6, \*, \*, 3\)"):
        Episode(**{**good.__dict__, "images": good.images[:-1]})
    with pytest.raises(ValueError, match=r"Episode\.actions"):
        Episode(**{**good.__dict__, "actions": good.actions.astype(np.float64)})


def test_append_commits_by_rename_and_cleans_staging(synthetic_file, header, tmp_path):
    src_path, episodes = synthetic_file
    dst_path = tmp_path / "dst.hdf5"
    with h5py.File(src_path, "r") as src, h5py.File(dst_path, "w") as dst:
        init_data_group(dst, *header)
        n = append_demo(dst, src[DATA]["demo_2"], "demo_7")
        # what a crash mid-copy leaves behind: a staged, uncommitted copy
        dst[DATA].copy(src[DATA]["demo_3"], dst[DATA], name="_incoming_demo_8")
        assert remove_uncommitted(dst[DATA]) == ["_incoming_demo_8"]
        assert list(dst[DATA]) == ["demo_7"] and dst[DATA].attrs["total"] == n
        np.testing.assert_array_equal(read_demo(dst[DATA], "demo_7").images, episodes[2].images)
    assert validate_file(dst_path).episodes == 1


def test_store_repairs_a_demo_torn_by_a_kill(make_episode, header, tmp_path):
    # HDF5 writes are not transactional: a SIGKILL during a merge once left `demo_1` on disk
    # without its actions. Reopening the store must drop it and take it again from its part.
    env_args, meta = header
    out = tmp_path / "out.hdf5"
    store_header = {"env_args": env_args, META_ATTR: meta}
    with EpisodeStore(out, store_header) as store:
        for index in range(3):
            write_part(out, index, make_episode(6 + index, seed=index), store_header)
            store.add(index)
    with h5py.File(out, "a") as file:
        del file[DATA]["demo_1"]["actions"]
    with pytest.raises(DatasetFormatError, match="demo_1/actions"):
        validate_file(out)
    with EpisodeStore(out, store_header) as store:
        assert store.indices() == {0, 1, 2}
    summary = validate_file(out)
    assert summary.episodes == 3 and summary.samples == 6 + 7 + 8
    assert out.with_name(out.name + ".corrupt").exists()  # the damaged file is kept
