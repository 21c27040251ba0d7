"""Training the language-goal predictor on cached goal latents (``experiments/train_language_goals.py``).

Each step draws ``batch_size`` instructions (a scene's pair: its first frame, a random training
phrasing of it, its goal stages) and minimises

    L1(predicted stages, true stages) + nce_weight * InfoNCE(final goal changes)

(:mod:`jepa_wm.language.losses`): the L1 is the planner's energy at every stage; the InfoNCE
compares the predicted final goal's change from now with the batch's true ones and with the same
scene's other instructions (roles swapped, another cube or pad), so the prediction must follow the
sentence, not the scene's average goal.

The run holds ``run_dir`` (:func:`~jepa_wm.training.resume.hold_run_dir`), writes
``checkpoints/step_<n>.pt`` every ``checkpoint_every`` steps (the last ``keep_last`` kept) and
``metrics.jsonl``/``.csv``; started again on the same ``run_dir`` it resumes from the newest
readable checkpoint (model, optimizer, schedule, random state: the same batches follow), and a
finished run can be extended by raising ``steps``. A non-finite loss stops it before the update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from jepa_wm.language.goal_latents import GoalLatentSet
from jepa_wm.language.goal_predictor import LanguageGoalPredictor
from jepa_wm.language.losses import goal_change, goal_l1, info_nce
from jepa_wm.language.sentences import SentenceBank
from jepa_wm.training.checkpoint import prune_checkpoints, save_checkpoint
from jepa_wm.training.loop import adamw, optimizer_step
from jepa_wm.training.metrics import MetricsLogger
from jepa_wm.training.resume import hold_run_dir, resume_latest
from jepa_wm.training.schedule import WarmupConstantDecay, warmup_constant_decay
from planners.base import check_positive_int

log = logging.getLogger(__name__)

MODEL_NAME = "language_goal_predictor"
# settings that change what a step computes: a run resumes only with the same ones
_FIXED_ON_RESUME = ("batch_size", "nce_weight", "temperature", "seed", "model")


@dataclass(frozen=True)
class GoalTrainConfig:
    """The optimisation of :func:`train_language_goals`.

    Args:
        steps: optimisation steps in all (raise it to extend a finished run).
        batch_size: instructions per step.
        lr: AdamW's peak rate; warmup_steps / decay_steps: its linear warm-up and final decay.
        weight_decay: AdamW's (not on biases and 1-D tensors).
        nce_weight: the InfoNCE term's weight next to the L1.
        temperature: InfoNCE's.
        clip_grad: the gradient norm's bound.
        checkpoint_every: steps between checkpoints; keep_last: checkpoints kept.
        log_every: steps between metrics records (the loss averaged over them).
        eval_every: steps between evaluations on the held-out set (when one is given).
        seed: the batches and phrasings drawn, and torch's random state from the first step (the
            predictor is initialised before, by its builder).
    """

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    decay_steps: int = 1000
    weight_decay: float = 0.05
    nce_weight: float = 0.1
    temperature: float = 0.1
    clip_grad: float = 1.0
    checkpoint_every: int = 250
    keep_last: int = 2
    log_every: int = 50
    eval_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "keep_last", "log_every", "eval_every"):
            check_positive_int(getattr(self, name), name)
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (InfoNCE contrasts the batch), got {self.batch_size}")
        if not self.nce_weight >= 0 or not self.temperature > 0 or not self.clip_grad > 0:
            raise ValueError(f"need nce_weight >= 0, temperature > 0 and clip_grad > 0, got {self.nce_weight}, "
                             f"{self.temperature}, {self.clip_grad}")
        self.schedule()  # its own checks (warm-up and decay within the steps, rates)

    def schedule(self) -> WarmupConstantDecay:
        return WarmupConstantDecay(peak_lr=self.lr, total_steps=self.steps, warmup_steps=self.warmup_steps,
                                   decay_steps=self.decay_steps, start_lr=0.0, final_lr=self.lr * 0.05)


def batch_loss(predictor: LanguageGoalPredictor, data: GoalLatentSet, sentences: SentenceBank, rows: Tensor,
               generator: torch.Generator, config: GoalTrainConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of the instructions ``rows`` (a random training phrasing each) and its terms."""
    device = next(predictor.parameters()).device
    text, mask = sentences.sample(rows, generator)
    obs = data.obs[data.seed_index[rows]].float().to(device)  # (B, N, D)
    true = data.goals[rows].float().to(device)  # (B, G, N, D)
    stage_mask = data.stage_mask[rows].to(device)
    predicted = predictor(obs, text.to(device), mask.to(device), stages=true.shape[1])
    l1 = goal_l1(predicted, true, stage_mask)
    negatives = data.negatives[rows]  # (B, K)
    negative_goals = data.goals[negatives.clamp(min=0), -1].float().to(device)  # (B, K, N, D)
    nce = info_nce(goal_change(predicted[:, -1], obs), goal_change(true[:, -1], obs),
                   goal_change(negative_goals, obs[:, None]), (negatives >= 0).to(device), config.temperature)
    return l1 + config.nce_weight * nce, {"l1": l1.detach(), "nce": nce.detach()}


