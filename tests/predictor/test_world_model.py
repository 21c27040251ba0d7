"""WorldModel: encode / rollout contract, cached rollouts vs recomputation, checkpoints."""

from __future__ import annotations

import logging

import pytest
import torch

from jepa_wm.encoders import FrozenEncoder, VisionTransformer, vit_config
from jepa_wm.predictor import ACPredictor, PredictorConfig
from jepa_wm.protocols import LatentWorldModel
from jepa_wm.state_integration import StateIntegration
from jepa_wm.training import save_checkpoint
from jepa_wm.world_model import (
    WorldModel, _warn_emulated_bf16, cpu_has_native_bf16, encoder_pool, load_world_model,
    read_predictor_checkpoint,
)
from tests.helpers import save_predictor_checkpoint

IMG = 16  # patch 8 -> 2 x 2 tokens of width 24


def make_encoder(seed: int = 0, **overrides) -> FrozenEncoder:
    torch.manual_seed(seed)
    config = vit_config("tiny", **{"img_size": IMG, "embed_dim": 24, "depth": 1, "num_heads": 2, **overrides})
    return FrozenEncoder(VisionTransformer(config))


def make_predictor(encoder: FrozenEncoder) -> ACPredictor:
    torch.manual_seed(1)
    config = PredictorConfig(
        embed_dim=encoder.embed_dim, grid_hw=encoder.grid_hw, predictor_embed_dim=24, depth=2, num_heads=2
    )
    predictor = ACPredictor(config)
    predictor.set_normalization(torch.zeros(7), torch.full((7,), 0.1), torch.zeros(7), torch.full((7,), 0.5))
    return predictor


@pytest.fixture
def world_model() -> WorldModel:
    encoder = make_encoder()
    return WorldModel(encoder, make_predictor(encoder), StateIntegration(gripper_open=0.08))


def context(world_model: WorldModel, frames: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (frames, 3, IMG, IMG), dtype=torch.uint8, generator=generator)
    states = torch.randn(frames, 7, generator=generator) * 0.1
    return world_model.encode(images), states  # (C, N, D), (C, 7)


def recompute(world_model: WorldModel, z_ctx, states, actions, past=None):
    """Rollout by re-running the full predictor on the whole sequence at every step:
    recorded context frames and states, then predicted frames and integrated states."""
    predictor, integrate = world_model.predictor, world_model.integration
    z_seq, s_seq, out = z_ctx, states, []
    a_seq = actions[:, :0] if past is None else past
    for k in range(actions.shape[1]):
        a_seq = torch.cat((a_seq, actions[:, k : k + 1]), dim=1)
        z_next = predictor(z_seq, a_seq, s_seq)[:, -1:]
        out.append(z_next)
        z_seq = torch.cat((z_seq, z_next), dim=1)
        s_seq = torch.cat((s_seq, integrate(s_seq[:, -1:], actions[:, k : k + 1])), dim=1)
    return torch.cat(out, dim=1)


def test_is_a_latent_world_model_and_encodes_any_leading_shape(world_model):
    assert isinstance(world_model, LatentWorldModel)
    images = torch.randint(0, 256, (2, 3, 3, IMG, IMG), dtype=torch.uint8)
    z = world_model.encode(images)
    assert z.shape == (2, 3, 4, 24)
    torch.testing.assert_close(world_model.encode(images[1, 2]), z[1, 2])
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        world_model.encode(images.permute(0, 1, 3, 4, 2))


def test_cached_rollout_equals_full_recomputation(world_model):
    z, states = context(world_model, 1)
    actions = torch.rand(5, 4, 7) * 2 - 1
    with torch.no_grad():
        fast = world_model.rollout(z, states, actions)
        slow = recompute(world_model, z.expand(5, -1, -1, -1), states.expand(5, -1, -1), actions)
    assert fast.shape == (5, 4, 4, 24)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_multi_frame_context_is_shared_by_all_candidates(world_model):
    z, states = context(world_model, 3)
    past = torch.rand(2, 7) * 2 - 1
    actions = torch.rand(4, 2, 7) * 2 - 1
    with torch.no_grad():
        shared = world_model.rollout(z, states, actions, past_actions=past)
        batched = world_model.rollout(
            z.expand(4, -1, -1, -1), states.expand(4, -1, -1), actions, past_actions=past.expand(4, -1, -1)
        )
        slow = recompute(
            world_model, z.expand(4, -1, -1, -1), states.expand(4, -1, -1), actions, past.expand(4, -1, -1)
        )
    torch.testing.assert_close(shared, batched, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared, slow, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="past_actions"):
        world_model.rollout(z, states, actions)


def test_rollout_is_differentiable_in_the_actions(world_model):
    z, states = context(world_model, 1)
    actions = torch.zeros(2, 3, 7, requires_grad=True)
    world_model.rollout(z, states, actions)[:, -1].abs().mean().backward()
    assert actions.grad[:, 0].abs().sum() > 0
    assert all(p.grad is None for p in world_model.parameters())


