"""The language-goal predictor and its losses: shapes, role swaps, hand-computed losses, learning, round trips."""

from __future__ import annotations

import math

import pytest
import torch

from jepa_wm.language.goal_predictor import LanguageGoalConfig, LanguageGoalPredictor
from jepa_wm.language.losses import goal_change, goal_l1, info_nce

CONFIG = LanguageGoalConfig(latent_dim=12, grid_hw=(2, 3), text_dim=10, max_stages=4, patch=1, width=16, depth=2,
                            num_heads=2)


def _inputs(batch: int = 2, words: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, 6, 12, generator=gen)
    text = torch.randn(batch, words, 10, generator=gen)
    mask = torch.ones(batch, words, dtype=torch.bool)
    return obs, text, mask


def test_shapes_and_the_untrained_goal_is_near_the_current_frame() -> None:
    predictor = LanguageGoalPredictor(CONFIG)
    obs, text, mask = _inputs()
    goals = predictor(obs, text, mask, stages=3)
    assert goals.shape == (2, 3, 6, 12)
    change = (goals - obs[:, None]).abs().detach()
    assert 0 < float(change.max()) < 0.05 * float(obs.abs().mean())  # the output layer starts small, not at zero


def test_word_order_padding_and_stages_matter_once_trained_weights_are_large() -> None:
    torch.manual_seed(0)
    predictor = LanguageGoalPredictor(CONFIG)
    torch.nn.init.normal_(predictor.out.weight, std=0.1)
    obs, text, mask = _inputs(batch=1)
    swapped = text[:, [0, 3, 2, 1, 4]]  # "put the red cube on the blue pad" -> "... blue ... red ..."
    goals = predictor(obs, text, mask, stages=2)
    assert not torch.allclose(goals, predictor(obs, swapped, mask, stages=2))
    assert not torch.allclose(goals[:, 0], goals[:, 1])  # stages differ
    # the final goal's query is shared: counted back from the end, whatever the number of stages
    torch.testing.assert_close(goals[:, -1], predictor(obs, text, mask, stages=1)[:, -1])
    # padding is ignored: extra padded words change nothing
    padded = torch.cat([text, torch.randn(1, 3, 10)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(predictor(obs, padded, padded_mask, stages=2), goals, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("change", "message"), [
    ({"obs": torch.zeros(2, 5, 12)}, r"obs_latents must be \(B, 6, 12\)"),
    ({"text": torch.zeros(2, 5, 9)}, r"text must be \(2, L <= 64, 10\)"),
    ({"mask": torch.ones(2, 5)}, "text_mask must be bool"),
    ({"mask": torch.zeros(2, 5, dtype=torch.bool)}, "at least one token"),
    ({"stages": 5}, r"stages must be an int in \[1, 4\]"),
])
def test_bad_inputs_are_one_line(change, message) -> None:
    obs, text, mask = _inputs()
    args = {"obs": obs, "text": text, "mask": mask, "stages": 2, **change}
    with pytest.raises(ValueError, match=message):
        LanguageGoalPredictor(CONFIG)(args["obs"], args["text"], args["mask"], args["stages"])


def test_goal_l1_by_hand() -> None:
    true = torch.zeros(1, 2, 1, 2)
    predicted = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])  # stage errors 2 and 2... then masked
    assert goal_l1(predicted, true).item() == pytest.approx(2.0)
    predicted[0, 1] = torch.tensor([[4.0, 6.0]])  # stage 1: mean 5
    assert goal_l1(predicted, true).item() == pytest.approx(3.5)
    assert goal_l1(predicted, true, torch.tensor([[True, False]])).item() == pytest.approx(2.0)


