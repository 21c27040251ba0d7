"""How far each planner overshoots its time budget: the overshoot distribution over many plan() calls.

For each planner preset and budget (``time_budget_s``), a fresh planner makes ``warmup`` untimed
and then ``calls`` timed plan() calls, each from one of ``observations`` held-out observations of
the task toward its final goal, with plan.py's cost for the task (the world model's latent
rollouts and the cost terms of the task's recipe; the observation is encoded before the call, as
the MPC loop does) or, with ``cost=synthetic``, a quadratic that sleeps a set time per call and per
candidate. It reports the overshoot ``(elapsed - budget) / budget`` (median, p95, p99, max; negative:
the call returned early), the share of calls the budget cut short, the candidates evaluated per
call, the calls where not even one candidate fitted, and the longest wait of a call (wall-clock
minus this process's CPU time: with ``threads=1`` and the model cost, how long a shared machine
left the process off the CPU, which no deadline can prevent). Writes ``deadline.json`` (figures,
each call's wall-clock and CPU seconds, config, machine) and ``deadline.md`` (the table and the
command) into the hydra run directory.

Examples::

    python experiments/benchmark_deadline.py                                    # reach, the four planners
    python experiments/benchmark_deadline.py precision=float32 threads=1        # where bf16 is emulated
    python experiments/benchmark_deadline.py cost=synthetic synthetic.per_candidate_s=0.005 calls=50
    python experiments/benchmark_deadline.py planners=[cem_cpu] budgets=[0.1] hydra.run.dir=/tmp/deadline
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from jepa_wm.planning.runner import build
from jepa_wm.world_model import cpu_has_native_bf16
from planners.protocols import CostFunction, PlanResult

log = logging.getLogger(__name__)

CostMaker = Callable[[], CostFunction]  # readies one observation's cost (untimed) and returns it


def overshoot_stats(elapsed_s: Sequence[float], budget_s: float) -> dict[str, float]:
    """Median, 95th and 99th percentile and max of the overshoot ``(elapsed - budget) / budget``."""
    over = (np.asarray(elapsed_s, dtype=float) - budget_s) / budget_s
    return {"median": float(np.median(over)), "p95": float(np.percentile(over, 95)),
            "p99": float(np.percentile(over, 99)), "max": float(over.max())}


def summarize(elapsed_s: Sequence[float], cpu_s: Sequence[float], results: Sequence[PlanResult],
              budget_s: float) -> dict[str, Any]:
    """One table row: the overshoot figures, what the calls did and their longest wait off the CPU."""
    return {**overshoot_stats(elapsed_s, budget_s),
            "timed_out": float(np.mean([r.timed_out for r in results])),
            "candidates": float(np.median([r.evaluated for r in results])),
            "unevaluated": int(sum(r.timed_out and r.evaluated == 0 for r in results)),
            "max_wait_s": float(np.max(np.asarray(elapsed_s) - np.asarray(cpu_s)))}


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table, overshoots in percent of the budget."""
    lines = ["| planner | budget (s) | calls | median | p95 | p99 | max | cut short | candidates/call | none fitted "
             "| max wait (ms) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['planner']} | {r['budget_s']:g} | {r['calls']} | {r['median']:+.1%} | {r['p95']:+.1%} "
                     f"| {r['p99']:+.1%} | {r['max']:+.1%} | {r['timed_out']:.0%} | {r['candidates']:g} "
                     f"| {r['unevaluated']} | {1000 * r['max_wait_s']:.0f} |")
    return "\n".join(lines)


class SleepyQuadratic:
    """A cost ``(B, H, A) -> (B,)``: the squared distance to ``target`` ``(A,)`` after sleeping
    ``per_call_s + per_candidate_s * B`` seconds (differentiable, for the gradient planner too)."""

    def __init__(self, target: Tensor, per_candidate_s: float, per_call_s: float) -> None:
        self.target, self.per_candidate_s, self.per_call_s = target, per_candidate_s, per_call_s

    def __call__(self, actions: Tensor) -> Tensor:
        time.sleep(self.per_call_s + self.per_candidate_s * actions.shape[0])
        return (actions - self.target).square().sum(dim=(1, 2))  # (B,)


