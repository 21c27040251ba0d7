"""Validation errors name the file and the key; robomimic (robosuite) image datasets are read."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from jepa_wm.data import ClipDataset, DatasetFormatError, validate_file


def _replace(group: h5py.Group, key: str, data: np.ndarray) -> None:
    del group[key]
    group.create_dataset(key, data=data)


def _set(dataset: h5py.Dataset, index: tuple[int, ...], value: float) -> None:
    values = dataset[()]
    values[index] = value
    dataset[...] = values


CORRUPTIONS = {
    "missing actions": (lambda f: f.__delitem__("data/demo_1/actions"), "data/demo_1/actions", "nothing"),
    "6-D actions": (
        lambda f: _replace(f["data/demo_1"], "actions", np.zeros((9, 6), np.float32)),
        "data/demo_1/actions",
        "(9, 6)",
    ),
    "float images": (
        lambda f: _replace(f["data/demo_1/obs"], "image", np.zeros((9, 16, 16, 3), np.float32)),
        "data/demo_1/obs/image",
        "float32",
    ),
    "grey images": (
        lambda f: _replace(f["data/demo_1/next_obs"], "image", np.zeros((9, 16, 16), np.uint8)),
        "data/demo_1/next_obs/image",
        "(9, 16, 16)",
    ),
    "short rewards": (
        lambda f: _replace(f["data/demo_1"], "rewards", np.zeros(8)),
        "data/demo_1/rewards",
        "(8,)",
    ),
    "missing next_obs state": (
        lambda f: f.__delitem__("data/demo_1/next_obs/state"),
        "data/demo_1/next_obs/state",
        "nothing",
    ),
    "missing num_samples": (
        lambda f: f["data/demo_1"].attrs.__delitem__("num_samples"),
        "data/demo_1.attrs['num_samples']",
        "nothing",
    ),
    "nan action": (
        lambda f: _set(f["data/demo_1/actions"], (5, 0), np.nan), "data/demo_1/actions", "nan at index (5, 0)"
    ),
    "inf next state": (
        lambda f: _set(f["data/demo_1/next_obs/state"], (8, 6), -np.inf),
        "data/demo_1/next_obs/state",
        "-inf at index (8, 6) (1 non-finite)",
    ),
    "nan reward": (lambda f: _set(f["data/demo_0/rewards"], (0,), np.nan), "data/demo_0/rewards", "nan at index (0,)"),
    "wrong total": (lambda f: f["data"].attrs.__setitem__("total", 3), "data.attrs['total']", "3"),
    "stray group": (lambda f: f["data"].create_group("extra"), "data/extra", "extra"),
    "no data group": (lambda f: f.move("data", "other"), "data", "nothing"),
    "unknown obs keys": (
        lambda f: [f.move(f"data/demo_{i}/obs/image", f"data/demo_{i}/obs/rgb") for i in range(2)],
        "data/demo_0/obs",
        "'rgb'",
    ),
    "image sizes differ": (
        lambda f: [
            _replace(f["data/demo_1"][g], "image", np.zeros((9, 8, 8, 3), np.uint8))
            for g in ("obs", "next_obs")
        ],
        "data/demo_1/obs/image",
        "(8, 8, 3)",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_file_errors_name_file_and_key(case, tmp_path, write_file):
    path = tmp_path / "bad.hdf5"
    write_file(path, [12, 9])
    corrupt, key, found = CORRUPTIONS[case]
    with h5py.File(path, "a") as file:
        corrupt(file)
    with pytest.raises(DatasetFormatError) as err:
        validate_file(path)
    message = str(err.value)
    assert err.value.key == key and str(path) in message and f"'{key}'" in message
    assert "expected" in message and found in message.split("found", 1)[1], message


def test_not_hdf5(tmp_path):
    path = tmp_path / "junk.hdf5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetFormatError, match=r"junk\.hdf5: '/': expected a readable HDF5 file"):
        validate_file(path)


def _write_robomimic_image_file(path, lengths, rng):
    """A file in exactly the layout of robomimic's robosuite image.hdf5 (Lift), with known
    end-effector Euler angles; returns per demo (images (N+1,84,84,3), euler (N+1,3), opening)."""
    truth = []
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        env_args = {"env_name": "Lift", "type": 1, "env_kwargs": {"robots": ["Panda"], "camera_heights": 84}}
        data.attrs["env_args"] = json.dumps(env_args, indent=4)
        data.attrs["total"] = sum(lengths)
        for i, n in enumerate(lengths):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = n
            demo.attrs["model_file"] = "<mujoco model='base'></mujoco>"
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (n, 7)))  # float64, like robomimic
            demo.create_dataset("rewards", data=np.zeros(n))
            demo.create_dataset("dones", data=(np.arange(n) == n - 1).astype(np.int64))
            demo.create_dataset("states", data=rng.normal(size=(n, 32)))
            images = rng.integers(0, 256, (n + 1, 84, 84, 3), dtype=np.uint8)
            euler = rng.uniform(-1.0, 1.0, (n + 1, 3))
            quat = Rotation.from_euler("xyz", euler).as_quat()  # xyzw, robosuite's convention
            qpos = np.stack([rng.uniform(0, 0.04, n + 1), -rng.uniform(0, 0.04, n + 1)], axis=1)
            pos = rng.normal(size=(n + 1, 3))
            obs = {
                "agentview_image": images,
                "robot0_eye_in_hand_image": images[:, ::-1].copy(),
                "robot0_eef_pos": pos,
                "robot0_eef_quat": quat,
                "robot0_gripper_qpos": qpos,
                "robot0_joint_pos": rng.normal(size=(n + 1, 7)),
                "object": rng.normal(size=(n + 1, 10)),
            }
            for key, value in obs.items():
                demo.create_dataset(f"obs/{key}", data=value[:-1])
                demo.create_dataset(f"next_obs/{key}", data=value[1:])
            truth.append((images, np.concatenate([pos, euler], 1), qpos[:, 0] - qpos[:, 1]))
        mask = file.create_group("mask")
        mask.create_dataset("train", data=np.array([b"demo_0"]))
        mask.create_dataset("valid", data=np.array([b"demo_1"]))
    return truth


@pytest.mark.parametrize("flip", [False, True])
def test_reads_robomimic_robosuite_image_dataset(tmp_path, flip):
    path = tmp_path / "image.hdf5"
    truth = _write_robomimic_image_file(path, [7, 5], np.random.default_rng(0))
    summary = validate_file(path)
    assert (summary.format, summary.episodes, summary.samples) == ("robomimic_robosuite", 2, 12)
    assert summary.successes is None and summary.image_shape == (84, 84, 3)
    clips = ClipDataset(path, clip_len=4, split="all", flip_images=flip)
    assert len(clips) == (8 - 3) + (6 - 3)
    for index in (0, 4, len(clips) - 1):  # the last clip ends on the next_obs frame
        item = clips[index]
        images, pose, opening = truth[item["episode"]]
        window = slice(item["start"], item["start"] + 4)
        expected = images[window, ::-1] if flip else images[window]
        np.testing.assert_array_equal(item["frames"].permute(0, 2, 3, 1).numpy(), expected)
        states = item["states"].numpy()
        np.testing.assert_allclose(states[:, :6], pose[window], atol=1e-5)
        np.testing.assert_allclose(states[:, 6], opening[window], atol=1e-6)
        assert item["actions"].dtype == torch.float32 and item["actions"].shape == (3, 7)
