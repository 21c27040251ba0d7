"""V-JEPA 2-AC training losses: teacher forcing and multi-step rollout, both latent L1.

For a clip of ``T`` frames with latents ``z_1..z_T``, states ``s_1..s_T`` and actions
``a_1..a_{T-1}`` (``a_k`` moves frame ``k`` to ``k + 1``), and ``predict(z, a, s)`` a
block-causal predictor whose output at step ``k`` predicts frame ``k + 1``:

* teacher forcing: one parallel pass over ``z_1..z_{T-1}`` predicts ``zhat_2..zhat_T``;
  loss = mean |zhat - z| over all predicted frames, tokens and channels.
* rollout (``steps`` = R, default 2): the model's own predictions are fed back. Step 1 is
  the teacher-forced ``zhat_2``; step ``n`` runs the predictor on
  ``[z_1, zhat_2, .., zhat_n]`` with ``a_1..a_n``, ``s_1..s_n`` and keeps its last output
  ``zhat_{n+1}``. Loss = mean |[zhat_2..zhat_{R+1}] - [z_2..z_{R+1}]|. For R = 2: context
  ``[z_1, zhat_2]`` predicts ``zhat_3``, loss on ``[zhat_2, zhat_3]``; the gradient flows
  through the recurrent step into ``zhat_2``. (An early public version of V-JEPA 2-AC fed
  back another prediction than ``zhat_2``; the test suite pins the right one.)

The rollout uses the recorded states ``s_1..s_n``, as the official training code does
(``app/vjepa_droid/train.py``); planning propagates them (:mod:`jepa_wm.state_integration`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Predict = Callable[[Tensor, Tensor, Tensor], Tensor]


def latent_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error over every frame, token and channel: scalar."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return (pred - target).abs().mean()


def _check_clip(z: Tensor, actions: Tensor, states: Tensor) -> None:
    if z.ndim != 4 or z.shape[1] < 2:
        raise ValueError(f"z must be (B, T >= 2, N, D), got {tuple(z.shape)}")
    batch, frames = z.shape[:2]
    if actions.ndim != 3 or actions.shape[:2] != (batch, frames - 1):
        raise ValueError(f"actions must be ({batch}, {frames - 1}, A), got {tuple(actions.shape)}")
    if states.ndim != 3 or states.shape[:2] != (batch, frames):
        raise ValueError(f"states must be ({batch}, {frames}, S), got {tuple(states.shape)}")


def teacher_forcing(predict: Predict, z: Tensor, actions: Tensor, states: Tensor) -> Tensor:
    """Predictions of frames 2..T from frames 1..T-1 in one pass.

    Args:
        predict: the predictor, ``(B, t, N, D), (B, t, A), (B, t, S) -> (B, t, N, D)``.
        z: (B, T, N, D) target latents of the clip.
        actions: (B, T - 1, A) raw actions.
        states: (B, T, S) raw states.

    Returns:
        (B, T - 1, N, D) predictions ``zhat_2..zhat_T``.
    """
    _check_clip(z, actions, states)
    return predict(z[:, :-1], actions, states[:, :-1])


def rollout_predictions(
    predict: Predict, z: Tensor, actions: Tensor, states: Tensor, z_tf: Tensor, steps: int
) -> Tensor:
    """Autoregressive predictions ``zhat_2..zhat_{steps+1}`` started from the real ``z_1``.

    Args:
        predict, z, actions, states: as in :func:`teacher_forcing`.
        z_tf: (B, T - 1, N, D) teacher-forced predictions; ``z_tf[:, 0]`` is ``zhat_2``.
        steps: R >= 1 predicted frames; needs ``T >= R + 1``.

    Returns:
        (B, R, N, D); the gradient flows through every fed-back prediction.
    """
    _check_clip(z, actions, states)
    if not 1 <= steps <= z.shape[1] - 1:
        raise ValueError(
            f"rollout steps must be in [1, {z.shape[1] - 1}] for clips of {z.shape[1]} frames, got {steps}"
        )
    context = torch.cat((z[:, :1], z_tf[:, :1]), dim=1)  # (B, 2, N, D): [z_1, zhat_2]
    for n in range(2, steps + 1):
        z_next = predict(context, actions[:, :n], states[:, :n])[:, -1:]  # (B, 1, N, D): zhat_{n+1}
        context = torch.cat((context, z_next), dim=1)  # (B, n + 1, N, D)
    return context[:, 1:]  # (B, R, N, D)


@dataclass(frozen=True)
class Losses:
    """Scalars of one batch: ``total = teacher_forcing + rollout``."""

    total: Tensor
    teacher_forcing: Tensor
    rollout: Tensor


def predictor_losses(
    predict: Predict, z: Tensor, actions: Tensor, states: Tensor, rollout_steps: int = 2
) -> Losses:
    """Teacher-forcing + rollout loss of V-JEPA 2-AC on a batch of clips (module docstring).

    ``rollout_steps = 0`` disables the rollout term (its value is then 0).
    """
    z_tf = teacher_forcing(predict, z, actions, states)  # (B, T-1, N, D)
    tf_loss = latent_l1(z_tf, z[:, 1:])
    if rollout_steps == 0:
        return Losses(total=tf_loss, teacher_forcing=tf_loss, rollout=torch.zeros_like(tf_loss))
    z_ar = rollout_predictions(predict, z, actions, states, z_tf, rollout_steps)  # (B, R, N, D)
    ar_loss = latent_l1(z_ar, z[:, 1 : rollout_steps + 1])
    return Losses(total=tf_loss + ar_loss, teacher_forcing=tf_loss, rollout=ar_loss)