def train_language_goals(predictor: LanguageGoalPredictor, data: GoalLatentSet, sentences: SentenceBank,
                         config: GoalTrainConfig, run_dir: str | Path, *, run_config: dict[str, Any] | None = None,
                         data_summary: list[dict[str, Any]] | None = None,
                         evaluate: Callable[[LanguageGoalPredictor], dict[str, Any]] | None = None,
                         progress: bool = True) -> int:
    """Train ``predictor`` in place (module docstring); returns the step reached.

    Args:
        predictor: freshly built (or resumed from ``run_dir``'s checkpoints).
        data: the training instructions' latents; sentences: their phrasings' token features.
        run_dir: checkpoints and metrics; held for the run.
        run_config: the whole run's settings, stored in checkpoints and checked on resume
            (``config``'s fields and ``model`` must not change).
        data_summary: what the data was (one entry per file), stored in checkpoints.
        evaluate: scores the predictor (eval mode) every ``eval_every`` steps and at the end.

    Raises:
        NonFiniteLossError: the loss or gradients became NaN/inf (nothing updated; resume from the
            last checkpoint with other settings).
        LockedError: another process holds ``run_dir``.
    """
    run_dir = Path(run_dir)
    run_config = {**asdict(config), **(run_config or {})}
    checkpoint_dir = run_dir / "checkpoints"
    with hold_run_dir(run_dir):
        optimizer = adamw([predictor], lr=config.lr, weight_decay=config.weight_decay)
        schedule = config.schedule()
        scheduler = warmup_constant_decay(optimizer, schedule)
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        step = 0
        resumed = resume_latest(checkpoint_dir, run_config=run_config, fixed=_FIXED_ON_RESUME,
                                models={MODEL_NAME: predictor}, optimizer=optimizer, scheduler=scheduler,
                                schedule=schedule, device=next(predictor.parameters()).device)
        if resumed is not None:
            step = int(resumed[1]["step"])
            generator.set_state(resumed[1]["extra"]["generator"])
        metrics = MetricsLogger(run_dir, resume_step=step)
        bar = tqdm(total=config.steps, initial=step, desc="language goals", unit="step", disable=not progress,
                   dynamic_ncols=True)
        sums: dict[str, float] = {}
        counted = 0  # steps in sums
        with bar:
            while step < config.steps:
                predictor.train()
                rows = torch.randint(0, len(data), (config.batch_size,), generator=generator)
                loss, terms = batch_loss(predictor, data, sentences, rows, generator, config)
                grad_norm = optimizer_step(loss, optimizer, scheduler=scheduler, clip_grad=config.clip_grad,
                                           terms=terms, step=step + 1, checkpoint_dir=checkpoint_dir)
                step += 1
                counted += 1
                for name, value in {"loss": float(loss.detach()), **{k: float(v) for k, v in terms.items()},
                                    "grad_norm": grad_norm}.items():
                    sums[name] = sums.get(name, 0.0) + value
                bar.update(1)
                if step % config.log_every == 0 or step == config.steps:
                    record = {"step": step, "lr": scheduler.get_last_lr()[0],
                              **{k: v / counted for k, v in sums.items()}}
                    sums, counted = {}, 0
                    bar.set_postfix(loss=f"{record['loss']:.4f}", l1=f"{record['l1']:.4f}")
                    if evaluate is not None and (step % config.eval_every == 0 or step == config.steps):
                        record.update({f"eval_{k}": v for k, v in evaluate(predictor.eval()).items()})
                        log.info("step %d: %s", step, {k: round(v, 4) if isinstance(v, float) else v
                                                       for k, v in record.items()})
                    metrics.log(record)
                if step % config.checkpoint_every == 0 or step == config.steps:
                    save_checkpoint(checkpoint_dir, step=step, models={MODEL_NAME: predictor}, optimizer=optimizer,
                                    scheduler=scheduler, config=run_config, data={"files": data_summary or []},
                                    extra={"generator": generator.get_state()})
                    prune_checkpoints(checkpoint_dir, config.keep_last)
    predictor.eval()
    return step
