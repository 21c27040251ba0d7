"""Observation formats of robomimic-layout files, and validation of such files.

A format is a small declarative spec: which ``obs/`` key holds the camera image, which
keys the 7-D state is built from, and which per-demo datasets must exist. The format of a
file is detected from the observation keys of its first demo (:func:`detect_format`).

* :data:`JEPA_WM`: files written by :mod:`jepa_wm.data.collect` (``image``, ``state``).
* :data:`ROBOSUITE`: robomimic image datasets made with robosuite (e.g. Lift / Can
  ``image.hdf5``): ``agentview_image`` and the Panda proprioception; the state is
  ``[eef_pos (3), extrinsic xyz Euler angles of eef_quat (3, quaternion stored xyzw),
  gripper opening = qpos[0] - qpos[1]]``, matching the contract of :mod:`envs.interface`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from jepa_wm.data.hdf5 import DATA, META_ATTR, demo_index, is_demo_name

ACTION_DIM = 7  # as in envs.interface (not imported: reading data needs no simulator)
STATE_DIM = 7


class DatasetFormatError(ValueError):
    """A file that does not follow the expected layout; names the file and the key."""

    def __init__(self, path: str | Path, key: str, expected: str, found: str) -> None:
        super().__init__(f"{path}: '{key}': expected {expected}, found {found}")
        self.path = str(path)
        self.key = key


def _own_state(obs: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(obs["state"], dtype=np.float32)  # (N, 7)


def _robosuite_state(obs: Mapping[str, np.ndarray]) -> np.ndarray:
    pos = obs["robot0_eef_pos"]  # (N, 3)
    euler = Rotation.from_quat(obs["robot0_eef_quat"]).as_euler("xyz")  # (N, 3), quats are xyzw
    qpos = obs["robot0_gripper_qpos"]  # (N, 2)
    opening = qpos[:, :1] - qpos[:, 1:2]  # (N, 1)
    return np.concatenate([pos, euler, opening], axis=1).astype(np.float32)  # (N, 7)


@dataclass(frozen=True)
class ObsFormat:
    """How to read images and the 7-D state from the ``obs/`` group of one kind of file.

    Attributes:
        name: short name, recorded in summaries.
        image_key: ``obs/`` dataset with uint8 ``(N, H, W, 3)`` images.
        state_keys: ``(key, width)`` of the ``obs/`` datasets the state is built from.
        build_state: maps ``{key: (N, width) array}`` to the float32 ``(N, 7)`` state.
        demo_keys: datasets every demo must have, with their kind: ``"vector"`` ``(N,)``
            or ``"matrix"`` ``(N, *)``; ``actions`` is always checked as ``(N, 7)`` float.
    """

    name: str
    image_key: str
    state_keys: tuple[tuple[str, int], ...]
    build_state: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    demo_keys: dict[str, str] = field(default_factory=dict)

    @property
    def obs_keys(self) -> tuple[str, ...]:
        """Every ``obs/`` key this format reads."""
        return (self.image_key, *(key for key, _ in self.state_keys))


JEPA_WM = ObsFormat(
    name="jepa_wm",
    image_key="image",
    state_keys=(("state", STATE_DIM),),
    build_state=_own_state,
    demo_keys={
        "rewards": "vector",
        "dones": "vector",
        "success": "vector",
        "states": "matrix",
    },
)
ROBOSUITE = ObsFormat(
    name="robomimic_robosuite",
    image_key="agentview_image",
    state_keys=(("robot0_eef_pos", 3), ("robot0_eef_quat", 4), ("robot0_gripper_qpos", 2)),
    build_state=_robosuite_state,
    demo_keys={"rewards": "vector", "dones": "vector", "states": "matrix"},
)
FORMATS: tuple[ObsFormat, ...] = (JEPA_WM, ROBOSUITE)
FORMATS_BY_NAME: dict[str, ObsFormat] = {fmt.name: fmt for fmt in FORMATS}


def detect_format(obs: h5py.Group, path: str | Path = "<file>") -> ObsFormat:
    """The first format of :data:`FORMATS` whose keys are all in the ``obs/`` group ``obs``."""
    for fmt in FORMATS:
        if all(key in obs for key in fmt.obs_keys):
            return fmt
    wanted = " or ".join(str(list(fmt.obs_keys)) for fmt in FORMATS)
    raise DatasetFormatError(path, obs.name.lstrip("/"), f"keys {wanted}", f"keys {sorted(obs)}")


@dataclass(frozen=True)
class DatasetSummary:
    """What :func:`validate_file` found; ``to_dict()`` is what checkpoints record.

    Attributes:
        path: the file.
        format: name of its :class:`ObsFormat`.
        episodes: number of demos.
        samples: number of steps in all demos (robomimic's ``total``).
        successes: demos whose final ``success`` attribute is true (None when not recorded).
        image_shape: ``(H, W, 3)``.
        env_args: robomimic's ``env_args``.
        meta: our ``jepa_wm`` attribute (empty for other files).
        demo_lengths: ``{demo name: num_samples}`` in episode order (not in ``to_dict()``).
    """

    path: str
    format: str
    episodes: int
    samples: int
    successes: int | None
    image_shape: tuple[int, int, int]
    env_args: dict[str, Any]
    meta: dict[str, Any]
    demo_lengths: dict[str, int] = field(repr=False)

    @property
    def success_rate(self) -> float | None:
        """Fraction of successful demos, or None when success is not recorded."""
        return None if self.successes is None else self.successes / max(self.episodes, 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the per-demo lengths)."""
        keys = ("path", "format", "episodes", "samples", "successes", "env_args", "meta")
        summary = {key: getattr(self, key) for key in keys}
        return {**summary, "image_shape": list(self.image_shape), "success_rate": self.success_rate}


def _check_dataset(
    group: h5py.Group, key: str, shape: tuple[int | None, ...], kinds: str, path: str | Path
) -> h5py.Dataset:
    """``group[key]`` if it is a dataset of ``shape`` (None: any size) with a dtype kind in ``kinds``,
    and, when it holds floats, only finite ones (the floats are read: states, actions, rewards)."""
    dataset = group.get(key)
    found = "nothing" if dataset is None else "a group"
    full_key = f"{group.name}/{key}".lstrip("/")
    if isinstance(dataset, h5py.Dataset):
        found_shape, dtype = dataset.shape, dataset.dtype
        if len(found_shape) == len(shape) and dtype.kind in kinds and all(
            s is None or s == d for s, d in zip(shape, found_shape, strict=True)
        ):
            if dtype.kind == "f":
                _check_finite(dataset[()], full_key, path)
            return dataset
        found = f"{dtype} {found_shape}"
    want_shape = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    raise DatasetFormatError(path, full_key, f"a dataset {want_shape} of dtype kind {kinds!r}", found)


def _check_finite(values: np.ndarray, key: str, path: str | Path) -> None:
    """``DatasetFormatError`` naming the first non-finite entry of ``values`` (``path``'s ``key``)."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DatasetFormatError(
            path, key, "finite values", f"{values[first]} at index {first} ({int(bad.sum())} non-finite)"
        )


def obs_group(demo: h5py.Group, name: str, path: str | Path) -> h5py.Group:
    """``demo[name]`` (``"obs"`` or ``"next_obs"``), which must be a group."""
    group = demo.get(name)
    if not isinstance(group, h5py.Group):
        raise DatasetFormatError(path, f"{demo.name}/{name}".lstrip("/"), "a group", "nothing")
    return group


def validate_demo(demo: h5py.Group, fmt: ObsFormat, path: str | Path) -> tuple[int, tuple[int, ...]]:
    """Check one demo group against ``fmt``; returns ``(num_samples, image shape (H, W, 3))``."""
    key = f"{demo.name.lstrip('/')}.attrs['num_samples']"
    if "num_samples" not in demo.attrs:
        raise DatasetFormatError(path, key, "an integer attribute", "nothing")
    n = int(demo.attrs["num_samples"])
    if n < 1:
        raise DatasetFormatError(path, key, "at least 1 sample", str(n))
    _check_dataset(demo, "actions", (n, ACTION_DIM), "f", path)
    for name, kind in fmt.demo_keys.items():
        shape = (n,) if kind == "vector" else (n, None)
        _check_dataset(demo, name, shape, "fiub", path)
    image_shape: tuple[int, ...] = ()
    for group_name in ("obs", "next_obs"):
        group = obs_group(demo, group_name, path)
        image = _check_dataset(group, fmt.image_key, (n, None, None, 3), "u", path)
        if image.dtype != np.uint8:
            raise DatasetFormatError(path, image.name.lstrip("/"), "uint8 images", str(image.dtype))
        image_shape = image.shape[1:]
        for state_key, width in fmt.state_keys:
            _check_dataset(group, state_key, (n, width), "f", path)
    return n, image_shape


def validate_open(file: h5py.File, path: str | Path) -> DatasetSummary:
    """:func:`validate_file` on an open file (reads shapes, attributes and the float arrays, never
    the images)."""
    data = file.get(DATA)
    if not isinstance(data, h5py.Group):
        raise DatasetFormatError(path, DATA, "a group", "nothing")
    for attr in ("total", "env_args"):
        if attr not in data.attrs:
            raise DatasetFormatError(path, f"data.attrs['{attr}']", "an attribute", "nothing")
    try:
        env_args = json.loads(data.attrs["env_args"])
        meta = json.loads(data.attrs[META_ATTR]) if META_ATTR in data.attrs else {}
    except (TypeError, ValueError) as err:
        raise DatasetFormatError(path, "data.attrs", "JSON env_args / jepa_wm", repr(err)) from None
    names = list(data)
    for name in names:
        if not is_demo_name(name) or not isinstance(data[name], h5py.Group):
            raise DatasetFormatError(path, f"data/{name}", "only groups named demo_<i>", name)
    names.sort(key=demo_index)
    if not names:
        raise DatasetFormatError(path, DATA, "at least one demo", "none")
    fmt = detect_format(obs_group(data[names[0]], "obs", path), path)
    lengths, successes, image_shape = {}, [], None
    for name in names:
        n, shape = validate_demo(data[name], fmt, path)
        if image_shape is not None and shape != image_shape:
            raise DatasetFormatError(
                path, f"data/{name}/obs/{fmt.image_key}", f"images {image_shape}", str(shape)
            )
        lengths[name], image_shape = n, shape
        successes.append(data[name].attrs.get("success"))
    total = int(data.attrs["total"])
    if total != sum(lengths.values()):
        raise DatasetFormatError(
            path, "data.attrs['total']", f"{sum(lengths.values())} (sum of num_samples)", str(total)
        )
    return DatasetSummary(
        path=str(path),
        format=fmt.name,
        episodes=len(names),
        samples=total,
        successes=None if None in successes else int(sum(bool(s) for s in successes)),
        image_shape=tuple(image_shape),
        env_args=env_args,
        meta=meta,
        demo_lengths=lengths,
    )


def validate_file(path: str | Path) -> DatasetSummary:
    """Check a robomimic-layout file and summarise it.

    Checks every demo: ``num_samples``, ``actions`` ``(N, 7)`` float, the format's per-demo
    datasets with N rows, ``obs/`` and ``next_obs/`` with uint8 ``(N, H, W, 3)`` images of one
    size and the state keys, and ``data.attrs['total']``; every float dataset among these
    (actions, states, rewards) must hold only finite values. Every reader of training data
    (:class:`~jepa_wm.data.clips.ClipDataset`, the latent cache, the collection store) starts here.

    Raises:
        DatasetFormatError: (a ``ValueError``) naming the file, the key, what was expected
            and what was found; also when the file cannot be opened as HDF5.
    """
    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise DatasetFormatError(path, "/", "a readable HDF5 file", repr(err)) from None
    with file:
        return validate_open(file, path)
