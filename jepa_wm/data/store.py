"""The crash-safe output of a collection: ``<out>`` plus its ``<out>.parts/`` directory.

* Workers write each finished episode to its own part file ``<out>.parts/ep_<i>.hdf5``
  (:func:`write_part`: a temporary name, then ``os.replace``, so a part is whole or absent).
* One process holds the :class:`EpisodeStore` open and alone writes ``<out>``: it holds the lock
  ``<out>.lock`` (:mod:`jepa_wm.locks`; removed on closing) from before it touches anything, copies
  parts in as ``data/demo_<i>``, committed by a final rename
  (:func:`~jepa_wm.data.hdf5.append_demo`), and flushes after each. A second store on the same
  ``out`` gets a :class:`~jepa_wm.locks.LockedError` and changes nothing.
* Opening refuses, untouched, an ``out`` that is a directory, a file that is not HDF5 or an HDF5
  file that is not a collection of these settings (:func:`check_output`).
* Opening cleans up after any crash: uncommitted groups are removed; a collection that cannot be
  opened or fails validation is rebuilt from its valid demos, the original set aside under the
  first free name of ``<out>.corrupt``, ``<out>.corrupt.1``, ... (never overwriting one); parts
  not yet in ``<out>`` are appended.
* :meth:`EpisodeStore.finish` deletes the parts, once ``<out>`` holds every episode.

A SIGKILL at any moment therefore loses nothing finished: what is not in ``<out>`` is in a part.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import h5py

from jepa_wm.data.formats import (
    DatasetFormatError,
    DatasetSummary,
    detect_format,
    obs_group,
    validate_demo,
    validate_file,
    validate_open,
)
from jepa_wm.data.hdf5 import (
    DATA,
    HDF5_SIGNATURE,
    META_ATTR,
    Episode,
    append_demo,
    check_hdf5_output,
    demo_index,
    demo_name,
    init_data_group,
    is_demo_name,
    output_refusal,
    read_header,
    remove_uncommitted,
    write_episode_file,
)
from jepa_wm.locks import hold

log = logging.getLogger(__name__)

# A collection too damaged to open is told from someone else's HDF5 file by our header's
# attribute names in its first bytes (the ``data`` group's object header is written first).
_HEADER_SCAN_BYTES = 1 << 16
_HEADER_MARKS = (b"env_args", META_ATTR.encode())


def parts_dir(out: Path) -> Path:
    """``<out>.parts``: one file per finished episode until the collection completes."""
    return out.with_name(out.name + ".parts")


def part_path(out: Path, index: int) -> Path:
    """The part file of episode ``index``."""
    return parts_dir(out) / f"ep_{index:06d}.hdf5"


def lock_path(out: Path) -> Path:
    """``<out>.lock``: held by the one process that writes ``out`` (see :mod:`jepa_wm.locks`)."""
    return out.with_name(out.name + ".lock")


def saved_episodes(out: Path, episodes: int) -> int:
    """How many of episodes ``0 .. episodes - 1`` ``out`` or its parts hold (best effort: a
    damaged ``out`` counts for nothing)."""
    found = {int(path.stem.removeprefix("ep_")) for path in parts_dir(out).glob("ep_*.hdf5")}
    with contextlib.suppress(OSError, KeyError, ValueError), h5py.File(out, "r") as file:
        found |= {demo_index(name) for name in file[DATA] if is_demo_name(name)}
    return sum(index < episodes for index in found)


def write_part(out: Path, index: int, episode: Episode, header: dict[str, Any]) -> Path:
    """Write episode ``index`` atomically to its part file; returns the path."""
    path = part_path(out, index)
    write_episode_file(path, index, episode, header["env_args"], header[META_ATTR])
    return path


def settings_differences(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between two headers (``{"env_args": ..., "jepa_wm": ...}``), as sentences;
    the package version may differ."""

    def flat(header: dict[str, Any]) -> dict[str, Any]:
        env_args = header["env_args"]
        meta = {key: value for key, value in header[META_ATTR].items() if key != "version"}
        return {"env_name": env_args.get("env_name"), **env_args.get("env_kwargs", {}), **meta}

    have, want = flat(found), flat(expected)
    return [
        f"{key}: file has {have.get(key)!r}, this run asks for {want.get(key)!r}"
        for key in sorted(set(have) | set(want))
        if have.get(key) != want.get(key)
    ]