def test_info_nce_by_hand() -> None:
    """Two rows, unit features: p0 = t0 = e0, p1 = e1, t1 = (e0 + e1) / sqrt(2); one hard negative -e0 for row 0."""
    s = 1 / math.sqrt(2)
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [s, s]])
    T = 0.5
    # forward: row 0 logits [1, s, -1] / T (hard negative cos -1), row 1 logits [0, s] / T
    row0 = -math.log(math.exp(1 / T) / (math.exp(1 / T) + math.exp(s / T) + math.exp(-1 / T)))
    row1 = -math.log(math.exp(s / T) / (math.exp(0) + math.exp(s / T)))
    # backward: truth 0 against predictions [1, 0] / T, truth 1 against [s, s] / T
    col0 = -math.log(math.exp(1 / T) / (math.exp(1 / T) + math.exp(0)))
    col1 = -math.log(0.5)
    expected = 0.5 * ((row0 + row1) / 2 + (col0 + col1) / 2)
    negatives = torch.tensor([[[-1.0, 0.0]], [[0.0, 0.0]]])
    mask = torch.tensor([[True], [False]])  # row 1 has no hard negative
    assert info_nce(p, t, negatives, mask, temperature=T).item() == pytest.approx(expected, rel=1e-6)
    without = 0.5 * ((-math.log(math.exp(1 / T) / (math.exp(1 / T) + math.exp(s / T))) + row1) / 2 + (col0 + col1) / 2)
    assert info_nce(p, t, temperature=T).item() == pytest.approx(without, rel=1e-6)


def test_goal_change_is_the_unit_difference_from_now() -> None:
    obs = torch.ones(1, 2, 2)
    goal = obs.clone()
    goal[0, 0, 0] = 4.0  # change (3, 0, 0, 0)
    torch.testing.assert_close(goal_change(goal, obs), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


def test_a_few_steps_lower_the_loss_and_tell_instructions_apart() -> None:
    """Two instructions in one scene lead to two different goals: L1 + InfoNCE learn to tell them apart."""
    torch.manual_seed(0)
    predictor = LanguageGoalPredictor(CONFIG)
    obs, text, mask = _inputs(batch=1)
    obs = obs.expand(2, -1, -1)
    sentences = torch.cat([text, text[:, [0, 3, 2, 1, 4]]])  # roles swapped
    masks = mask.expand(2, -1)
    goals = obs[:, None] + torch.randn(2, 1, 6, 12)  # (2, 1, N, D): one final goal per instruction
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        predicted = predictor(obs, sentences, masks, stages=1)
        return goal_l1(predicted, goals) + 0.1 * info_nce(goal_change(predicted[:, -1], obs),
                                                          goal_change(goals[:, -1], obs))

    first = loss().item()
    for _ in range(150):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < 0.7 * first
    predicted = predictor(obs, sentences, masks, stages=1)[:, -1]
    distances = (predicted[:, None] - goals[None, :, -1]).abs().mean(dim=(2, 3))  # (2 predictions, 2 truths)
    assert distances.argmin(dim=1).tolist() == [0, 1]  # each sentence retrieves its own goal


def test_save_and_load_round_trip(tmp_path) -> None:
    predictor = LanguageGoalPredictor(CONFIG)
    torch.nn.init.normal_(predictor.out.weight, std=0.1)
    path = predictor.save(tmp_path / "goals.pt", meta={"text_encoder": "abc"})
    loaded, meta = LanguageGoalPredictor.load(path)
    obs, text, mask = _inputs()
    assert meta == {"text_encoder": "abc"} and loaded.config == CONFIG
    torch.testing.assert_close(loaded(obs, text, mask, 2), predictor.eval()(obs, text, mask, 2))
    with pytest.raises(FileNotFoundError, match="train_language_goals.py"):
        LanguageGoalPredictor.load(tmp_path / "missing.pt")


def test_patches_group_squares_of_the_grid_and_come_back() -> None:
    config = LanguageGoalConfig(latent_dim=3, grid_hw=(4, 2), text_dim=10, patch=2, width=16, depth=1, num_heads=2)
    predictor = LanguageGoalPredictor(config)
    grid = torch.arange(4 * 2 * 3, dtype=torch.float32).view(1, 8, 3)  # cell (r, c) is row-major index r * 2 + c
    patches = predictor._patches(grid)  # (1, 2, 12): the top 2x2 square, then the bottom one
    assert patches.shape == (1, 2, 12)
    torch.testing.assert_close(patches[0, 0], grid[0, [0, 1, 2, 3]].flatten())
    torch.testing.assert_close(predictor._unpatch(patches[:, None]), grid[:, None])
    text, mask = torch.randn(1, 4, 10), torch.ones(1, 4, dtype=torch.bool)
    assert predictor(grid, text, mask, stages=3).shape == (1, 3, 8, 3)
    with pytest.raises(ValueError, match=r"patch \(2\) must divide the grid \(3, 2\)"):
        LanguageGoalConfig(latent_dim=3, grid_hw=(3, 2), text_dim=10, patch=2)
