"""ACPredictor: token layout, block-causal attention, KV-cached decoding, normalisation, sizes."""

from __future__ import annotations

import pytest
import torch

from jepa_wm.predictor import (
    ACPredictor,
    block_causal_mask,
    count_parameters,
    predictor_config,
    step_positions,
)

GRID_HW = (2, 3)  # as in conftest
N = GRID_HW[0] * GRID_HW[1]


def test_tokens_are_interleaved_action_state_patches(predictor, random_clip):
    z, actions, states = random_clip(2, 3)
    tokens = predictor.embed_tokens(z, actions, states).view(2, 3, N + 2, -1)
    for k in range(3):
        torch.testing.assert_close(tokens[:, k, 0], predictor.action_encoder(actions[:, k]))
        torch.testing.assert_close(tokens[:, k, 1], predictor.state_encoder(states[:, k]))
        torch.testing.assert_close(tokens[:, k, 2:], predictor.predictor_embed(z[:, k]))


def test_positions_rotate_only_time_for_action_and_state_tokens():
    positions = step_positions(2, 2, GRID_HW, "cpu").view(2, N + 2, 3)
    assert positions[:, :2].tolist() == [[[2, 0, 0], [2, 0, 0]], [[3, 0, 0], [3, 0, 0]]]
    # patches: (t, h, w) in raster order
    assert positions[1, 2:].tolist() == [[3, h, w] for h in range(2) for w in range(3)]


def test_mask_is_exactly_block_causal():
    steps = torch.tensor([0, 0, 1, 1, 1, 2])
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(block_causal_mask(steps, steps), expected)


@pytest.mark.parametrize("field", ["z", "actions", "states"])
def test_later_steps_never_change_earlier_outputs(predictor, field, random_clip):
    z, actions, states = random_clip(2, 4)
    inputs = {"z": z, "actions": actions, "states": states}
    base = predictor(**inputs)
    changed = {**inputs, field: inputs[field].clone()}
    changed[field][:, 2] += 1.0  # perturb step 3 of 4
    out = predictor(**changed)
    assert torch.equal(out[:, :2], base[:, :2])  # exactly: steps 1-2 cannot see step 3
    assert not torch.allclose(out[:, 2:], base[:, 2:])  # steps 3-4 do


def test_earlier_step_changes_every_later_output(predictor, random_clip):
    z, actions, states = random_clip(1, 4)
    base = predictor(z, actions, states)
    actions2 = actions.clone()
    actions2[:, 0] += 0.5
    out = predictor(z, actions2, states)
    for k in range(4):
        assert not torch.allclose(out[:, k], base[:, k], atol=1e-6)


def test_tokens_within_a_step_see_each_other(predictor, random_clip):
    # the action token of step k shapes the prediction made at step k (same-step attention)
    z, actions, states = random_clip(1, 2)
    actions2 = actions.clone()
    actions2[:, 1] += 0.5
    assert not torch.allclose(predictor(z, actions2, states)[:, 1], predictor(z, actions, states)[:, 1])


def test_incremental_decoding_equals_full_pass(predictor, random_clip):
    z, actions, states = random_clip(3, 5)
    full = predictor(z, actions, states)
    out_a, cache = predictor.extend(z[:, :2], actions[:, :2], states[:, :2])
    outs = [out_a]
    for k in range(2, 5):
        out, cache = predictor.extend(z[:, k : k + 1], actions[:, k : k + 1], states[:, k : k + 1], cache)
        outs.append(out)
    assert cache.num_steps == 5
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)


def test_batch_one_cache_broadcasts_to_candidates(predictor, random_clip):
    z, actions, states = random_clip(1, 3)
    _, shared = predictor.extend(z[:, :2], actions[:, :2], states[:, :2])
    candidates = torch.rand(4, 1, 7) * 2 - 1
    out, _ = predictor.extend(z[:, 2:].expand(4, -1, -1, -1), candidates, states[:, 2:].expand(4, -1, -1), shared)
    for i in range(4):
        full = predictor(z, torch.cat((actions[:, :2], candidates[i : i + 1]), dim=1), states)
        torch.testing.assert_close(out[i, 0], full[0, 2], atol=1e-5, rtol=1e-5)


def test_predictions_are_layer_normed_like_targets(predictor, random_clip, tiny_config):
    out = predictor(*random_clip(2, 2))
    torch.testing.assert_close(out.mean(-1), torch.zeros(out.shape[:-1]), atol=1e-5, rtol=0)
    assert not tiny_config(normalize_output=False).normalize_output


def test_normalisation_lives_in_the_state_dict_and_is_applied_inside(random_clip, tiny_config):
    torch.manual_seed(0)
    raw = ACPredictor(tiny_config()).eval()
    reference = ACPredictor(tiny_config()).eval()
    reference.load_state_dict(raw.state_dict())
    s_mean, s_std = torch.linspace(-1, 1, 7), torch.linspace(0.5, 2, 7)
    a_mean, a_std = torch.linspace(0, 0.3, 7), torch.linspace(1, 3, 7)
    raw.set_normalization(s_mean, s_std, a_mean, a_std)
    z, actions, states = random_clip(2, 3)
    torch.testing.assert_close(
        raw(z, actions, states), reference(z, (actions - a_mean) / a_std, (states - s_mean) / s_std)
    )
    assert torch.equal(raw.state_dict()["state_std"], s_std)
    with pytest.raises(ValueError, match="positive"):
        raw.set_normalization(s_mean, -s_std, a_mean, a_std)


def test_bad_inputs_are_refused(predictor, random_clip, tiny_config):
    z, actions, states = random_clip(2, 3)
    with pytest.raises(ValueError, match="actions must be"):
        predictor(z, actions[:, :2], states)
    with pytest.raises(ValueError, match="z must be"):
        predictor(z[..., :8], actions, states)
    with pytest.raises(ValueError, match="num_heads"):
        tiny_config(num_heads=5)


def test_published_size_builds_and_runs():
    """V-JEPA 2-AC's predictor: 24 layers, width 1024, 16 heads, ViT-g tokens; ~300M parameters."""
    torch.manual_seed(0)
    config = predictor_config("vjepa2_ac", embed_dim=1408, grid_hw=(2, 2))  # tiny frames
    model = ACPredictor(config).eval()
    assert 295e6 < count_parameters(model) < 315e6
    z = torch.randn(1, 2, 4, 1408)
    with torch.no_grad():
        out = model(z, torch.zeros(1, 2, 7), torch.zeros(1, 2, 7))
    assert out.shape == (1, 2, 4, 1408) and torch.isfinite(out).all()
