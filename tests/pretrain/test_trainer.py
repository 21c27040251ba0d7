"""The pretraining loop: learning on a fixed batch, exact resumption, DDP, the encoder artefact."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from jepa_wm.data import ClipDataset
from jepa_wm.encoders import FrozenEncoder, VisionTransformer, ViTConfig
from jepa_wm.encoders.checkpoint import load_encoder_checkpoint, read_encoder_checkpoint, save_encoder_checkpoint
from jepa_wm.pretrain import (
    JEPA,
    BlockMaskSpec,
    MaskedPredictor,
    MultiBlockMasker,
    PredictorConfig,
    PretrainConfig,
    clips_to_video,
    pretrain,
)
from jepa_wm.training import (
    DistributedContext,
    NonFiniteLossError,
    adamw,
    cleanup_distributed,
    init_distributed,
    list_checkpoints,
    load_checkpoint,
    optimizer_step,
    read_metrics,
)

REPO = Path(__file__).resolve().parents[2]
TRAIN = PretrainConfig(total_steps=4, batch_size=4, warmup_steps=1, decay_steps=1, checkpoint_every=2,
                       log_every=1, keep_last=5)
CROPPED = replace(TRAIN, crop_scale=(0.4, 1.0))  # random resized crops drawn per step


def _pretrain(run_dir: Path, video_file: Path, vit: ViTConfig, predictor: PredictorConfig,
              masks: tuple[BlockMaskSpec, ...], context: DistributedContext | None = None,
              config: PretrainConfig = TRAIN):
    dataset = ClipDataset(video_file, clip_len=4, frame_skip=1, split="all")
    return pretrain(run_dir, dataset, vit_config=vit, predictor_config=predictor, mask_specs=masks,
                    config=config, context=context or DistributedContext(), data_summary={"clips": len(dataset)},
                    progress=False)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(
    video_file: Path, micro_vit: ViTConfig, micro_predictor: PredictorConfig, micro_masks: tuple
) -> None:
    torch.manual_seed(0)
    model = JEPA(VisionTransformer(micro_vit), MaskedPredictor(micro_predictor))
    optimizer = adamw([model.encoder, model.predictor], lr=1e-3, weight_decay=0.0)
    dataset = ClipDataset(video_file, clip_len=4, split="all")
    video = clips_to_video(torch.stack([dataset[i]["frames"] for i in range(0, 40, 5)]), (16, 16))
    masks = MultiBlockMasker((2, 4, 4), micro_masks)(8, torch.Generator().manual_seed(0))
    losses = []
    for _ in range(25):
        loss, _ = model(video, masks)
        losses.append(float(loss.detach()))
        optimizer_step(loss, optimizer, clip_grad=1.0)
        model.update_target(0.9)
    assert losses[-1] < 0.7 * losses[0]


def test_resumed_run_repeats_the_uninterrupted_run_exactly(
    tmp_path: Path, video_file: Path, micro_vit: ViTConfig, micro_predictor: PredictorConfig, micro_masks: tuple
) -> None:
    """With random crops too: masks and crops of a step depend on nothing but (seed, step)."""
    run = tmp_path / "run"
    result = _pretrain(run, video_file, micro_vit, micro_predictor, micro_masks, config=CROPPED)
    assert result.step == 4
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_00000002.pt", "step_00000004.pt"]
    full = read_encoder_checkpoint(result.encoder_path)["state_dict"]
    full_metrics = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in full_metrics] == [1, 2, 3, 4]

    # "interrupt" after step 2: only the step-2 checkpoint survives, then the same call resumes
    (run / "checkpoints" / "step_00000004.pt").unlink()
    result.encoder_path.unlink()
    resumed = _pretrain(run, video_file, micro_vit, micro_predictor, micro_masks, config=CROPPED)
    assert resumed.step == 4
    again = read_encoder_checkpoint(resumed.encoder_path)["state_dict"]
    assert all(torch.equal(full[k], again[k]) for k in full)
    metrics = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2, 3, 4]  # rows after step 2 replaced, not repeated
    assert [r["loss"] for r in metrics] == pytest.approx([r["loss"] for r in full_metrics], rel=1e-6)

    checkpoint = load_checkpoint(run / "checkpoints" / "step_00000004.pt")
    assert checkpoint["step"] == 4 and checkpoint["scheduler"]["last_epoch"] == 4
    assert checkpoint["config"]["vit"]["embed_dim"] == 48 and checkpoint["data"] == {"clips": 60}

    # a finished run called again only re-exports the encoder
    assert _pretrain(run, video_file, micro_vit, micro_predictor, micro_masks, config=CROPPED).step == 4
    # another architecture in the same run directory is refused
    wider = PredictorConfig(embed_dim=48, predictor_dim=36, depth=1, num_heads=2, num_mask_tokens=2)
    with pytest.raises(ValueError, match="cannot resume"):
        _pretrain(run, video_file, micro_vit, wider, micro_masks)


def test_encoder_checkpoint_loads_into_frozen_encoder_and_rejects_other_files(
    tmp_path: Path, video_file: Path, micro_vit: ViTConfig, micro_predictor: PredictorConfig, micro_masks: tuple
) -> None:
    result = _pretrain(tmp_path / "run", video_file, micro_vit, micro_predictor, micro_masks)
    encoder = load_encoder_checkpoint(result.encoder_path)
    assert isinstance(encoder, FrozenEncoder) and encoder.vit.config == micro_vit
    frames = torch.randint(0, 256, (2, 3, 3, 16, 16), dtype=torch.uint8)
    assert encoder.encode(frames).shape == (2, 3, 16, 48)
    payload = read_encoder_checkpoint(result.encoder_path)
    assert payload["step"] == 4 and payload["data"] == {"clips": 60} and payload["config"]["batch_size"] == 4

    training_file = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    with pytest.raises(ValueError, match="training checkpoint"):
        load_encoder_checkpoint(training_file)
    torch.save({"target_encoder": {}}, tmp_path / "official.pt")
    with pytest.raises(ValueError, match="not a jepa_wm.encoder"):
        load_encoder_checkpoint(tmp_path / "official.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_encoder_checkpoint(tmp_path / "text.pt")


def test_a_loss_turning_inf_stops_pretraining_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, video_file: Path, micro_vit: ViTConfig, micro_predictor: PredictorConfig, micro_masks: tuple,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    forward, calls = JEPA.forward, []

    def diverging(self, *args, **kwargs):  # finite for two steps, then inf
        loss, target_std = forward(self, *args, **kwargs)
        calls.append(1)
        return (loss if len(calls) <= 2 else loss * float("inf")), target_std

    monkeypatch.setattr(JEPA, "forward", diverging)
    with pytest.raises(NonFiniteLossError, match=r"^training stopped at step 3: the training loss is not finite "
                                                 r"\(loss inf, gradient norm nan\); .*checkpoint .*step_00000002\.pt, "
                                                 r"which is kept"):
        _pretrain(tmp_path / "run", video_file, micro_vit, micro_predictor, micro_masks)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_00000002.pt"]
    assert not (tmp_path / "run" / "encoder.pt").exists()
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2]


def test_an_encoder_with_nan_or_inf_is_neither_written_nor_loaded(tmp_path: Path, micro_vit: ViTConfig) -> None:
    vit = VisionTransformer(micro_vit)
    with torch.no_grad():
        vit.patch_embed.proj.weight[0, 0, 0, 0, 0] = float("nan")
    name = "patch_embed.proj.weight"
    with pytest.raises(ValueError, match=rf"refusing to write .*encoder\.pt: 1 of \d+ tensors .*state_dict\.{name}"):
        save_encoder_checkpoint(tmp_path / "encoder.pt", vit, step=1)
    assert list(tmp_path.iterdir()) == []
    torch.save({"kind": "jepa_wm.encoder", "version": 1, "vit_config": asdict(micro_vit), "step": 1,
                "state_dict": vit.state_dict()}, tmp_path / "encoder.pt")  # written by other code
    with pytest.raises(ValueError, match=rf"encoder\.pt: 1 of \d+ tensors hold NaN or inf .*state_dict\.{name}"):
        load_encoder_checkpoint(tmp_path / "encoder.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_path_with_one_gloo_process_matches_the_plain_run(
    tmp_path: Path, video_file: Path, micro_vit: ViTConfig, micro_predictor: PredictorConfig,
    micro_masks: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _pretrain(tmp_path / "plain", video_file, micro_vit, micro_predictor, micro_masks)
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port())}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    context = init_distributed(device="cpu")
    try:
        assert context.backend == "gloo" and context.is_distributed and context.is_main
        ddp = _pretrain(tmp_path / "ddp", video_file, micro_vit, micro_predictor, micro_masks, context)
    finally:
        cleanup_distributed()
    a = read_encoder_checkpoint(plain.encoder_path)["state_dict"]
    b = read_encoder_checkpoint(ddp.encoder_path)["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path: Path, video_file: Path) -> None:
    """The experiment script under torchrun with 2 CPU processes: one set of files, world size 2."""
    shutil.copy(video_file, tmp_path / "squares.hdf5")
    overrides = [
        "data.paths=[squares.hdf5]", "data.frame_skip=1", "data.val_fraction=0.2",
        "encoder.img_size=16", "+encoder.patch_size=4", "+encoder.embed_dim=48", "+encoder.depth=2",
        "+encoder.num_heads=2", "predictor.predictor_dim=24", "predictor.depth=1", "predictor.num_heads=2",
        "masks.1.spatial_scale=[0.4,0.4]", "train.total_steps=3", "train.batch_size=2",
        "train.warmup_steps=1", "train.decay_steps=1", "train.checkpoint_every=2", "train.log_every=1",
        "run_dir=run", "device=cpu", "threads=1", "progress=false",
    ]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={_free_port()}", str(REPO / "experiments" / "pretrain_encoder.py"), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == [
        "step_00000002.pt", "step_00000003.pt"]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000003.pt")["config"]["world_size"] == 2
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]
    assert load_encoder_checkpoint(tmp_path / "run" / "encoder.pt").embed_dim == 48
