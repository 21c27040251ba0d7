"""Train the language-goal predictor: a sentence and the first frame -> every goal stage's latents.

Examples::

    python experiments/train_language_goals.py                      # the shipped recipe (docs/language.md)
    python experiments/train_language_goals.py train.steps=4000     # the same run_dir: resume, then extend
    python experiments/train_language_goals.py templates.pick_place_multi=my_phrasings.txt \\
        run_dir=runs/language_goals/mine

Encodes the goal images of ``data.train`` (and ``data.eval``) with the frozen ``encoder`` once
(``<file>.latents.<fingerprint>.hdf5`` beside each file), renders every training phrasing of each
instruction and encodes it with the frozen text encoder, then trains
(:mod:`jepa_wm.language.train`). Every ``train.eval_every`` steps it scores the held-out seeds of
``data.eval`` on the held-out phrasings (R@1 among the scene's instructions, role swaps). The
predictor goes to ``out`` with its config, both encoders' fingerprints, the data it saw, the
expert's median steps to each goal stage and its gripper there, per task (the sub-goal schedule and
the gripper targets of ``plan.py goal=text``), and its last scores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from jepa_wm.encoders.checkpoint import load_encoder_checkpoint
from jepa_wm.language.evaluation import retrieval
from jepa_wm.language.goal_data import GoalDataError, GoalEpisodes, expert_stages
from jepa_wm.language.goal_latents import (
    GoalLatentSet,
    build_goal_latents,
    load_goal_latents,
)
from jepa_wm.language.goal_predictor import LanguageGoalConfig, LanguageGoalPredictor
from jepa_wm.language.instructions import TemplateSet, resolve_templates
from jepa_wm.language.sentences import SentenceBank
from jepa_wm.language.text_encoder import load_text_encoder
from jepa_wm.language.train import GoalTrainConfig, train_language_goals
from jepa_wm.locks import LockedError
from jepa_wm.planning.runner import PlanSetupError, resolve_device
from jepa_wm.training.checkpoint import CheckpointError
from jepa_wm.training.loop import NonFiniteLossError

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train_language_goals")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (GoalDataError, ValueError, FileNotFoundError, ImportError, LockedError, CheckpointError,
            NonFiniteLossError, PlanSetupError) as err:
        raise SystemExit(f"error: {' '.join(str(err).split())}") from None


def run(cfg: DictConfig) -> Path:
    """Build the data, train, write the predictor; returns its path."""
    train_config = GoalTrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))
    run_dir = Path(cfg.run_dir)
    out = Path(cfg.out) if cfg.out is not None else run_dir / "language_goals.pt"
    _check_out(out, run_dir)
    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    encoder = load_encoder_checkpoint(cfg.encoder).to(device)
    text_encoder = load_text_encoder(cfg.text_encoder, device=device)
    train_files = list(cfg.data.train)
    if not train_files:
        raise ValueError("data.train must name at least one language-goal file")
    train, summary, train_seeds = _latents(train_files, encoder, cfg.data.max_seeds, "training", cfg.progress)
    templates = {task: resolve_templates(task, "train", (cfg.templates or {}).get(task))
                 for task in sorted(set(train.tasks))}
    train_bank = SentenceBank.build(train.pairs, _row_tasks(train), templates, text_encoder)
    evaluate = None
    if cfg.data.eval is not None:
        held_out, _, _ = _latents([cfg.data.eval], encoder, None, "evaluation", cfg.progress)
        held_out_templates = {task: TemplateSet.for_task(task, "heldout") for task in set(held_out.tasks)}
        held_out_bank = SentenceBank.build(held_out.pairs, _row_tasks(held_out), held_out_templates, text_encoder)

        def evaluate(predictor: LanguageGoalPredictor) -> dict[str, Any]:
            return retrieval(predictor, held_out, held_out_bank).to_dict()

    model = LanguageGoalConfig(latent_dim=encoder.embed_dim, grid_hw=encoder.grid_hw, text_dim=text_encoder.dim,
                               **OmegaConf.to_container(cfg.model, resolve=True))
    if model.max_stages < train.goals.shape[1]:
        raise ValueError(f"model.max_stages ({model.max_stages}) is below the data's goal stages "
                         f"({train.goals.shape[1]})")
    predictor = LanguageGoalPredictor(model).to(device)
    log.info("language-goal predictor: %.2f M parameters; %d instructions of %d scenes (%s)",
             sum(p.numel() for p in predictor.parameters()) / 1e6, len(train), len(train.seeds),
             ", ".join(sorted(set(train.tasks))))
    settings = OmegaConf.to_container(cfg, resolve=True)
    train_language_goals(predictor, train, train_bank, train_config, run_dir,
                         run_config={"model": settings["model"], "settings": settings}, data_summary=summary,
                         evaluate=evaluate, progress=cfg.progress)
    scores = evaluate(predictor) if evaluate is not None else {}
    expert = {task: stages for path, seeds in zip(train_files, train_seeds, strict=True)
              for task, stages in expert_stages(path, seeds).items()}
    meta = {"encoder_fingerprint": encoder.fingerprint(), "expert_stages": expert, "text_encoder": text_encoder.describe(),
            "text_encoder_fingerprint": text_encoder.fingerprint(), "data": summary, "config": settings,
            "steps": train_config.steps, "run_dir": str(run_dir.resolve()), "held_out_scores": scores}
    predictor.cpu().save(out, meta)
    log.info("written %s%s", out, f" (held-out phrasings: {scores})" if scores else "")
    return out


def _check_out(out: Path, run_dir: Path) -> None:
    """Refuse an existing ``out`` that another run wrote (this run's own is replaced when it ends again)."""
    if out.is_dir():
        raise ValueError(f"out={out} is a directory; expected a .pt file to write the predictor to")
    if out.exists():
        try:
            _, meta = LanguageGoalPredictor.load(out)
        except (ValueError, CheckpointError):
            meta = {}
        if meta.get("run_dir") != str(run_dir.resolve()):
            raise ValueError(f"out={out} already exists and was not written by run_dir={run_dir}; "
                             f"choose another out (nothing was changed)")


def _latents(paths: list[str], encoder: Any, max_seeds: int | None, split: str,
             progress: bool) -> tuple[GoalLatentSet, list[dict[str, Any]], list[list[int]]]:
    """The cached latents of ``paths`` (encoded where missing), a summary of each file and the seeds used."""
    caches, summary, chosen = [], [], []
    for path in paths:
        with GoalEpisodes(path) as episodes:
            if episodes.split != split:
                raise GoalDataError(f"{path} holds {episodes.split} seeds; expected {split} seeds here")
            seeds = episodes.seeds[:max_seeds] if max_seeds is not None else episodes.seeds
            summary.append({"path": str(path), "task_config": episodes.task_config, "split": episodes.split,
                            "seeds": len(seeds), "first_seed": seeds[0] if seeds else None,
                            "last_seed": seeds[-1] if seeds else None})
        caches.append(build_goal_latents(path, encoder, seeds=seeds, progress=progress))
        chosen.append(seeds)
    data = load_goal_latents(caches, seeds=chosen)
    rows_per_file = torch.bincount(torch.tensor(data.sources)[data.seed_index], minlength=len(paths))
    for entry, rows in zip(summary, rows_per_file.tolist(), strict=True):
        entry["instructions"] = rows
    return data, summary, chosen


def _row_tasks(data: GoalLatentSet) -> list[str]:
    return [data.tasks[int(s)] for s in data.seed_index]


if __name__ == "__main__":
    main()
