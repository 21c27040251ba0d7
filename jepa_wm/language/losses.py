"""The language-goal predictor's losses: L1 to the true goal latents plus a bidirectional InfoNCE.

* :func:`goal_l1`: mean ``|predicted - true|`` over the goal stages an episode has, their tokens and
  channels: the planner's own energy (V-JEPA 2-AC's L1), so low loss means low energy at the goal.
* :func:`info_nce`: VL-JEPA's contrastive term (InfoNCE beat cosine and L2 in its ablation): each
  predicted final goal must be nearer (cosine) to its own true goal than to the other true goals of
  the batch and to its hard negatives (the same scene under another instruction: roles swapped,
  another cube or pad), and each true goal nearer to its own prediction than to the batch's other
  predictions. It keeps predictions from collapsing onto "an average goal of this scene", which L1
  alone tolerates.
* :func:`goal_change`: what InfoNCE compares: the goal's change from the current frame, flattened
  and unit-normalised. Goals of one scene share most of their latents with the current frame (the
  table, the robot's base); their differences are in the change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def goal_l1(predicted: Tensor, true: Tensor, stage_mask: Tensor | None = None) -> Tensor:
    """Mean absolute error over the stages that exist.

    Args:
        predicted, true: goal latents ``(B, G, N, D)``.
        stage_mask: ``(B, G)`` bool, True for stages the episode has (tasks with fewer stages are
            padded); ``None``: all.

    Returns:
        A scalar: the mean over existing stages, tokens and channels.
    """
    if predicted.shape != true.shape or predicted.ndim != 4:
        raise ValueError(f"predicted and true must both be (B, G, N, D), got {tuple(predicted.shape)} "
                         f"and {tuple(true.shape)}")
    error = (predicted - true).abs().mean(dim=(2, 3))  # (B, G)
    if stage_mask is None:
        return error.mean()
    if stage_mask.shape != error.shape or not bool(stage_mask.any()):
        raise ValueError(f"stage_mask must be bool {tuple(error.shape)} with a True, got {tuple(stage_mask.shape)}")
    return error[stage_mask].mean()


def goal_change(goal: Tensor, obs: Tensor) -> Tensor:
    """The goal's change from the current frame as a unit vector: ``(B, N, D), (B, N, D) -> (B, N * D)``.

    Works on any leading shape: ``(..., N, D)`` goals with ``obs`` broadcastable to them.
    """
    return F.normalize((goal - obs).flatten(-2), dim=-1, eps=1e-8)


def info_nce(predicted: Tensor, true: Tensor, negatives: Tensor | None = None,
             negatives_mask: Tensor | None = None, temperature: float = 0.1) -> Tensor:
    """Bidirectional InfoNCE between unit feature vectors.

    Row ``i``'s logits (prediction to truth) are ``cos(p_i, t_j) / T`` for every ``j`` in the batch
    and ``cos(p_i, n_ik) / T`` for its hard negatives; the target is ``j = i``. The reverse direction
    (truth to prediction) takes ``cos(t_j, p_i) / T`` over the batch's predictions. The loss is the
    mean of the two cross-entropies.

    Args:
        predicted, true: ``(B, F)`` unit vectors (:func:`goal_change`).
        negatives: ``(B, K, F)`` hard negatives of each row (true goals of other instructions in the
            same scene), or ``None``.
        negatives_mask: ``(B, K)`` bool, True for negatives that exist (scenes differ in how many).
        temperature: ``T > 0``.

    Returns:
        A scalar.
    """
    if predicted.ndim != 2 or predicted.shape != true.shape:
        raise ValueError(f"predicted and true must both be (B, F), got {tuple(predicted.shape)} and {tuple(true.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    batch = predicted.shape[0]
    logits = predicted @ true.T / temperature  # (B, B): row i = prediction i against every truth
    targets = torch.arange(batch, device=predicted.device)
    forward = logits
    if negatives is not None:
        if negatives.ndim != 3 or negatives.shape[0] != batch or negatives.shape[2] != predicted.shape[1]:
            raise ValueError(f"negatives must be ({batch}, K, {predicted.shape[1]}), got {tuple(negatives.shape)}")
        hard = torch.einsum("bf,bkf->bk", predicted, negatives) / temperature  # (B, K)
        if negatives_mask is not None:
            if negatives_mask.shape != hard.shape:
                raise ValueError(f"negatives_mask must be {tuple(hard.shape)}, got {tuple(negatives_mask.shape)}")
            hard = hard.masked_fill(~negatives_mask, float("-inf"))
        forward = torch.cat([logits, hard], dim=1)  # (B, B + K)
    return 0.5 * (F.cross_entropy(forward, targets) + F.cross_entropy(logits.T, targets))
