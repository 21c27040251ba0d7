"""NaN and inf: a non-finite loss or gradient stops training before the update; no file of weights
with NaN or inf is written or read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from jepa_wm.training import (
    NonFiniteError,
    NonFiniteLossError,
    atomic_torch_save,
    check_finite_losses,
    load_checkpoint,
    optimizer_step,
    save_checkpoint,
    torch_load_plain,
)
from jepa_wm.training.checkpoint import CHECKPOINT_KIND, CHECKPOINT_VERSION, load_tagged


def _linear() -> tuple[nn.Linear, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    return model, torch.optim.AdamW(model.parameters(), lr=0.1)


def test_a_non_finite_loss_stops_before_the_update(tmp_path: Path) -> None:
    model, optimizer = _linear()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    good = save_checkpoint(tmp_path, step=4, models={"m": model})
    loss = model(torch.full((2, 3), float("inf"))).mean()  # inf
    with pytest.raises(NonFiniteLossError) as caught:
        optimizer_step(loss, optimizer, clip_grad=1.0, terms={"loss_tf": loss * 0.5}, step=5, checkpoint_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("training stopped at step 5: the training loss is not finite (loss nan, loss_tf nan")
    assert f"the last good checkpoint {good}, which is kept" in message and "resume" in message
    for key, value in model.state_dict().items():  # nothing updated, grads cleared
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters()) and not optimizer.state


def test_a_finite_loss_with_a_non_finite_gradient_stops_too() -> None:
    model, optimizer = _linear()
    loss = torch.sqrt(model.weight.sum() * 0.0)  # sqrt(0) = 0, its gradient 0 * inf = nan
    assert torch.isfinite(loss)
    with pytest.raises(NonFiniteLossError, match=r"the training gradient is not finite \(loss -?0, gradient norm nan\); the weights were not updated"):
        optimizer_step(loss, optimizer)  # no clipping: the norm is still checked
    assert torch.isfinite(model.weight).all()


def test_the_message_says_when_no_checkpoint_was_saved_yet(tmp_path: Path) -> None:
    check_finite_losses({"val_loss": 0.5}, step=3, checkpoint_dir=tmp_path, what="validation")  # finite: no error
    with pytest.raises(NonFiniteLossError, match=r"at step 3: the validation loss is not finite \(val_loss nan\); "
                                                 r"no checkpoint had been saved in .* yet"):
        check_finite_losses({"val_loss": float("nan")}, step=3, checkpoint_dir=tmp_path, what="validation")


def test_weights_with_nan_or_inf_are_never_written(tmp_path: Path) -> None:
    model, _ = _linear()
    with torch.no_grad():
        model.weight[0, 1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"refusing to write .*step_00000003\.pt: 1 of 2 tensors hold NaN or inf "
                                             r".*\(first: models\.m\.weight\)"):
        save_checkpoint(tmp_path, step=3, models={"m": model})
    with pytest.raises(NonFiniteError, match=r"out\.pt: 1 of 1 tensors .*\(first: state_dict\.bias\)"):
        atomic_torch_save({"format": "x", "state_dict": {"bias": torch.tensor([float("-inf")])}}, tmp_path / "out.pt")
    assert list(tmp_path.iterdir()) == []  # no file, no temporary file


def test_files_with_nan_or_inf_are_refused_when_read(tmp_path: Path) -> None:
    model, _ = _linear()
    state = model.state_dict()
    state["weight"][0, 0] = float("nan")
    state["bias"][0] = float("inf")
    path = tmp_path / "step_00000003.pt"
    torch.save({"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, "step": 3, "models": {"m": state},
                "rng": {"torch": torch.get_rng_state()}}, path)  # written by something else than save_checkpoint
    with pytest.raises(NonFiniteError, match=rf"^{path}: 2 of 2 tensors hold NaN or inf .*"
                                             r"\(first: models\.m\.weight, models\.m\.bias\)$"):
        load_checkpoint(path)
    tagged = tmp_path / "reader.pt"
    torch.save({"format": "jepa_wm.object_reader/1", "state_dict": state}, tagged)
    with pytest.raises(ValueError, match=rf"{tagged}: 2 of 2 tensors hold NaN or inf"):
        load_tagged(tagged, "jepa_wm.object_reader/1", "object reader", "train one")
    (tmp_path / "ok.pt").write_bytes(b"")
    os.truncate(tmp_path / "ok.pt", 0)
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        torch_load_plain(tmp_path / "ok.pt")