def test_bfloat16_rollouts_return_float32_close_to_float32_ones(world_model):
    fast = WorldModel(world_model.encoder, world_model.predictor, world_model.integration, precision="bfloat16")
    z, states = context(world_model, 1)
    actions = torch.rand(6, 2, 7) * 2 - 1
    with torch.no_grad():
        reference, low = world_model.rollout(z, states, actions), fast.rollout(z, states, actions)
    assert low.dtype == torch.float32 and low.shape == reference.shape
    assert not torch.equal(low, reference)  # the matrix products did run in bf16
    torch.testing.assert_close(low, reference, atol=0.1, rtol=0.05)  # bf16 keeps 8 bits of mantissa
    actions.requires_grad_(True)
    fast.rollout(z, states, actions)[:, -1].abs().mean().backward()  # the gradient planner's path
    assert actions.grad.dtype == torch.float32 and actions.grad[:, 0].abs().sum() > 0
    with pytest.raises(ValueError, match=r"precision must be one of \['bfloat16', 'float32'\], got 'float16'"):
        WorldModel(world_model.encoder, world_model.predictor, precision="float16")


def test_bfloat16_on_a_cpu_without_native_bf16_warns(world_model, monkeypatch, caplog):
    monkeypatch.setattr("jepa_wm.world_model.cpu_has_native_bf16", lambda: False)
    _warn_emulated_bf16.cache_clear()  # once per process: another test may have logged it already
    with caplog.at_level(logging.WARNING, logger="jepa_wm.world_model"):
        WorldModel(world_model.encoder, world_model.predictor, precision="float32")
        assert caplog.text == ""
        WorldModel(world_model.encoder, world_model.predictor, precision="bfloat16")
        WorldModel(world_model.encoder, world_model.predictor, precision="bfloat16")  # e.g. an ensemble's members
    assert "without native bf16" in caplog.text and "world_model.precision=float32" in caplog.text
    assert caplog.text.count("without native bf16") == 1
    assert isinstance(cpu_has_native_bf16(), bool)


def test_checkpoint_round_trip(tmp_path, world_model):
    save_predictor_checkpoint(tmp_path / "run", world_model)
    loaded = load_world_model(tmp_path / "run", world_model.encoder)  # run dir -> latest checkpoint
    assert loaded.integration == world_model.integration
    assert loaded.config == world_model.config
    assert loaded.precision == "float32"
    assert load_world_model(tmp_path / "run", world_model.encoder, precision="bfloat16").precision == "bfloat16"
    torch.testing.assert_close(loaded.predictor.state_std, torch.full((7,), 0.1))
    z, states = context(world_model, 1)
    actions = torch.rand(3, 2, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded.rollout(z, states, actions), world_model.rollout(z, states, actions))


def test_loader_refuses_mismatches(tmp_path, world_model):
    path = save_predictor_checkpoint(tmp_path / "run", world_model)
    with pytest.raises(ValueError, match="embed_dim=24"):
        load_world_model(path, make_encoder(embed_dim=36))
    with pytest.raises(ValueError, match="grid_hw"):
        load_world_model(path, make_encoder(img_size=24))
    with pytest.raises(ValueError, match="img_hw"):
        load_world_model(path, make_encoder(img_size=32, patch_size=16))
    with pytest.raises(ValueError, match="6-D actions|7-D actions"):
        load_world_model(path, world_model.encoder, action_dim=6)
    with pytest.raises(ValueError, match="weights hash"):
        load_world_model(path, make_encoder(seed=5))
    assert load_world_model(path, make_encoder(seed=5), check_fingerprint=False) is not None
    other = make_encoder(seed=5)
    with pytest.raises(ValueError, match="weights hash"):  # a given fingerprint is the one checked
        load_world_model(path, world_model.encoder, fingerprint=other.fingerprint())
    assert load_world_model(path, other, fingerprint=world_model.encoder.fingerprint()) is not None


def test_loader_refuses_other_files(tmp_path, world_model):
    other = save_checkpoint(tmp_path / "pretrain", step=1, models={"encoder": world_model.encoder.vit})
    with pytest.raises(ValueError, match="not an action-conditioned predictor"):
        load_world_model(other, world_model.encoder)
    garbage = tmp_path / "notes.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ValueError):
        load_world_model(garbage, world_model.encoder)
    with pytest.raises(FileNotFoundError):
        load_world_model(tmp_path / "missing.pt", world_model.encoder)


def test_checkpoint_records_token_pooling(tmp_path):
    """A predictor trained on pooled latents needs the encoder pooled the same way."""
    pooled = FrozenEncoder(make_encoder(img_size=32).vit, pool=2)  # 4x4 grid -> 2x2 tokens
    world_model = WorldModel(pooled, make_predictor(pooled))
    path = save_predictor_checkpoint(tmp_path / "run", world_model)
    assert encoder_pool(read_predictor_checkpoint(path)) == 2
    with pytest.raises(ValueError, match="pool=2, the given encoder has pool=1"):
        load_world_model(path, FrozenEncoder(pooled.vit))
    loaded = load_world_model(path, FrozenEncoder(pooled.vit, pool=2))
    assert loaded.encoder.num_patches == 4
