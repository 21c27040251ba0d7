"""Small builders shared by several test packages."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_wm.data.hdf5 import Episode
from jepa_wm.encoders import FrozenEncoder, VisionTransformer, vit_config
from jepa_wm.encoders.checkpoint import save_encoder_checkpoint
from jepa_wm.predictor import ACPredictor, PredictorConfig
from jepa_wm.state_integration import StateIntegration
from jepa_wm.training import save_checkpoint
from jepa_wm.world_model import WorldModel, encoder_summary, predictor_meta
from planners import ActionSpace, make_planner
from planners.protocols import Planner

ROOT = Path(__file__).resolve().parents[1]
SPACE = ActionSpace(dim=7, planned_dims=(0, 1, 2, 6), l1_radius=1.5, l1_dims=(0, 1, 2))  # xyz + gripper


def tiny_planner(seed: int = 0) -> Planner:
    """A CEM small enough for test episodes, over :data:`SPACE`."""
    return make_planner("cem", SPACE, num_samples=16, iterations=2, topk=4, seed=seed)


def random_episode(n: int, seed: int, size: int = 16) -> Episode:
    """An ``n``-step episode of random ``size`` x ``size`` images, states and actions."""
    rng = np.random.default_rng(seed)
    return Episode(
        images=rng.integers(0, 256, size=(n + 1, size, size, 3), dtype=np.uint8),
        robot_states=rng.normal(size=(n + 1, 7)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, 7)).astype(np.float32),
        rewards=np.zeros(n),
        dones=np.arange(n) == n - 1,
        success=np.zeros(n, dtype=bool),
        sim_states=np.zeros((n, 3)),
        seed=seed,
        noise=0.0,
        instruction="test",
    )


def run_script(name: str, *overrides: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``experiments/<name>`` in this process, as ``python experiments/<name> overrides...``."""
    path = ROOT / "experiments" / name
    monkeypatch.setattr(sys, "argv", [str(path), *overrides])
    runpy.run_path(str(path), run_name="__main__")


def tiny_world_model(img_size: int = 16, seed: int = 0) -> WorldModel:
    """A random micro world model: 24-wide encoder (patch 8) and a 2-deep, 24-wide predictor."""
    torch.manual_seed(seed)
    config = vit_config("tiny", img_size=img_size, embed_dim=24, depth=1, num_heads=2)
    encoder = FrozenEncoder(VisionTransformer(config))
    predictor = ACPredictor(PredictorConfig(embed_dim=encoder.embed_dim, grid_hw=encoder.grid_hw,
                                            predictor_embed_dim=24, depth=2, num_heads=2))
    predictor.set_normalization(torch.zeros(7), torch.full((7,), 0.1), torch.zeros(7), torch.full((7,), 0.5))
    return WorldModel(encoder, predictor, StateIntegration())


def save_predictor_checkpoint(run_dir: Path, world_model: WorldModel, step: int = 7, data: dict | None = None,
                              **meta_overrides) -> Path:
    """Save ``world_model``'s predictor as ``experiments/train_predictor.py`` does, in ``run_dir``."""
    meta = predictor_meta(world_model.predictor, world_model.integration, encoder_summary(world_model.encoder))
    meta.update(meta_overrides)
    return save_checkpoint(run_dir, step=step, models={"ac_predictor": world_model.predictor},
                           extra={"ac_predictor": meta}, data=data)


def write_tiny_world_model(directory: Path, img_size: int = 16, seed: int = 0) -> tuple[Path, Path]:
    """A micro encoder checkpoint and predictor run directory in ``directory``: (encoder.pt, run dir)."""
    world_model = tiny_world_model(img_size, seed)
    encoder_path = save_encoder_checkpoint(directory / "encoder.pt", world_model.encoder.vit, step=0)
    run_dir = directory / "predictor"
    save_predictor_checkpoint(run_dir, world_model)
    return encoder_path, run_dir
