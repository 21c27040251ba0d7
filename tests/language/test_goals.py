"""TextGoals: a sentence and the first frame become a Goal the agent plans toward."""

from __future__ import annotations

import pytest
import torch

from jepa_wm.language.goal_predictor import LanguageGoalConfig, LanguageGoalPredictor
from jepa_wm.language.goals import TextGoals
from jepa_wm.language.text_encoder import load_text_encoder
from jepa_wm.planning.agent import MPCAgent
from jepa_wm.planning.costs import EnergySettings, LatentEnergy, WeightedSum
from jepa_wm.protocols import Goal
from planners import CEM, ActionSpace, CEMConfig
from tests.planning.fakes import FakeModel, point_obs

SENTENCE, SWAPPED = "put the red cube on the blue pad", "put the blue cube on the red pad"


@pytest.fixture(scope="module")
def text_encoder():
    return load_text_encoder()


@pytest.fixture
def goals(text_encoder) -> TextGoals:
    torch.manual_seed(0)
    predictor = LanguageGoalPredictor(LanguageGoalConfig(latent_dim=3, grid_hw=(2, 2), text_dim=text_encoder.dim,
                                                         width=16, depth=1, num_heads=2))
    torch.nn.init.normal_(predictor.out.weight, std=0.1)  # an untrained output layer predicts nearly "as now"
    return TextGoals(predictor, text_encoder, steps_per_goal=(5,))


def test_a_sentence_becomes_a_goal_the_agent_takes(goals) -> None:
    model, obs = FakeModel(), point_obs((0.0, 0.0, 0.1))
    goal = goals.goal(model, obs, SENTENCE, names=("grasped", "final"))
    assert isinstance(goal, Goal) and goal.names == ("grasped", "final") and goal.images is None
    assert goal.latents.shape == (2, 4, 3) and goal.schedule.steps_per_goal == (5,)
    planner = CEM(CEMConfig(num_samples=16, iterations=2, topk=4), ActionSpace(dim=3), seed=0)
    agent = MPCAgent(model, planner, WeightedSum({"energy": LatentEnergy()}), EnergySettings("l1"))
    agent.reset(goal, obs, seed=0)
    assert agent.act(obs).action.shape == (3,)


def test_roles_swapped_give_another_goal_and_sentences_are_encoded_once(goals, monkeypatch) -> None:
    model, obs = FakeModel(), point_obs((0.0, 0.0, 0.1))
    calls = []
    encode = goals.text_encoder.encode
    monkeypatch.setattr(goals.text_encoder, "encode", lambda s: calls.append(s) or encode(s))
    first = goals.goal(model, obs, SENTENCE, names=("final",))
    again = goals.goal(model, obs, "  put the red cube  on the blue pad ", names=("final",))
    swapped = goals.goal(model, obs, SWAPPED, names=("final",))
    torch.testing.assert_close(first.latents, again.latents)
    assert not torch.allclose(first.latents, swapped.latents)
    assert calls == [[SENTENCE], [SWAPPED]]


@pytest.mark.parametrize(("sentence", "names", "message"), [
    ("", ("final",), "an instruction must be a non-empty sentence, got ''"),
    ("   ", ("final",), "non-empty sentence"),
    (None, ("final",), "non-empty sentence, got None"),
    (SENTENCE, (), "at least one stage name"),
])
def test_bad_sentences_and_stages_are_one_line(goals, sentence, names, message) -> None:
    with pytest.raises(ValueError, match=message):
        goals.goal(FakeModel(), point_obs((0.0, 0.0, 0.1)), sentence, names)


def test_a_predictor_of_another_encoder_is_refused(text_encoder) -> None:
    predictor = LanguageGoalPredictor(LanguageGoalConfig(latent_dim=5, grid_hw=(2, 2), text_dim=text_encoder.dim,
                                                         width=16, depth=1, num_heads=2))
    with pytest.raises(ValueError, match=r"trained on latents \(4, 5\); this world model's are \(4, 3\)"):
        TextGoals(predictor, text_encoder).goal(FakeModel(), point_obs((0.0, 0.0, 0.1)), SENTENCE, ("final",))
    small = LanguageGoalPredictor(LanguageGoalConfig(latent_dim=3, grid_hw=(2, 2), text_dim=8))
    with pytest.raises(ValueError, match="takes 8-wide text features, the text encoder gives 384"):
        TextGoals(small, text_encoder)
