"""The shipped configs build their objects; train -> resume -> evaluate end to end on a tiny dataset."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from jepa_wm.data.hdf5 import Episode, demo_name, init_data_group, write_demo
from jepa_wm.encoders import VisionTransformer, vit_config
from jepa_wm import predictor_training
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint, save_encoder_checkpoint
from jepa_wm.locks import hold
from jepa_wm.losses import Losses
from jepa_wm.predictor import PREDICTOR_SIZES, PredictorConfig
from jepa_wm.predictor_training import PredictorTrainConfig
from jepa_wm.state_integration import StateIntegration, integration_for_tasks
from jepa_wm.world_model import load_world_model, read_predictor_checkpoint
from tests.helpers import ROOT, run_script



@pytest.mark.parametrize("size", sorted(PREDICTOR_SIZES))
def test_shipped_configs_build(size):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train_predictor", overrides=[f"predictor={size}"])
        eval_cfg = compose(config_name="eval_predictor")
    predictor = instantiate(cfg.predictor, embed_dim=192, grid_hw=(8, 8))
    assert isinstance(predictor, PredictorConfig) and predictor.predictor_embed_dim == PREDICTOR_SIZES[size][
        "predictor_embed_dim"]
    rule = integration_for_tasks(["reach", "push"], **cfg.state_integration)  # the gantry arm's data
    assert rule == StateIntegration(rotation="add", gripper_open=0.09)
    train = PredictorTrainConfig(**cfg.train)
    assert train.rollout_steps == 2 and cfg.data.clip_len >= train.rollout_steps + 1
    assert list(eval_cfg.horizons) == [1, 2, 4, 8]


def write_dataset(path: Path, episodes: int = 6, steps: int = 12, size: int = 16) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as file:
        data = init_data_group(file, {"env_name": "test"}, {"task": "reach"})  # the gantry arm's state rule
        for i in range(episodes):
            write_demo(data, demo_name(i), Episode(
                images=rng.integers(0, 256, (steps + 1, size, size, 3), dtype=np.uint8),
                robot_states=rng.normal(size=(steps + 1, 7)).astype(np.float32),
                actions=rng.uniform(-1, 1, (steps, 7)).astype(np.float32), rewards=np.zeros(steps),
                dones=np.arange(steps) == steps - 1, success=np.zeros(steps, bool),
                sim_states=np.zeros((steps, 3)), seed=i, noise=0.0, instruction="test",
                objects=np.zeros((steps + 1, 3), np.float32) if i % 2 else  # odd: the object still
                rng.normal(scale=0.05, size=(steps + 1, 3)).astype(np.float32)))



@pytest.mark.slow
def test_train_resume_and_evaluate_end_to_end(tmp_path, monkeypatch):
    dataset, encoder_path, run_dir = tmp_path / "demos.hdf5", tmp_path / "encoder.pt", tmp_path / "run"
    write_dataset(dataset)
    torch.manual_seed(0)
    vit = VisionTransformer(vit_config("tiny", img_size=16, embed_dim=24, depth=1, num_heads=2))
    save_encoder_checkpoint(encoder_path, vit, step=0)
    common = [f"encoder={encoder_path}", f"data.paths=[{dataset}]", "data.val_fraction=0.34", "progress=false",
              "train.batch_size=4", "train.warmup_steps=1", "train.decay_steps=1", "train.checkpoint_every=2",
              "train.val_every=2", "train.val_batches=1", "train.log_every=1"]
    at = f"run_dir={run_dir}"
    run_script("train_predictor.py", *common, at, "train.total_steps=3", monkeypatch=monkeypatch)  # frames
    run_script("train_predictor.py", *common, at, "train.total_steps=4", "data.latents=build",  # resumes at 3
               monkeypatch=monkeypatch)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    checkpoint = torch.load(run_dir / "checkpoints" / "step_00000004.pt", weights_only=True)
    assert checkpoint["data"]["source"] == "latents" and checkpoint["data"]["val_episodes"] == 2
    encoder = load_encoder_checkpoint(encoder_path, pool=1)  # configs/train_predictor.yaml: encoder_pool: 1
    assert load_world_model(run_dir, encoder).config.predictor_embed_dim == 128
    exported = read_predictor_checkpoint(run_dir / "predictor.pt")  # no optimiser: the file to ship
    assert exported["optimizer"] is None and exported["step"] == 4 and exported["data"] == checkpoint["data"]
    full_size = (run_dir / "checkpoints" / "step_00000004.pt").stat().st_size
    assert (run_dir / "predictor.pt").stat().st_size < 0.6 * full_size
    shipped = load_world_model(run_dir / "predictor.pt", encoder).predictor.state_dict()
    torch.testing.assert_close(shipped, load_world_model(run_dir, encoder).predictor.state_dict())
    tuned_dir = tmp_path / "tuned"  # fine-tuning the exported predictor: its weights and normalisation
    run_script("train_predictor.py", *common, f"run_dir={tuned_dir}", f"init={run_dir / 'predictor.pt'}",
               "train.total_steps=2", "data.latents=cache", "oversample.min_move=0.005", "oversample.repeat=3",
               monkeypatch=monkeypatch)
    tuned = read_predictor_checkpoint(tuned_dir / "predictor.pt")
    assert tuned["data"]["init"]["step"] == 4 and tuned["data"]["init"]["paths"] == [str(dataset)]
    oversampled, clips = tuned["data"]["oversample"], tuned["data"]["train_clips"]
    assert 0 < oversampled["moving_clips"] < clips and oversampled["clips_per_epoch"] == clips + 2 * oversampled[
        "moving_clips"]
    assert checkpoint["data"]["oversample"] is None
    assert tuned["data"]["normalization"] == checkpoint["data"]["normalization"]
    with pytest.raises(SystemExit, match=r"error: no checkpoint at .*missing\.pt"):
        run_script("train_predictor.py", *common, f"run_dir={tmp_path / 'other'}", f"init={tmp_path / 'missing.pt'}",
                   monkeypatch=monkeypatch)
    out = tmp_path / "eval.json"
    run_script("eval_predictor.py", f"checkpoint={run_dir}", f"encoder={encoder_path}", "horizons=[1,2]",
               "batch_size=4", f"out={out}", monkeypatch=monkeypatch)
    report = json.loads(out.read_text())
    assert report["step"] == 4 and report["result"]["horizons"] == [1, 2]
    assert report["data"]["split"] == "val" and report["data"]["paths"] == [str(dataset)]
    assert all(np.isfinite(report["result"][key]).all() for key in ("model", "copy_last", "shuffled_actions"))
    with pytest.raises(SystemExit, match=r"held-out clips of 3 frames, fewer than batch_size=100000"):
        run_script("eval_predictor.py", f"checkpoint={run_dir}", f"encoder={encoder_path}", "horizons=[1,2]",
                   "batch_size=100000", f"out={out}", monkeypatch=monkeypatch)


@pytest.mark.slow
def test_train_script_exits_with_one_line_on_a_diverged_or_taken_run(tmp_path, monkeypatch):
    dataset, encoder_path, run_dir = tmp_path / "demos.hdf5", tmp_path / "encoder.pt", tmp_path / "run"
    write_dataset(dataset)
    torch.manual_seed(0)
    save_encoder_checkpoint(encoder_path, VisionTransformer(vit_config("tiny", img_size=16, embed_dim=24, depth=1,
                                                                       num_heads=2)), step=0)
    args = [f"encoder={encoder_path}", f"data.paths=[{dataset}]", "data.val_fraction=0.34", "progress=false",
            "train.batch_size=4", "train.warmup_steps=1", "train.decay_steps=1", "train.total_steps=2",
            f"run_dir={run_dir}"]
    losses = predictor_training.predictor_losses

    def inf_losses(*a, **k):  # a model that diverges at once, whatever the data
        out = losses(*a, **k)
        return Losses(out.total * float("inf"), out.teacher_forcing * float("inf"), out.rollout * float("inf"))

    monkeypatch.setattr(predictor_training, "predictor_losses", inf_losses)
    with pytest.raises(SystemExit, match=r"^error: training stopped at step 1: the training loss is not finite "
                                         r"\(loss inf, loss_tf inf, loss_rollout inf, gradient norm nan\); no "
                                         r"checkpoint had been saved in .*run/checkpoints yet") as caught:
        run_script("train_predictor.py", *args, monkeypatch=monkeypatch)
    assert "\n" not in str(caught.value) and not (run_dir / "predictor.pt").exists()
    monkeypatch.setattr(predictor_training, "predictor_losses", losses)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with hold(run_dir / ".lock", "another run"), pytest.raises(SystemExit, match=rf"^error: run dir {run_dir} is in use"):
        run_script("train_predictor.py", *args, monkeypatch=monkeypatch)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