def _check_settings(file: h5py.File, path: Path, expected: dict[str, Any]) -> None:
    """``ValueError`` unless ``file`` was collected with the settings of ``expected``."""
    found = read_header(file)
    if found is None:
        raise ValueError(f"{path} is not a jepa_wm collection (no env_args / {META_ATTR} attributes)")
    diffs = settings_differences(found, expected)
    if diffs:
        raise ValueError(
            f"{path} was collected with other settings ({'; '.join(diffs)}); "
            "use another out= or the settings it was made with"
        )




def _check_damaged(path: Path, err: OSError) -> None:
    """``ValueError`` unless ``path``, which HDF5 cannot open, still carries a collection's
    signature and header (our attribute names, written first, ~2 KB into the file)."""
    with open(path, "rb") as stream:
        head = stream.read(_HEADER_SCAN_BYTES)
    if not (head.startswith(HDF5_SIGNATURE) and all(mark in head for mark in _HEADER_MARKS)):
        reason = " ".join(str(err).split())  # HDF5's messages span lines
        raise output_refusal("collection", f"{path}, which cannot be opened ({reason}) and is not recognisably a "
                                           f"jepa_wm collection")


def check_output(out: Path, header: dict[str, Any]) -> None:
    """Refuse an ``out`` no collection may write, reading only (nothing is created or changed).

    Raises:
        ValueError: ``out`` is a directory or another non-file, a file that is not HDF5, an HDF5
            file that is not a collection made with ``header``'s settings, or one that cannot be
            opened and does not carry a collection's header. A collection that cannot be opened
            (damaged, or being written) passes: the store decides under its lock.
    """
    if not check_hdf5_output(out, "collection"):
        return
    try:
        file = h5py.File(out, "r")
    except OSError as err:
        _check_damaged(out, err)
        return
    with file:
        _check_settings(file, out, header)


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to the first free name of ``<path>.corrupt``, ``.corrupt.1``, ...; never
    overwrites (a hard link fails on an existing name)."""
    number = 0
    while True:
        target = path.with_name(f"{path.name}.corrupt" + (f".{number}" if number else ""))
        number += 1
        try:
            os.link(path, target)
        except FileExistsError:
            continue
        except OSError:  # no hard links on this filesystem: we hold the lock, check then rename
            if target.exists():
                continue
            os.rename(path, target)
            return target
        os.unlink(path)
        return target


class EpisodeStore:
    """``<out>`` opened for appending, with crash recovery (see the module docstring).

    Args:
        out: the output file.
        header: ``{"env_args": ..., "jepa_wm": ...}``, the ``data`` attributes of this
            collection; an existing ``out`` or part with other settings is refused.
    """

    def __init__(self, out: Path, header: dict[str, Any]) -> None:
        self.out, self.header = Path(out), header
        self.parts_dir = parts_dir(self.out)
        self._file: h5py.File | None = None
        self._lock = contextlib.ExitStack()

    def __enter__(self) -> EpisodeStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._file is not None

    @property
    def file(self) -> h5py.File:
        """The open ``out`` (only this process may write it)."""
        if self._file is None:
            raise RuntimeError("the EpisodeStore is not open")
        return self._file

    def open(self) -> EpisodeStore:
        """Take the lock, create, clean up or rebuild ``out``, then append the parts it lacks.

        Raises:
            ValueError: ``out`` is not a collection of these settings (see :func:`check_output`).
            LockedError: another live process holds this ``out``; nothing was changed.
        """
        check_output(self.out, self.header)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        lock = self._lock.enter_context(hold(lock_path(self.out), f"the collection {self.out}"))
        self._lock.callback(lock.unlink, missing_ok=True)  # removed while still held
        try:
            self._file = self._open_file()
            self.parts_dir.mkdir(exist_ok=True)
            for tmp in self.parts_dir.glob("*.tmp-*"):
                tmp.unlink()  # a part being written when a previous run died
            self.merge_parts()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close ``out`` (if open) and release the lock, also when closing fails (a full disk)."""
        try:
            self._close_file()
        finally:
            self._lock.close()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def indices(self) -> set[int]:
        """Episode indices committed to ``out``."""
        return {demo_index(name) for name in self.file[DATA]}

    def add(self, index: int) -> None:
        """Append the part of episode ``index`` to ``out`` (after checking it) and flush."""
        path = part_path(self.out, index)
        with h5py.File(path, "r") as part:
            validate_open(part, path)
            _check_settings(part, path, self.header)
            append_demo(self.file, part[DATA][demo_name(index)], demo_name(index))

    def merge_parts(self) -> None:
        """Append every part whose episode ``out`` lacks; delete unreadable parts."""
        done = self.indices()
        for path in sorted(self.parts_dir.glob("ep_*.hdf5")):
            index = int(path.stem.removeprefix("ep_"))
            if index in done:
                continue
            try:
                validate_file(path)
            except DatasetFormatError as err:
                log.warning("deleting unreadable part %s (%s); its episode is collected again", path, err)
                path.unlink()
                continue
            self.add(index)

    def finish(self) -> DatasetSummary:
        """Close, validate ``out`` and delete the parts, then release the lock; returns the
        file's summary."""
        try:
            self._close_file()
            summary = validate_file(self.out)
            shutil.rmtree(self.parts_dir)
        finally:
            self._lock.close()
        return summary

    def _open_file(self) -> h5py.File:
        path = self.out
        if not path.exists():
            self._create()
        try:
            file = h5py.File(path, "a")
        except BlockingIOError as err:  # HDF5's file lock
            raise ValueError(f"{path} is open in another process (is a collection running?)") from err
        except OSError as err:
            _check_damaged(path, err)
            log.warning("%s cannot be opened (%s): rebuilding it from the parts", path, err)
        else:
            try:
                _check_settings(file, path, self.header)
                stale = remove_uncommitted(file[DATA])
                if stale:
                    log.warning("%s: removed uncommitted demos %s", path, stale)
                if len(file[DATA]):
                    validate_open(file, path)
                return file
            except DatasetFormatError as err:
                log.warning("%s is invalid (%s): rebuilding it from its valid demos and the parts", path, err)
                file.close()
            except BaseException:
                file.close()
                raise
        corrupt = _set_aside(path)
        self._create(salvage_from=corrupt)
        log.warning("the damaged file was kept as %s", corrupt)
        return h5py.File(path, "a")

    def _create(self, salvage_from: Path | None = None) -> None:
        """Write a new ``out`` atomically, copying in every valid demo of ``salvage_from``."""
        tmp = self.out.with_name(self.out.name + ".tmp")
        with h5py.File(tmp, "w") as file, contextlib.ExitStack() as stack:
            init_data_group(file, self.header["env_args"], self.header[META_ATTR])
            old: Any = {}
            if salvage_from is not None:
                try:
                    old = stack.enter_context(h5py.File(salvage_from, "r"))
                except OSError as err:
                    log.warning("nothing can be read from %s (%s)", salvage_from, err)
            for name in old.get(DATA, {}):
                try:
                    demo = old[DATA][name]
                    fmt = detect_format(obs_group(demo, "obs", salvage_from), salvage_from)
                    validate_demo(demo, fmt, salvage_from)
                    append_demo(file, demo, demo_name(demo_index(name)))
                except (ValueError, KeyError, OSError) as err:
                    log.warning("dropping %s from %s: %s", name, salvage_from, err)
            remove_uncommitted(file[DATA])
        os.replace(tmp, self.out)
