"""AdamW parameter groups, the optimizer step, and metric files across a resumption."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from jepa_wm.training import MetricsLogger, adamw, autocast, optimizer_step, read_metrics


def test_adamw_decays_only_matrices() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    model.register_parameter("token", nn.Parameter(torch.zeros(1, 1, 4)))
    optimizer = adamw([model], lr=1e-3, weight_decay=0.05)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model.token)}
    assert len(no_decay["params"]) == 3  # linear bias, norm weight, norm bias


def test_optimizer_step_clips_and_reports_the_norm() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = (model(torch.ones(1, 1)) - 10.0).pow(2).sum()  # gradient -20
    assert optimizer_step(loss, optimizer, clip_grad=2.0) == pytest.approx(20.0)
    assert float(model.weight.detach()) == pytest.approx(2.0)  # clipped to norm 2, lr 1
    assert model.weight.grad is None
    with pytest.raises(ValueError, match="precision"):
        autocast(torch.device("cpu"), "fp16")  # type: ignore[arg-type]


def test_metrics_resume_drops_records_after_the_checkpoint(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path)
    for step in (10, 20, 30):
        logger.log({"step": step, "loss": 1.0 / step, "grad_norm": float("nan")})
    resumed = MetricsLogger(tmp_path, resume_step=20)
    resumed.log({"step": 30, "loss": 0.5, "grad_norm": 1.0, "extra": 1})
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [
        (10, 0.1), (20, 0.05), (30, 0.5)]
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["grad_norm"] is None
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["step"] for row in rows] == ["10", "20", "30"] and list(rows[0]) == ["step", "loss", "grad_norm"]
    with pytest.raises(ValueError, match="step"):
        resumed.log({"loss": 1.0})
    MetricsLogger(tmp_path / "off", enabled=False).log({"step": 1})
    assert not (tmp_path / "off").exists()
