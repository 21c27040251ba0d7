"""EMA update, L1 loss on layer-normed targets, stop-gradient, predictor shapes, collapse signal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jepa_wm.encoders import VisionTransformer, ViTConfig, apply_masks
from jepa_wm.pretrain import (
    JEPA,
    BlockMaskSpec,
    MaskedPredictor,
    MomentumSchedule,
    MultiBlockMasker,
    PredictorConfig,
    ema_update,
    feature_std,
    jepa_l1_loss,
)


def test_ema_update_matches_hand_computation() -> None:
    target, online = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        target.weight.copy_(torch.tensor([[1.0, 2.0]]))
        target.bias.fill_(0.0)
        online.weight.copy_(torch.tensor([[3.0, -2.0]]))
        online.bias.fill_(1.0)
    ema_update(target, online, momentum=0.75)
    # 0.75 * [1, 2] + 0.25 * [3, -2] = [1.5, 1.0]; bias 0.75 * 0 + 0.25 * 1
    assert torch.allclose(target.weight, torch.tensor([[1.5, 1.0]]))
    assert torch.allclose(target.bias, torch.tensor([0.25]))
    assert torch.equal(online.weight, torch.tensor([[3.0, -2.0]]))  # online untouched


def test_momentum_schedule_is_linear_and_clamped() -> None:
    schedule = MomentumSchedule(0.99, 0.999, total_steps=100)
    assert schedule.at(0) == pytest.approx(0.99)
    assert schedule.at(50) == pytest.approx(0.9945)
    assert schedule.at(100) == pytest.approx(0.999) and schedule.at(500) == pytest.approx(0.999)


def test_l1_loss_on_gathered_targets_hand_computed() -> None:
    targets = torch.tensor([[[1.0, -1.0], [2.0, 0.0], [0.0, 4.0]]])  # (1, 3, 2)
    predictions = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])  # predicts tokens 2 and 0
    target_ids = torch.tensor([[2, 0]])
    # |0-0| + |0-4| + |1-1| + |1+1| = 6 over 4 entries
    assert float(jepa_l1_loss(predictions, targets, target_ids)) == pytest.approx(1.5)


def test_feature_std_hand_computed() -> None:
    features = torch.tensor([[[0.0, 1.0], [2.0, 1.0]]])  # per-dim std: [sqrt(2), 0]
    assert float(feature_std(features)) == pytest.approx(2**0.5 / 2)
    assert float(feature_std(torch.ones(2, 5, 3))) == 0.0


@pytest.fixture
def jepa(micro_vit: ViTConfig, micro_predictor: PredictorConfig) -> JEPA:
    torch.manual_seed(0)
    model = JEPA(VisionTransformer(micro_vit), MaskedPredictor(micro_predictor))
    with torch.no_grad():  # make the target differ from the context encoder
        for p in model.target_encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_loss_is_l1_to_layer_normed_target_features_without_target_gradient(
    jepa: JEPA, micro_masks: tuple[BlockMaskSpec, ...]
) -> None:
    video = torch.randn(3, 3, 4, 16, 16)
    pairs = MultiBlockMasker((2, 4, 4), micro_masks)(3, torch.Generator().manual_seed(0))
    loss, target_std = jepa(video, pairs)

    raw = jepa.target_encoder(video).detach()  # (B, N, D), final LayerNorm with affine
    normed = (raw - raw.mean(-1, keepdim=True)) / torch.sqrt(raw.var(-1, unbiased=False, keepdim=True) + 1e-5)
    expected = []
    for i, pair in enumerate(pairs):
        context = jepa.encoder(video, masks=pair.context)
        pred = jepa.predictor(context, pair.context, pair.target, (4, 4), i)
        expected.append((pred - apply_masks(normed, [pair.target])).abs().mean())
    assert float(loss.detach()) == pytest.approx(float(torch.stack(expected).mean().detach()), rel=1e-5)
    assert float(target_std) == pytest.approx(float(feature_std(F.layer_norm(raw, (raw.shape[-1],)))), rel=1e-5)

    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in jepa.target_encoder.parameters())
    assert all(p.grad is not None for p in jepa.encoder.parameters())
    assert all(p.grad is not None for p in jepa.predictor.parameters())


def test_predictor_returns_one_prediction_per_target(jepa: JEPA) -> None:
    context = torch.randn(2, 5, 48)
    context_ids = torch.tensor([[0, 3, 7, 9, 20], [1, 2, 5, 30, 31]])
    target_ids = torch.tensor([[4, 5, 6], [0, 10, 11]])
    out = jepa.predictor(context, context_ids, target_ids, (4, 4), mask_index=1)
    assert out.shape == (2, 3, 48)
    # a target's prediction depends on its position (RoPE), not on where it sits in the list
    swapped = jepa.predictor(context, context_ids, target_ids.flip(1), (4, 4), mask_index=1)
    assert torch.allclose(swapped.flip(1), out, atol=1e-5)
    with pytest.raises(ValueError, match="mask_index"):
        jepa.predictor(context, context_ids, target_ids, (4, 4), mask_index=2)


def test_update_target_moves_only_the_target(jepa: JEPA) -> None:
    before = [p.clone() for p in jepa.target_encoder.parameters()]
    online = [p.clone() for p in jepa.encoder.parameters()]
    jepa.update_target(0.9)
    for b, o, now in zip(before, online, jepa.target_encoder.parameters()):
        assert torch.allclose(now, 0.9 * b + 0.1 * o, atol=1e-6)
    assert all(torch.equal(o, p) for o, p in zip(online, jepa.encoder.parameters()))
