"""Checkpoints: round trip of every state, atomic writes, resume discovery, clear errors."""

from __future__ import annotations

import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from jepa_wm.training import (
    CheckpointError,
    WarmupConstantDecay,
    adamw,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    optimizer_step,
    prune_checkpoints,
    restore,
    save_checkpoint,
    warmup_constant_decay,
)

SCHEDULE = WarmupConstantDecay(peak_lr=1e-2, total_steps=20, warmup_steps=4, decay_steps=4, start_lr=1e-3)


def _setup(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    optimizer = adamw([model], lr=1e-2, weight_decay=0.1)
    return model, optimizer, warmup_constant_decay(optimizer, SCHEDULE)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, steps: int) -> list[float]:
    """Steps whose data come from the global torch RNG (so RNG restoration matters)."""
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 3)
        loss = (model(x).squeeze(1) - x.sum(1)).pow(2).mean()
        losses.append(float(loss.detach()))
        optimizer_step(loss, optimizer, scheduler=scheduler, clip_grad=5.0)
    return losses


def test_round_trip_resumes_with_identical_steps(tmp_path: Path) -> None:
    model, optimizer, scheduler = _setup(0)
    _train(model, optimizer, scheduler, 5)
    path = save_checkpoint(tmp_path, step=5, models={"net": model}, optimizer=optimizer, scheduler=scheduler,
                           config={"lr": 1e-2, "sizes": [3, 8, 1]}, data={"episodes": 7})
    assert path == tmp_path / "step_00000005.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000005.pt"]  # no temporary file left
    expected = _train(model, optimizer, scheduler, 5)
    np_after, py_after = np.random.rand(), random.random()

    other, other_opt, other_sched = _setup(1)  # different weights and RNG state
    checkpoint = load_checkpoint(path)
    assert restore(checkpoint, models={"net": other}, optimizer=other_opt, scheduler=other_sched) == 5
    assert checkpoint["config"] == {"lr": 1e-2, "sizes": [3, 8, 1]} and checkpoint["data"] == {"episodes": 7}
    assert other_sched.last_epoch == 5
    assert _train(other, other_opt, other_sched, 5) == expected  # same data, same updates
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    restore(checkpoint, models={}, restore_rng=True)
    _ = [torch.randn(16, 3) for _ in range(5)]
    assert np.random.rand() == np_after and random.random() == py_after


def test_latest_and_pruning(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    assert latest_checkpoint(tmp_path) is None and latest_checkpoint(tmp_path / "missing") is None
    for step in (3, 12, 100, 7):
        save_checkpoint(tmp_path, step=step, models={"m": model})
    (tmp_path / "step_00000200.pt.tmp-123").write_bytes(b"partial")  # an interrupted save
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000100.pt"
    deleted = prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in deleted] == ["step_00000003.pt", "step_00000007.pt"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000012.pt", "step_00000100.pt"]


def test_wrong_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a jepa_wm.training_checkpoint"):
        load_checkpoint(tmp_path / "other.pt")

    path = save_checkpoint(tmp_path, step=1, models={"m": nn.Linear(2, 2)})
    checkpoint = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no model 'encoder'"):
        restore(checkpoint, models={"encoder": nn.Linear(2, 2)})
    with pytest.raises(CheckpointError, match="model 'm' does not fit"):
        restore(checkpoint, models={"m": nn.Linear(3, 2)})
    with pytest.raises(CheckpointError, match="no optimizer state"):
        restore(checkpoint, models={}, optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1))


def test_a_file_damaged_after_it_was_written_is_refused_not_read_as_garbage(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, step=1, models={"m": nn.Linear(4, 4)})
    with zipfile.ZipFile(path) as archive:
        member = next(i for i in archive.infolist() if "/data/" in i.filename)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[member.header_offset + 26: member.header_offset + 30])
    raw[member.header_offset + 30 + name_len + extra_len] ^= 0x40  # one bit of one weight: still a finite float
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=rf"^{path} is damaged: the checksum of its member .*/data/\d+ does "
                                              r"not match$"):
        load_checkpoint(path)
