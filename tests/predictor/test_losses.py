"""Teacher-forcing and rollout losses on hand-computed examples."""

from __future__ import annotations

import pytest
import torch

from jepa_wm.losses import latent_l1, predictor_losses, rollout_predictions, teacher_forcing


def shift_predictor(z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """A block-causal "predictor" computable by hand: frame k + 1 = frame k + action_k[0]
    + 10 * state_k[0] (every token and channel)."""
    return z + actions[..., :1, None] + 10 * states[..., :1, None]


def clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One clip of 4 frames with 1 token of 1 channel: z = [0, 1, 3, 6]."""
    z = torch.tensor([0.0, 1.0, 3.0, 6.0]).view(1, 4, 1, 1)
    actions = torch.tensor([1.0, 1.0, 1.0]).view(1, 3, 1).expand(1, 3, 7).clone()
    states = torch.zeros(1, 4, 7)
    return z, actions, states


def test_latent_l1_is_mean_absolute_error():
    pred = torch.tensor([[1.0, -2.0], [0.0, 4.0]])
    assert latent_l1(pred, torch.zeros(2, 2)).item() == pytest.approx(7.0 / 4)
    with pytest.raises(ValueError, match="shape"):
        latent_l1(pred, torch.zeros(2, 3))


def test_teacher_forcing_predicts_each_frame_from_the_true_previous_one():
    z, actions, states = clip()
    z_tf = teacher_forcing(shift_predictor, z, actions, states)
    assert z_tf.flatten().tolist() == [1.0, 2.0, 4.0]  # z_k + 1 for z = 0, 1, 3
    # errors vs z_2..z_4 = [1, 3, 6]: 0, 1, 2 -> mean 1
    losses = predictor_losses(shift_predictor, z, actions, states, rollout_steps=0)
    assert losses.teacher_forcing.item() == pytest.approx(1.0)
    assert losses.rollout.item() == 0.0 and losses.total.item() == pytest.approx(1.0)


def test_rollout_feeds_back_the_first_prediction():
    z, actions, states = clip()
    states[:, 1, 0] = 0.1  # s_2 adds 1 to the step taken from frame 2
    z_tf = teacher_forcing(shift_predictor, z, actions, states)  # zhat_2 = 1
    z_ar = rollout_predictions(shift_predictor, z, actions, states, z_tf, steps=3)
    # zhat_2 = z_1 + 1 = 1; zhat_3 = zhat_2 + 1 + 1 (state) = 3; zhat_4 = zhat_3 + 1 = 4
    assert z_ar.flatten().tolist() == pytest.approx([1.0, 3.0, 4.0])
    # with the default 2 steps: context [z_1, zhat_2] -> zhat_3; loss on [zhat_2, zhat_3] vs [1, 3]
    losses = predictor_losses(shift_predictor, z, actions, states)
    assert losses.rollout.item() == pytest.approx(0.0)
    # teacher forcing with the true z_2 = 1: zhat_3 = 1 + 2 = 3 (right), zhat_4 = 3 + 1 = 4 (off by 2)
    assert losses.teacher_forcing.item() == pytest.approx(2.0 / 3)
    assert losses.total.item() == pytest.approx(2.0 / 3)


def test_rollout_differs_from_teacher_forcing_when_predictions_are_wrong():
    z, actions, states = clip()
    z[:, 1] = 5.0  # the true frame 2 is far from zhat_2 = 1
    z_tf = teacher_forcing(shift_predictor, z, actions, states)
    z_ar = rollout_predictions(shift_predictor, z, actions, states, z_tf, steps=2)
    assert z_tf[0, 1].item() == 6.0  # teacher forcing continues from the true z_2 = 5
    assert z_ar[0, 1].item() == 2.0  # the rollout continues from its own zhat_2 = 1


def test_rollout_gradient_reaches_the_first_prediction(predictor, random_clip):
    z, actions, _ = random_clip(2, 3)
    states = torch.zeros(2, 3, 7)
    z_tf = teacher_forcing(predictor, z, actions[:, :2], states).detach().requires_grad_(True)
    z_ar = rollout_predictions(predictor, z, actions[:, :2], states, z_tf, steps=2)
    z_ar[:, 1].abs().mean().backward()  # the second rollout frame only
    grad = z_tf.grad
    assert grad[:, 0].abs().sum() > 0  # through the recurrent step into zhat_2
    assert grad[:, 1].abs().sum() == 0  # zhat_3 of teacher forcing is not part of the rollout


def test_losses_refuse_misaligned_clips():
    z, actions, states = clip()
    with pytest.raises(ValueError, match="actions must be"):
        predictor_losses(shift_predictor, z, actions[:, :2], states)
    with pytest.raises(ValueError, match="rollout steps"):
        predictor_losses(shift_predictor, z, actions, states, rollout_steps=4)
