"""Score a language-goal predictor on held-out seeds: retrieval, role swaps, energies.

Examples::

    python experiments/eval_language_goals.py
    python experiments/eval_language_goals.py templates=my_phrasings.txt   # your own phrasings everywhere

For each evaluation (a language-goal file of held-out seeds and a set of phrasings) it predicts
the final goal of every instruction of every scene and reports (:mod:`jepa_wm.language.evaluation`):
R@1 among the true final goals of the scene's instructions, the share of role-swapped pairs told
apart, the median energy from the predicted goal to its true goal against the median energy
between two instructions' true goals, and the L1 over every stage. Prints a table and writes
``results.json``.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.language.evaluation import retrieval
from jepa_wm.language.goal_data import GoalDataError, GoalEpisodes
from jepa_wm.language.goal_latents import build_goal_latents, load_goal_latents
from jepa_wm.language.goal_predictor import LanguageGoalPredictor
from jepa_wm.language.instructions import TemplateSet, resolve_templates
from jepa_wm.language.sentences import SentenceBank
from jepa_wm.language.text_encoder import load_text_encoder
from jepa_wm.locks import LockedError, RunDir, write_text_atomic
from jepa_wm.planning.runner import PlanSetupError, resolve_device
from jepa_wm.training.checkpoint import CheckpointError

log = logging.getLogger(__name__)
PHRASINGS = ("train", "heldout")


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval_language_goals")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except (GoalDataError, ValueError, FileNotFoundError, FileExistsError, ImportError, LockedError,
            CheckpointError, PlanSetupError) as err:
        raise SystemExit(f"error: {' '.join(str(err).split())}") from None


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run every evaluation of ``cfg``; returns what results.json holds."""
    evaluations = OmegaConf.to_container(cfg.evaluations, resolve=True) or {}
    for name, spec in evaluations.items():
        if not isinstance(spec, dict) or set(spec) != {"data", "phrasings"} or spec["phrasings"] not in PHRASINGS:
            raise ValueError(f"evaluations.{name} must be {{data: FILE, phrasings: train|heldout}}, got {spec!r}")
    if not evaluations:
        raise ValueError("evaluations is empty: name at least one {data: FILE, phrasings: train|heldout}")
    out = Path(cfg.out) if cfg.out is not None else Path(
        "runs/eval_language_goals", datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f"), "results.json")
    device = resolve_device(cfg.device)
    predictor, meta = LanguageGoalPredictor.load(cfg.checkpoint)
    predictor.to(device)
    encoder = load_encoder_checkpoint(cfg.encoder).to(device)
    if meta.get("encoder_fingerprint") not in (None, encoder.fingerprint()):
        raise ValueError(f"{cfg.checkpoint} was trained on encoder {meta['encoder_fingerprint']}; "
                         f"encoder={cfg.encoder} is {encoder.fingerprint()}")
    text_encoder = load_text_encoder(device=device)
    results: dict[str, Any] = {}
    with RunDir(out.parent, out.name):
        for name, spec in evaluations.items():
            with GoalEpisodes(spec["data"]) as episodes:
                if episodes.split != "evaluation":
                    raise GoalDataError(f"evaluations.{name}: {spec['data']} holds training seeds; evaluate on "
                                        f"held-out seeds (collect_language_goals.py evaluation=true)")
                task = str(episodes.task_config["name"])
            data = load_goal_latents([build_goal_latents(spec["data"], encoder, progress=cfg.progress)])
            templates: TemplateSet = resolve_templates(task, spec["phrasings"], cfg.templates)
            bank = SentenceBank.build(data.pairs, [task] * len(data), {task: templates}, text_encoder)
            scores = retrieval(predictor, data, bank, seed=cfg.seed).to_dict()
            results[name] = {"task": task, "data": spec["data"], "phrasings": cfg.templates or spec["phrasings"],
                             "scenes": len(data.seeds), **scores}
            log.info("%s: %s", name, json.dumps(results[name]))
        report = {"predictor": str(cfg.checkpoint), "encoder_fingerprint": encoder.fingerprint(),
                  "config": OmegaConf.to_container(cfg, resolve=True), "results": results}
        write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(table(results))
    log.info("results in %s", out)
    return report


def table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table of the scores."""
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| evaluation | task | phrasings | instructions | R@1 | role swaps (n) | energy to own goal | "
             "energy between goals | L1 all stages |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['task']} | {r['phrasings']} | {r['rows']} | {fmt(r['r1'])} | "
                     f"{fmt(r['swap_accuracy'])} ({r['swap_rows']}) | {fmt(r['energy_own'])} | "
                     f"{fmt(r['energy_between'])} | {fmt(r['stage_l1'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
