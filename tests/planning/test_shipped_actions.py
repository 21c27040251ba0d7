"""The shipped defaults plan exactly the actions they planned before the planning core was reshaped (issue 31).

``shipped_actions.json`` holds the first 20 actions of three evaluation seeds (1000000-1000002) of reach,
push, pick_place and pick_place_multi with ``python experiments/plan.py task=<task>``'s defaults, one torch
thread per process, planned by the code of commit fe5d521 (before the refactor). With the code checked out,
this records them again::

    python -m tests.planning.test_shipped_actions record tests/planning/shipped_actions.json

Floating-point results depend on the CPU's instruction set (and bf16 rollouts on whether the CPU has native
bf16), so the test compares only on a CPU like the one that recorded them, and skips elsewhere saying how to
record the reference there (check out a commit whose actions you trust, record, then test the change). On CPUs
that emulate bf16 (about 10 s per action for the two-camera pair) it checks the first 2 steps of each episode;
``JEPA_WM_SHIPPED_STEPS=20 pytest tests/planning/test_shipped_actions.py`` checks all of them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from jepa_wm.planning.runner import run_episodes
from jepa_wm.world_model import cpu_has_native_bf16
from tests.helpers import ROOT

REFERENCE = Path(__file__).with_name("shipped_actions.json")
TASKS = ("reach", "push", "pick_place", "pick_place_multi")
SEED, EPISODES, STEPS = 1_000_000, 3, 20


def cpu_signature() -> dict[str, Any]:
    """What floating-point results depend on here: the CPU model, torch's SIMD level, native bf16."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    return {"cpu": model, "capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16()}


def plan_actions(task: str, steps: int, out: Path) -> dict[str, list[list[float]]]:
    """The first ``steps`` actions of the shipped default's episodes on the evaluation seeds, per seed."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="plan", overrides=[f"task={task}", f"max_steps={steps}", f"episodes={EPISODES}",
                                                     f"seed={SEED}", "video=false"])
    results = run_episodes(OmegaConf.to_container(cfg, resolve=True), out, device=torch.device("cpu"), workers=2,
                           threads=1, progress=False)
    return {str(r.seed): r.mpc["actions"] for r in results}


@pytest.mark.slow
def test_shipped_defaults_plan_the_recorded_actions(tmp_path, monkeypatch):
    reference = json.loads(REFERENCE.read_text())
    here = cpu_signature()
    if {key: reference[key] for key in here} != here:
        pytest.skip(f"reference actions recorded on {reference['cpu']} ({reference['capability']}, native bf16 "
                    f"{reference['native_bf16']}), this CPU is {here['cpu']} ({here['capability']}, native bf16 "
                    f"{here['native_bf16']}): record them here first (module docstring)")
    steps = int(os.environ.get("JEPA_WM_SHIPPED_STEPS", STEPS if here["native_bf16"] else 2))
    monkeypatch.chdir(ROOT)  # the configs name the shipped checkpoints from the repository root
    for task in TASKS:
        planned = plan_actions(task, steps, tmp_path)
        for seed, actions in reference["actions"][task].items():
            np.testing.assert_array_equal(np.asarray(planned[seed], dtype=np.float32),
                                          np.asarray(actions[:steps], dtype=np.float32), err_msg=f"{task} seed {seed}")


if __name__ == "__main__":  # python -m tests.planning.test_shipped_actions record <file.json>
    if len(sys.argv) != 3 or sys.argv[1] != "record":
        raise SystemExit("usage: python -m tests.planning.test_shipped_actions record <file.json>")
    os.chdir(ROOT)
    Path(sys.argv[2]).write_text(json.dumps({**cpu_signature(), "steps": STEPS, "torch": torch.__version__,
                                             "actions": {task: plan_actions(task, STEPS, Path("/tmp"))
                                                         for task in TASKS}}))