def model_costs(resolved: dict[str, Any], device: torch.device, observations: int) -> list[CostMaker]:
    """plan.py's cost at ``observations`` held-out observations of the task, toward the final goal."""
    setup = build(resolved, device)
    model, cost = setup.agent.model, setup.agent.cost
    makers = []
    for k in range(observations):
        obs, _ = setup.env.reset(seed=resolved["seed"] + k)
        goal = setup.goals.goal(model, setup.env.unwrapped.goal_images())

        def make(obs: dict[str, Any] = obs, goal: Any = goal) -> CostFunction:
            cost.reset(goal, model)
            model.encode(obs)  # as the MPC loop's observed energy does before it plans
            return cost.bind(model, obs, goal, len(goal.names) - 1)

        makers.append(make)
    setup.env.close()
    return makers


def synthetic_costs(cfg: DictConfig, action_dim: int, device: torch.device) -> list[CostMaker]:
    """Sleepy quadratics toward ``observations`` random targets."""
    generator = torch.Generator().manual_seed(cfg.seed)
    targets = (torch.rand(cfg.observations, action_dim, generator=generator) - 0.5).to(device)  # (K, A)
    return [lambda t=t: SleepyQuadratic(t, cfg.synthetic.per_candidate_s, cfg.synthetic.per_call_s) for t in targets]


def time_calls(planner_settings: dict[str, Any], budget_s: float, costs: list[CostMaker], cfg: DictConfig,
               device: torch.device) -> tuple[list[float], list[float], list[PlanResult]]:
    """Wall and CPU seconds and results of the timed plan() calls of a fresh planner with ``budget_s``."""
    settings = {**planner_settings, "config": {**planner_settings["config"], "time_budget_s": budget_s}}
    planner = instantiate(settings, seed=cfg.seed, device=device)
    elapsed, cpu, results = [], [], []
    for call in range(cfg.warmup + cfg.calls):
        cost_fn = costs[call % len(costs)]()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = planner.plan(cost_fn)
        if call >= cfg.warmup:
            elapsed.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            results.append(result)
    return elapsed, cpu, results


@hydra.main(version_base="1.3", config_path="../configs", config_name="benchmark_deadline")
def main(cfg: DictConfig) -> None:
    if cfg.cost not in ("model", "synthetic"):
        raise SystemExit(f"error: cost must be model or synthetic, got {cfg.cost!r}")
    if not cfg.planners or not cfg.budgets or cfg.calls < 1 or cfg.observations < 1:
        raise SystemExit("error: planners and budgets must be non-empty lists, calls and observations >= 1")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = [] if cfg.precision is None else [f"world_model.precision={cfg.precision}"]
    costs: list[CostMaker] | None = None
    rows = []
    for name in cfg.planners:
        plan = OmegaConf.to_container(compose(config_name="plan", overrides=[
            f"task={cfg.task}", f"planner={name}", f"seed={cfg.seed}", *precision]), resolve=True)
        if costs is None:
            costs = (model_costs(plan, device, cfg.observations) if cfg.cost == "model" else
                     synthetic_costs(cfg, instantiate(plan["planner"]["action_space"]).dim, device))
        for budget in cfg.budgets:
            elapsed, cpu, results = time_calls(plan["planner"], float(budget), costs, cfg, device)
            rows.append({"planner": name, "budget_s": float(budget), "calls": cfg.calls,
                         **summarize(elapsed, cpu, results, float(budget)), "elapsed_s": elapsed, "cpu_s": cpu})
            r = rows[-1]
            log.info("%s at %g s: overshoot median %+.1f%%, p95 %+.1f%%, p99 %+.1f%%, max %+.1f%%; %.0f%% cut "
                     "short, %g candidates per call", name, budget, 100 * r["median"], 100 * r["p95"],
                     100 * r["p99"], 100 * r["max"], 100 * r["timed_out"], r["candidates"])
    table = markdown_table(rows)
    command = "python " + " ".join(sys.argv)
    log.info("overshoot (elapsed - budget) / budget over %d calls per row (%s cost):\n%s", cfg.calls, cfg.cost, table)
    out = Path(HydraConfig.get().runtime.output_dir)
    machine = {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "device": str(device), "cpu_native_bf16": cpu_has_native_bf16()}
    (out / "deadline.json").write_text(json.dumps({"config": OmegaConf.to_container(cfg, resolve=True),
                                                   "machine": machine, "command": command, "rows": rows}, indent=1))
    (out / "deadline.md").write_text(
        f"`{command}`\n\n{table}\n\nOvershoot: (elapsed - budget) / budget per plan() call over {cfg.calls} calls "
        f"({cfg.cost} cost, torch threads: {machine['threads']}, device: {device}); negative: the call returned early. "
        "Max wait: the longest a call was off the CPU (wall-clock minus CPU time).\n")
    log.info("wrote %s and %s", out / "deadline.json", out / "deadline.md")


if __name__ == "__main__":
    main()
