"""Latent cache of a whole dataset: contents, resuming, refusing stale caches, rebuilding unreadable ones."""

import logging
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from jepa_wm.data.hdf5 import DATA, demo_name, init_data_group, write_demo
from jepa_wm.encoders import FrozenEncoder, VisionTransformer, vit_config
from jepa_wm.encoders.latent_cache import (
    StaleCacheError,
    build_latent_cache,
    check_latent_cache,
    latent_cache_path,
)
from jepa_wm.locks import LockedError
from tests.helpers import random_episode

SIZE = 16  # 16x16 images, patch 8 -> 4 tokens per frame


def add_demos(path, lengths, start=0):
    with h5py.File(path, "a") as file:
        data = (
            file[DATA]
            if DATA in file
            else init_data_group(file, {"env_name": "test"}, {"task": "test"})
        )
        for i, n in enumerate(lengths, start=start):
            write_demo(data, demo_name(i), random_episode(n, seed=i, size=SIZE))


def make_encoder(seed: int) -> FrozenEncoder:
    torch.manual_seed(seed)
    return FrozenEncoder(VisionTransformer(vit_config("tiny", img_size=SIZE)), chunk_size=4)


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "demos.hdf5"
    add_demos(path, [4, 6, 5])
    return path


def test_cache_holds_every_frame_latent(dataset):
    encoder = make_encoder(0)
    cache = build_latent_cache(dataset, encoder)
    assert cache == latent_cache_path(dataset, encoder.fingerprint())
    assert cache.name == f"demos.latents.{encoder.fingerprint()}.hdf5"
    frames = torch.from_numpy(random_episode(6, seed=1, size=SIZE).images).permute(0, 3, 1, 2)  # (7, 3, H, W)
    with h5py.File(cache, "r") as file:
        latents = file["data/demo_1/latents"][:]
        assert sorted(file[DATA]) == ["demo_0", "demo_1", "demo_2"]
    assert latents.shape == (7, 4, 192) and latents.dtype == np.float16
    expected = encoder.encode(frames.unsqueeze(0))[0].numpy()
    np.testing.assert_allclose(latents.astype(np.float32), expected, atol=1e-2)
    check_latent_cache(cache, dataset, encoder)


def test_build_resumes_with_new_demos_only(dataset):
    encoder = make_encoder(0)
    cache = build_latent_cache(dataset, encoder)
    with h5py.File(cache, "a") as file:
        file["data/demo_0/latents"][...] = 0  # marks it: a rebuild must not re-encode it
        file[DATA].create_group("_incoming_demo_9")  # left by an interrupted build
    add_demos(dataset, [3], start=3)
    with pytest.raises(StaleCacheError, match="lacks 1 demos"):
        check_latent_cache(cache, dataset, encoder)
    build_latent_cache(dataset, encoder)
    with h5py.File(cache, "r") as file:
        assert sorted(file[DATA]) == ["demo_0", "demo_1", "demo_2", "demo_3"]
        assert not file["data/demo_0/latents"][:].any()
        assert file["data/demo_3/latents"].shape == (4, 4, 192)
    check_latent_cache(cache, dataset, encoder)


def test_stale_caches_are_refused(dataset):
    encoder = make_encoder(0)
    cache = build_latent_cache(dataset, encoder)
    with pytest.raises(StaleCacheError, match="encoder_fingerprint"):
        build_latent_cache(dataset, make_encoder(1), cache_path=cache)
    with pytest.raises(StaleCacheError, match="flip_images"):
        check_latent_cache(cache, dataset, encoder, flip_images=True)
    with h5py.File(dataset, "a") as file:
        file["data/demo_2/next_obs/image"][-1] = 0  # the last frame changed
    with pytest.raises(StaleCacheError, match="demo_2: the dataset's images changed"):
        build_latent_cache(dataset, encoder)
    with pytest.raises(StaleCacheError, match="no latent cache"):
        check_latent_cache(cache.with_name("absent.hdf5"), dataset, encoder)


def test_an_unreadable_cache_is_named_and_built_again(dataset, caplog):
    # a crash or a full disk can leave the cache truncated: HDF5 then cannot open it at all
    encoder = make_encoder(0)
    cache = build_latent_cache(dataset, encoder)
    with h5py.File(cache, "r") as file:
        expected = file["data/demo_1/latents"][:]
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    unreadable = rf"the latent cache {re.escape(str(cache))} cannot be read \(.*truncated"
    with pytest.raises(StaleCacheError, match=unreadable):
        check_latent_cache(cache, dataset, encoder)
    with caplog.at_level(logging.WARNING, logger="jepa_wm.encoders.latent_cache"):
        assert build_latent_cache(dataset, encoder) == cache
    assert f"{cache} cannot be read" in caplog.text and "building it again" in caplog.text
    check_latent_cache(cache, dataset, encoder)
    with h5py.File(cache, "r") as file:
        np.testing.assert_array_equal(file["data/demo_1/latents"][:], expected)
    assert sorted(p.name for p in dataset.parent.iterdir()) == sorted([dataset.name, cache.name])  # no temp file


def test_a_cache_being_built_elsewhere_is_refused_by_name(dataset):
    encoder = make_encoder(0)
    cache = build_latent_cache(dataset, encoder)
    hold_open = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print('open', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold_open, str(cache)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(LockedError, match=rf"the latent cache {re.escape(str(cache))} is in use"):
            build_latent_cache(dataset, encoder)
    finally:
        holder.kill()
        holder.wait()


def test_non_finite_latents_are_refused(dataset):
    encoder = make_encoder(0)
    with torch.no_grad():
        next(encoder.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match=r"demos\.hdf5: demo_0: expected finite latents from the encoder, got \d+ "):
        build_latent_cache(dataset, encoder)
