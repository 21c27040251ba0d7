"""The collection's output: what a run refuses, what it salvages, and one run per output.

A run never renames, moves or overwrites anything it did not create: a directory, a file that is
not HDF5 or an HDF5 file that is not a collection is refused before anything is touched; only a
damaged collection is set aside, under a name no earlier salvage holds.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from jepa_wm.data import validate_file
from jepa_wm.data.store import EpisodeStore, lock_path, write_part
from jepa_wm.locks import LockedError


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under ``folder`` with its size, mtime and (for files) contents."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
        for p in sorted(folder.rglob("*"))
    }


def _collection(out: Path, header: dict, make_episode, count: int = 3) -> None:
    """A finished collection of ``count`` synthetic episodes at ``out`` (parts kept)."""
    with EpisodeStore(out, header) as store:
        for index in range(count):
            write_part(out, index, make_episode(5 + index, seed=index), header)
            store.add(index)


def _refused_untouched(out: Path, header: dict, match: str) -> None:
    """Opening a store on ``out`` raises a one-line ValueError and changes nothing in its folder."""
    before = _snapshot(out.parent)
    with pytest.raises(ValueError, match=match) as error:
        EpisodeStore(out, header).open()
    assert "\n" not in str(error.value)
    assert _snapshot(out.parent) == before


def test_a_directory_is_refused_untouched(tmp_path, store_header):
    out = tmp_path / "data"
    out.mkdir()
    (out / "a.txt").write_text("keep")
    _refused_untouched(out, store_header, r"expected the path of an \.hdf5 collection file, got the directory .*data")


@pytest.mark.parametrize("content", [b"keep me\n", b"", b"\x89HDF\r\n\x1a\n but not really"])
def test_a_file_that_is_not_hdf5_is_refused_untouched(tmp_path, store_header, content):
    out = tmp_path / "notes.hdf5"
    out.write_bytes(content)
    _refused_untouched(out, store_header, r"got .*notes\.hdf5, which .*not .*a jepa_wm collection")


def test_an_hdf5_file_that_is_not_a_collection_is_refused_untouched(tmp_path, store_header):
    out = tmp_path / "other.h5"
    with h5py.File(out, "w") as file:
        file["weights"] = [1.0, 2.0]
    _refused_untouched(out, store_header, r"other\.h5 is not a jepa_wm collection")
    # damaged too: still not recognisably ours, so still refused (not set aside)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    _refused_untouched(out, store_header, r"other\.h5, which cannot be opened \(.*\) and is not recognisably a jepa_wm")


def test_a_truncated_collection_is_set_aside_under_a_fresh_name(tmp_path, store_header, make_episode):
    out = tmp_path / "reach.hdf5"
    _collection(out, store_header, make_episode)
    earlier = {name: f"earlier salvage {name}".encode() for name in ("reach.hdf5.corrupt", "reach.hdf5.corrupt.1")}
    for name, content in earlier.items():
        (tmp_path / name).write_bytes(content)
    truncated = out.read_bytes()[: out.stat().st_size // 2]
    out.write_bytes(truncated)
    with EpisodeStore(out, store_header) as store:  # rebuilt from the parts
        assert store.indices() == {0, 1, 2}
    assert validate_file(out).episodes == 3
    for name, content in earlier.items():  # earlier salvages are never overwritten
        assert (tmp_path / name).read_bytes() == content
    assert (tmp_path / "reach.hdf5.corrupt.2").read_bytes() == truncated


def test_a_second_store_on_the_same_output_changes_nothing(tmp_path, store_header, make_episode):
    out = tmp_path / "reach.hdf5"
    with EpisodeStore(out, store_header) as first:
        write_part(out, 0, make_episode(5, seed=0), store_header)
        first.add(0)
        in_progress = first.parts_dir / "ep_000001.hdf5.tmp-12345"  # a worker of the first run writing
        in_progress.write_bytes(b"half an episode")
        before = _snapshot(tmp_path)
        with pytest.raises(LockedError, match=r"reach\.hdf5 is in use by another running process"):
            EpisodeStore(out, store_header).open()
        assert _snapshot(tmp_path) == before
        write_part(out, 1, make_episode(6, seed=1), store_header)
        first.add(1)  # the first run goes on
    assert not lock_path(out).exists()  # the first store's lock went with it
    with EpisodeStore(out, store_header) as again:
        assert again.indices() == {0, 1}
        summary = again.finish()
    assert summary.episodes == 2 and not (tmp_path / "reach.hdf5.parts").exists()
