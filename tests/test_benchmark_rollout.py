"""experiments/benchmark_rollout.py: the energy comparison by hand, and the script end to end."""

from __future__ import annotations

import json
import runpy

import numpy as np
import pytest

from tests.helpers import ROOT, run_script, write_tiny_world_model

compare_energies = runpy.run_path(str(ROOT / "experiments" / "benchmark_rollout.py"))["compare_energies"]


def test_compare_energies_by_hand():
    reference = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    other = np.array([[1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 1.0, 2.5]])  # batch 0: 2nd and 3rd swapped
    figures = compare_energies(reference, other, topk=2)
    assert figures["topk_overlap"] == pytest.approx((1 / 2 + 2 / 2) / 2)  # {0, 1} vs {0, 2}; {3, 2} vs {2, 3}
    assert figures["max_abs_diff"] == pytest.approx(1.5)
    assert figures["energy_spread"] == pytest.approx(np.std([1.0, 2.0, 3.0, 4.0]))
    assert compare_energies(reference, reference, topk=2) == pytest.approx(
        {"pearson": 1.0, "spearman": 1.0, "max_abs_diff": 0.0, "energy_spread": figures["energy_spread"],
         "topk_overlap": 1.0})


def test_script_times_both_precisions_on_the_same_batches(tmp_path, monkeypatch):
    encoder, predictor = write_tiny_world_model(tmp_path, img_size=16)
    out = tmp_path / "bench.json"
    run_script("benchmark_rollout.py", f"world_model.encoder={encoder}", f"world_model.predictor={predictor}",
               "image_size=16", "samples=16", "batches=2", "warmup=1", "topk=4", "threads=1", f"out={out}",
               f"hydra.run.dir={tmp_path / 'run'}", monkeypatch=monkeypatch)
    record = json.loads(out.read_text())
    reference, low = record["precisions"]["float32"], record["precisions"]["bfloat16"]
    assert reference["speedup"] == 1.0 and reference["max_abs_diff"] == 0.0 and reference["topk_overlap"] == 1.0
    assert low["median_s"] > 0 and low["max_abs_diff"] > 0 and low["pearson"] > 0.8  # bf16 did run, close
    assert record["config"]["samples"] == 16 and record["machine"]["threads"] == 1
    with pytest.raises(SystemExit, match=r"precisions must be a non-empty list of \['bfloat16', 'float32'\]"):
        run_script("benchmark_rollout.py", f"world_model.encoder={encoder}", f"world_model.predictor={predictor}",
                   "image_size=16", "precisions=[float16]", f"hydra.run.dir={tmp_path / 'run2'}",
                   monkeypatch=monkeypatch)
