"""How well predicted goals pick out their instruction: retrieval, role swaps and energies.

Distances are the planner's energy, the mean absolute difference over tokens and channels of two
goal latents (V-JEPA 2-AC's L1). For each row of a :class:`GoalLatentSet` (one instruction in one
scene) the predicted final goal is compared with the true final goals of every instruction its
scene offers (its own and the scene's other pairs):

* ``r1``: the share of rows whose predicted goal is nearest to their own true goal;
* ``swap_accuracy``: over rows whose scene also holds the role-swapped pair (object and target
  colours exchanged), the share nearer to their own goal than to the swap's;
* ``energy_own`` / ``energy_between``: the median energy from the predicted goal to its true goal,
  against the median energy between the true goals of two different instructions of one scene
  (how far apart the goals the prediction must choose between are).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from jepa_wm.language.goal_latents import GoalLatentSet
from jepa_wm.language.goal_predictor import LanguageGoalPredictor
from jepa_wm.language.sentences import SentenceBank

BATCH = 256


def energy(a: Tensor, b: Tensor) -> Tensor:
    """Mean ``|a - b|`` over the last two dims: ``(..., N, D), (..., N, D) -> (...)``."""
    return (a.float() - b.float()).abs().mean(dim=(-2, -1))


@dataclass(frozen=True)
class Retrieval:
    """Scores of one evaluation (module docstring); ``rows`` instructions, ``swap_rows`` of them with a swap."""

    rows: int
    r1: float
    swap_rows: int
    swap_accuracy: float | None
    energy_own: float
    energy_between: float
    stage_l1: float  # mean L1 over every stage a row has (the training loss's L1 term)

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@torch.no_grad()
def retrieval(predictor: LanguageGoalPredictor, data: GoalLatentSet, sentences: SentenceBank,
              seed: int = 0) -> Retrieval:
    """Score ``predictor`` on every row of ``data``, each with one phrasing drawn with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    which = torch.randint(0, 1 << 30, (len(data),), generator=generator)
    device = next(predictor.parameters()).device
    hits, swap_hits, swap_rows, own_energy, stage_l1 = [], [], 0, [], []
    index = {(int(data.seed_index[p]), data.pairs[p]): p for p in range(len(data))}
    for start in range(0, len(data), BATCH):
        rows = torch.arange(start, min(start + BATCH, len(data)))
        text, mask = sentences.pick(rows, which[rows])
        obs = data.obs[data.seed_index[rows]].float().to(device)
        stages = data.goals.shape[1]
        predicted = predictor(obs, text.to(device), mask.to(device), stages=stages).cpu()  # (B, G, N, D)
        per_stage = energy(predicted, data.goals[rows])  # (B, G)
        stage_l1.append(per_stage[data.stage_mask[rows]])
        final = predicted[:, -1]
        candidates = torch.cat([rows[:, None], data.negatives[rows]], dim=1)  # (B, 1 + K)
        exists = candidates >= 0
        dist = energy(final[:, None], data.goals[candidates.clamp(min=0), -1])  # (B, 1 + K)
        dist = dist.masked_fill(~exists, float("inf"))
        hits.append(dist.argmin(dim=1) == 0)
        own_energy.append(dist[:, 0])
        for i, p in enumerate(rows.tolist()):
            obj, target = data.pairs[p]
            swap = index.get((int(data.seed_index[p]), (target, obj))) if obj is not None and obj != target else None
            if swap is not None:
                swap_rows += 1
                swap_hits.append(bool(dist[i, 0] < energy(final[i], data.goals[swap, -1])))
    between = _between_energy(data)
    return Retrieval(rows=len(data), r1=float(torch.cat(hits).float().mean()), swap_rows=swap_rows,
                     swap_accuracy=(sum(swap_hits) / swap_rows) if swap_rows else None,
                     energy_own=float(torch.cat(own_energy).median()), energy_between=between,
                     stage_l1=float(torch.cat(stage_l1).mean()))


def _between_energy(data: GoalLatentSet) -> float:
    """Median energy between the true final goals of two different instructions of one scene (nan if none)."""
    first = data.negatives[:, 0]
    rows = torch.nonzero(first >= 0).flatten()
    if not len(rows):
        return float("nan")
    return float(energy(data.goals[rows, -1], data.goals[first[rows], -1]).median())
