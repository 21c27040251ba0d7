"""Resuming past unreadable checkpoints, and one training process per run directory."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from jepa_wm.locks import LockedError, hold
from jepa_wm.training import (
    CheckpointError,
    WarmupConstantDecay,
    adamw,
    hold_run_dir,
    list_checkpoints,
    resume_latest,
    save_checkpoint,
    warmup_constant_decay,
)
from jepa_wm.training.checkpoint import CHECKPOINT_KIND, CHECKPOINT_VERSION

SCHEDULE = WarmupConstantDecay(peak_lr=1e-2, total_steps=20, warmup_steps=2, decay_steps=2)


def _resume(directory: Path):
    torch.manual_seed(1)
    model = nn.Linear(2, 2)
    optimizer = adamw([model], lr=1e-2, weight_decay=0.0)
    scheduler = warmup_constant_decay(optimizer, SCHEDULE)
    return resume_latest(directory, run_config={}, fixed=(), models={"m": model}, optimizer=optimizer,
                         scheduler=scheduler, schedule=SCHEDULE, device=torch.device("cpu"))


def _save(directory: Path, step: int) -> Path:
    torch.manual_seed(step)
    model = nn.Linear(2, 2)
    optimizer = adamw([model], lr=1e-2, weight_decay=0.0)
    return save_checkpoint(directory, step=step, models={"m": model}, optimizer=optimizer,
                           scheduler=warmup_constant_decay(optimizer, SCHEDULE))


def test_a_corrupt_newest_checkpoint_is_set_aside_and_the_one_before_resumed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for step in (2, 4, 6):
        _save(tmp_path, step)
    newest = tmp_path / "step_00000006.pt"
    truncated = newest.read_bytes()[:200]
    newest.write_bytes(truncated)  # a crash of the disk, not of the atomic save
    nan = torch.load(tmp_path / "step_00000004.pt", weights_only=True)
    nan["models"]["m"]["weight"][0, 0] = float("nan")
    torch.save(nan, tmp_path / "step_00000004.pt")  # a diverged run's checkpoint written by other code
    (tmp_path / "step_00000006.pt.corrupt").write_bytes(b"an earlier salvage")
    with caplog.at_level(logging.WARNING, logger="jepa_wm.training.resume"):
        path, checkpoint = _resume(tmp_path)
    assert path == tmp_path / "step_00000002.pt" and checkpoint["step"] == 2
    assert "skipping the unreadable checkpoint" in caplog.text and str(newest) in caplog.text
    assert "1 of 2 tensors hold NaN or inf" in caplog.text
    # kept under names that match no checkpoint (so saving and pruning never touch them) and overwrite nothing
    assert (tmp_path / "step_00000006.pt.corrupt").read_bytes() == b"an earlier salvage"
    assert (tmp_path / "step_00000006.pt.corrupt-1").read_bytes() == truncated
    assert (tmp_path / "step_00000004.pt.corrupt").is_file()
    assert list_checkpoints(tmp_path) == [tmp_path / "step_00000002.pt"]


def test_no_readable_checkpoint_is_a_one_line_error_naming_each(tmp_path: Path) -> None:
    _save(tmp_path, 2)
    (tmp_path / "step_00000002.pt").write_bytes(b"junk")
    (tmp_path / "step_00000005.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as caught:
        _resume(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"cannot resume from {tmp_path}: none of its checkpoints can be read (tried step_00000005.pt, " \
           "step_00000002.pt; newest: " in message and "start the run over" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000002.pt", "step_00000005.pt"]  # untouched
    assert _resume(tmp_path / "fresh") is None


def test_a_run_dir_is_held_by_one_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with hold_run_dir(run_dir) as held:
        with hold_run_dir(run_dir):  # the script, then the trainer it calls: held once
            assert held == run_dir and (run_dir / ".lock").read_text() == f"{os.getpid()}\n"
        other = subprocess.run(  # another process is refused at once
            [sys.executable, "-c", f"from jepa_wm.training import hold_run_dir\nwith hold_run_dir({str(run_dir)!r}): "
             "pass"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
        assert other.returncode != 0
        assert f"LockedError: run dir {run_dir} is in use by another running process (pid {os.getpid()})" \
               in other.stderr
    with hold(run_dir / ".lock", "x"):  # released at the end of the block
        pass
    with hold(run_dir / ".lock", "another holder"), pytest.raises(LockedError, match=f"run dir {run_dir} is in use"):
        with hold_run_dir(run_dir):
            pass
    with hold_run_dir(run_dir, enabled=False):  # a non-main rank takes no lock
        pass


def test_a_checkpoint_of_another_kind_still_fails_resume_clearly(tmp_path: Path) -> None:
    torch.save({"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION + 1}, tmp_path / "step_00000001.pt")
    with pytest.raises(CheckpointError, match=r"tried step_00000001\.pt; newest: .* has checkpoint version 2"):
        _resume(tmp_path)
