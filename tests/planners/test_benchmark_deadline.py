"""experiments/benchmark_deadline.py: the overshoot figures by hand, and the script end to end (synthetic cost)."""

from __future__ import annotations

import json
import runpy

import pytest

from tests.helpers import ROOT, run_script

SCRIPT = runpy.run_path(str(ROOT / "experiments" / "benchmark_deadline.py"))


def test_overshoot_stats_by_hand() -> None:
    stats = SCRIPT["overshoot_stats"]([0.09, 0.1, 0.11, 0.15], 0.1)
    assert stats["median"] == pytest.approx(0.05)  # (0.1 + 0.11) / 2 against 0.1
    assert stats["max"] == pytest.approx(0.5)
    assert stats["p95"] == pytest.approx(0.44)  # numpy's linear interpolation over (-0.1, 0, 0.1, 0.5)
    assert stats["median"] <= stats["p95"] <= stats["p99"] <= stats["max"]


def test_script_writes_each_planners_overshoot_at_each_budget(tmp_path, monkeypatch) -> None:
    run_script("benchmark_deadline.py", "cost=synthetic", "planners=[cem_cpu,gradient]", "budgets=[0.02,0.04]",
               "calls=2", "warmup=1", "synthetic.per_candidate_s=0.001", f"hydra.run.dir={tmp_path}",
               monkeypatch=monkeypatch)
    record = json.loads((tmp_path / "deadline.json").read_text())
    rows = record["rows"]
    assert [(r["planner"], r["budget_s"]) for r in rows] == [("cem_cpu", 0.02), ("cem_cpu", 0.04),
                                                              ("gradient", 0.02), ("gradient", 0.04)]
    for row in rows:
        assert row["calls"] == 2 and row["timed_out"] == 1.0 and 0 <= row["unevaluated"] <= 2
        assert row["median"] <= row["p95"] <= row["p99"] <= row["max"] < 10  # within 10 budgets even when loaded
    table = (tmp_path / "deadline.md").read_text()
    assert "| cem_cpu | 0.02 | 2 |" in table and "benchmark_deadline.py" in table
    with pytest.raises(SystemExit, match="cost must be model or synthetic"):
        run_script("benchmark_deadline.py", "cost=nope", f"hydra.run.dir={tmp_path / 'bad'}", monkeypatch=monkeypatch)
