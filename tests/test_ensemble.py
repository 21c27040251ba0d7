"""An ensemble of predictors predicts its members' mean; mismatched members are refused."""

from __future__ import annotations

import pytest
import torch

from jepa_wm.encoders import FrozenEncoder
from jepa_wm.ensemble import EnsembleWorldModel
from jepa_wm.planning import load_planning_world_model
from jepa_wm.predictor import ACPredictor, PredictorConfig
from jepa_wm.state_integration import StateIntegration
from jepa_wm.world_model import WorldModel
from tests.helpers import save_predictor_checkpoint, tiny_world_model, write_tiny_world_model


def other_predictor(world_model: WorldModel, seed: int, **overrides) -> WorldModel:
    """A second random predictor over ``world_model``'s encoder."""
    torch.manual_seed(seed)
    config = PredictorConfig(**{**world_model.config.__dict__, **overrides})
    return WorldModel(world_model.encoder, ACPredictor(config), world_model.integration)


def test_ensemble_rollout_is_the_members_mean():
    first = tiny_world_model()
    second = other_predictor(first, seed=1)
    ensemble = EnsembleWorldModel([first, second])
    z = first.encode(torch.zeros(3, 16, 16, dtype=torch.uint8))[None]  # (1, N, D)
    state, actions = torch.zeros(1, 7), torch.randn(5, 2, 7)  # 5 candidates, 2 steps
    with torch.no_grad():
        expected = (first.rollout(z, state, actions) + second.rollout(z, state, actions)) / 2
        got = ensemble.rollout(z, state, actions)
    assert got.shape == (5, 2, *z.shape[-2:])
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(first.rollout(z, state, actions), second.rollout(z, state, actions))
    assert ensemble.encode(torch.zeros(3, 16, 16, dtype=torch.uint8)).shape == z.shape[-2:]


def test_ensemble_refuses_mismatched_members():
    first = tiny_world_model()
    with pytest.raises(ValueError, match="at least two"):
        EnsembleWorldModel([first])
    with pytest.raises(ValueError, match="encoder of its own"):
        EnsembleWorldModel([first, tiny_world_model(seed=1)])
    with pytest.raises(ValueError, match="state_dim"):
        EnsembleWorldModel([first, other_predictor(first, seed=1, state_dim=5)])
    with pytest.raises(ValueError, match="normalize_output"):
        EnsembleWorldModel([first, other_predictor(first, seed=1, normalize_output=not first.config.normalize_output)])
    with pytest.raises(ValueError, match="integrates states differently"):
        EnsembleWorldModel([first, WorldModel(first.encoder, first.predictor, StateIntegration(pos_scale=0.1))])
    with pytest.raises(ValueError, match="rolls out in bfloat16, member 0 in float32"):
        EnsembleWorldModel([first, WorldModel(first.encoder, first.predictor, first.integration, precision="bfloat16")])


def test_planning_loads_a_list_of_predictors_as_an_ensemble(tmp_path, monkeypatch):
    encoder, predictor = write_tiny_world_model(tmp_path)
    world_model = load_planning_world_model(encoder, predictor, image_size=16)
    save_predictor_checkpoint(tmp_path / "second", other_predictor(world_model, seed=2))
    hashes, fingerprint = [], FrozenEncoder.fingerprint
    monkeypatch.setattr(FrozenEncoder, "fingerprint", lambda self: hashes.append(1) or fingerprint(self))
    ensemble = load_planning_world_model(encoder, [predictor, tmp_path / "second"], image_size=16)
    assert len(hashes) == 1  # the shared encoder is hashed once, not once per member
    assert isinstance(ensemble, EnsembleWorldModel) and len(ensemble.members) == 2
    assert all(m.encoder is ensemble.encoder for m in ensemble.members)  # one encoder, loaded once
    low = load_planning_world_model(encoder, [predictor, tmp_path / "second"], image_size=16, precision="bfloat16")
    assert low.precision == "bfloat16" and all(m.precision == "bfloat16" for m in low.members)
    single = load_planning_world_model(encoder, [predictor], image_size=16)
    assert type(single) is WorldModel
    with pytest.raises(ValueError, match="empty list"):
        load_planning_world_model(encoder, [], image_size=16)
    with pytest.raises(FileNotFoundError, match="train_predictor.py"):
        load_planning_world_model(encoder, [predictor, tmp_path / "missing"], image_size=16)
