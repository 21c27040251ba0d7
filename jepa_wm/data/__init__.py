"""Episode storage (robomimic-layout HDF5) and training clips.

* :mod:`~jepa_wm.data.hdf5`: the layout, :class:`Episode`, writing / reading demos.
* :mod:`~jepa_wm.data.formats`: observation formats (ours, robosuite robomimic) and
  :func:`validate_file`.
* :mod:`~jepa_wm.data.store`: the crash-safe output of a collection (file + part files).
* :mod:`~jepa_wm.data.collect`: resumable parallel collection with the scripted experts.
* :mod:`~jepa_wm.data.clips`: :class:`ClipDataset`, lazy fixed-length training clips.
"""

from jepa_wm.data.collect import (
    HELD_OUT_SEED_START,
    CollectionConfig,
    CollectionDiskFull,
    CollectionInterrupted,
    EpisodeRunner,
    collect,
)
from jepa_wm.data.formats import (
    FORMATS,
    JEPA_WM,
    ROBOSUITE,
    DatasetFormatError,
    DatasetSummary,
    ObsFormat,
    detect_format,
    validate_file,
)
from jepa_wm.data.hdf5 import Episode, demo_name, read_demo, write_demo

_CLIP_NAMES = ("ClipDataset", "EpisodeRef", "split_episodes")


def __getattr__(name: str) -> object:
    # The clip dataset needs torch (seconds to import); collection workers never do.
    if name in _CLIP_NAMES:
        from jepa_wm.data import clips

        return getattr(clips, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMATS",
    "HELD_OUT_SEED_START",
    "JEPA_WM",
    "ROBOSUITE",
    "ClipDataset",
    "CollectionConfig",
    "CollectionDiskFull",
    "CollectionInterrupted",
    "DatasetFormatError",
    "DatasetSummary",
    "Episode",
    "EpisodeRef",
    "EpisodeRunner",
    "ObsFormat",
    "collect",
    "demo_name",
    "detect_format",
    "read_demo",
    "split_episodes",
    "validate_file",
    "write_demo",
]
