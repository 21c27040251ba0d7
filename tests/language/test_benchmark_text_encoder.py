"""experiments/benchmark_text_encoder.py runs and writes its figures (speed itself is not tested)."""

from __future__ import annotations

import json
import subprocess
import sys

from jepa_wm.language.goal_predictor import LanguageGoalConfig, LanguageGoalPredictor
from tests.helpers import ROOT


def test_benchmark_prints_and_writes_every_figure(tmp_path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "experiments" / "benchmark_text_encoder.py"), "--threads", "1",
                          "--batch", "2", "--warmup", "0", "--repeats", "1", "--stages", "2", "--grid", "2", "2",
                          "--latent-dim", "8", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "sentence_to_goals: median" in run.stdout
    results = json.loads(out.read_text())["results"]
    assert {"one_sentence", "batch_2", "goal_predictor", "sentence_to_goals"} <= set(results)


def test_benchmark_times_a_saved_predictor_at_its_own_size(tmp_path) -> None:
    path = LanguageGoalPredictor(LanguageGoalConfig(latent_dim=6, grid_hw=(2, 4), text_dim=384, width=16, depth=1,
                                                    num_heads=2)).save(tmp_path / "goals.pt")
    run = subprocess.run([sys.executable, str(ROOT / "experiments" / "benchmark_text_encoder.py"), "--threads", "1",
                          "--batch", "2", "--warmup", "0", "--repeats", "1", "--stages", "2", "--checkpoint", str(path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "2 stages on a 2x4 grid of 6-wide latents" in run.stdout
