"""The shipped default encoder: loads, records its provenance, encodes our observations."""

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

import envs
from jepa_wm.encoders import load_encoder_checkpoint, read_encoder_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "jepa_wm" / "checkpoints" / "encoder_tiny.pt"


def test_shipped_encoder_records_config_and_data() -> None:
    assert SHIPPED.stat().st_size < 20 * 2**20  # small enough to ship
    checkpoint = read_encoder_checkpoint(SHIPPED)
    assert checkpoint["vit_config"]["img_size"] == 64 and checkpoint["vit_config"]["embed_dim"] == 192
    assert checkpoint["step"] == checkpoint["config"]["total_steps"]
    tasks = {f["meta"]["task"] for f in checkpoint["data"]["files"]}
    assert tasks == {"reach", "push", "pick_place", "pick_place_multi"}


def test_shipped_encoder_was_trained_by_the_default_config() -> None:
    """`python experiments/pretrain_encoder.py` (the README recipe) remakes this encoder."""
    checkpoint = read_encoder_checkpoint(SHIPPED)
    default = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "pretrain_encoder.yaml"))
    recorded = checkpoint["config"]
    for key, value in default["train"].items():
        assert recorded[key] == (tuple(value) if isinstance(value, list) else value), key
    assert recorded["vit"]["embed_dim"] == 192 and recorded["vit"]["depth"] == 6
    assert recorded["predictor"]["predictor_dim"] == default["predictor"]["predictor_dim"]
    assert checkpoint["data"]["paths"] == default["data"]["paths"]


def test_shipped_encoder_encodes_env_frames() -> None:
    encoder = load_encoder_checkpoint(SHIPPED)
    env = envs.make("pick_place")
    obs, _ = env.reset(seed=1_000_000)
    env.close()
    frames = torch.from_numpy(np.stack([obs["image"]])).permute(0, 3, 1, 2)[None]  # (1, 1, 3, 64, 64)
    z = encoder.encode(frames)  # (1, 1, N, D)
    assert z.shape == (1, 1, encoder.num_patches, encoder.embed_dim) == (1, 1, 64, 192)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z.mean(-1), torch.zeros_like(z.mean(-1)), atol=1e-4, rtol=0)  # layer-normed
    torch.testing.assert_close(encoder.encode(frames), z)  # frozen and deterministic
