"""The planner's cost: each core term against hand computations, and the weighted sum of terms.

:class:`FakeModel` (a :class:`jepa_wm.protocols.CostModel` whose latent is a linear map of the hand
position) and :func:`point_obs` are shared with the other tests of this package.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from jepa_wm.planning.costs import (
    ActionCost,
    BoundCost,
    Candidates,
    EnergySettings,
    LatentEnergy,
    WeightedSum,
    WorkspaceCost,
    check_prediction,
)
from jepa_wm.planning.goals import ImageGoal
from jepa_wm.protocols import CostModel, CostTerm, Goal
from planners import SubgoalConfig, WorkspaceBox
from tests.planning.fakes import (
    ConstantTerm,
    FakeModel,
    candidates,
    context,
    goal_at,
    latent_of,
    point_obs,
    render,
)


def test_the_fakes_keep_the_contracts() -> None:
    assert isinstance(FakeModel(), CostModel) and isinstance(goal_at((0.0, 0.0, 0.0)), Goal)
    for term in (LatentEnergy(), ActionCost(), WorkspaceCost(WorkspaceBox((0, 0, 0), (1, 1, 1))), ConstantTerm(0.0)):
        assert isinstance(term, CostTerm)
    model = FakeModel()
    position = (0.1, -0.2, 0.05)  # a goal image and an observation of one hand position encode alike
    torch.testing.assert_close(model.encode_goal([render(position)])[0], model.encode(point_obs(position)))


def test_latent_energy_scores_the_last_predicted_step_by_hand() -> None:
    predicted = torch.zeros(2, 3, 4, 1)  # (B=2, H=3, N=4 as a 2 x 2 grid, D=1)
    predicted[0, :2] = 5.0  # candidate 0: far off on the first steps, on the goal at the last
    predicted[1, -1, :, 0] = torch.tensor([4.0, 0.0, 0.0, 0.0])  # candidate 1: one token off at the last step
    goal = ImageGoal(("final",), torch.zeros(1, 4, 1), None, SubgoalConfig())
    cands = candidates(torch.zeros(2, 3, 3), model=FakeModel(rollout_fn=lambda a: predicted), goal=goal)
    torch.testing.assert_close(LatentEnergy()(cands), torch.tensor([0.0, 1.0]))  # l1: |4| / 4 tokens
    torch.testing.assert_close(LatentEnergy(EnergySettings("l2"))(cands), torch.tensor([0.0, 4.0]))  # 16 / 4
    # a 3 x 3 blur over the 2 x 2 grid averages all tokens: each is 1 -> l1 1, l2 1; with (1, 3) the mean
    torch.testing.assert_close(LatentEnergy(EnergySettings("l2", 3))(cands), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(LatentEnergy(EnergySettings("l2", (1, 3)))(cands), torch.tensor([0.0, 2.5]))


def test_latent_energy_toward_the_stage_in_force() -> None:
    goal = goal_at((0.0, 0.0, 0.1), (0.05, 0.0, 0.1))
    obs = point_obs((0.0, 0.0, 0.1))
    actions = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])  # one unit (0.05 m) along x, or stay
    # mean over tokens of |scale| (1.125) x mean over axes of |dx| (0.05 / 3)
    moved = 1.125 * 0.05 / 3
    torch.testing.assert_close(LatentEnergy()(candidates(actions, obs=obs, goal=goal, stage=0)),
                               torch.tensor([moved, 0.0]))
    torch.testing.assert_close(LatentEnergy()(candidates(actions, obs=obs, goal=goal, stage=1)),
                               torch.tensor([0.0, moved]))


def test_latent_energy_settings_and_build() -> None:
    term = LatentEnergy.build(context(), FakeModel(), weight=0.5, distance="l2", smoothing=[1, 3])
    assert term.weight == 0.5 and term.energy == EnergySettings("l2", (1, 3)) and term.energy.smoothing == (1, 3)
    with pytest.raises(ValueError, match="energy.distance"):
        LatentEnergy.build(context(), FakeModel(), distance="cosine")
    with pytest.raises(ValueError, match="odd"):
        EnergySettings(smoothing=2)
    with pytest.raises(ValueError, match="costs.energy.weight"):
        LatentEnergy(weight=-0.1)


def test_action_cost_by_hand() -> None:
    actions = torch.tensor([[[1.0, -2.0, 0.5, 9.0], [0.0, 1.0, -0.5, 9.0]],
                            [[0.0, 0.0, 0.0, -9.0], [0.0, 0.0, 0.0, 9.0]]])  # (B=2, H=2, A=4)
    # dims 0-2: step sums 3.5 and 1.5 -> mean 2.5; dims (1,): 2 and 1 -> 1.5; the last dim is never counted
    torch.testing.assert_close(ActionCost()(candidates(actions)), torch.tensor([2.5, 0.0]))
    torch.testing.assert_close(ActionCost(dims=[1])(candidates(actions)), torch.tensor([1.5, 0.0]))
    term = ActionCost.build(context(action_dim=4), FakeModel(), weight=0.004, dims=[0, 3])
    assert term.dims == (0, 3) and term.weight == 0.004
    with pytest.raises(ValueError, match="out of range for 4-D actions"):
        ActionCost.build(context(action_dim=4), FakeModel(), weight=0.1, dims=[4])
    for bad in ([], [-1], [0, 0]):
        with pytest.raises(ValueError, match="costs.action.dims"):
            ActionCost(dims=bad)


def test_workspace_cost_is_zero_inside_and_l1_over_pos_scale_outside() -> None:
    box = WorkspaceBox(low=(-0.1, -0.1, 0.0), high=(0.1, 0.1, 0.2))
    obs = point_obs((0.0, 0.0, 0.1))  # the hand in the middle of the box
    actions = torch.tensor([[[2.0, 0.0, 0.0], [0.0, -2.0, 1.0]],    # (0.1, 0, 0.1), (0.1, -0.1, 0.15): on edges
                            [[3.0, 0.0, 0.0], [0.0, -3.0, 0.0]]])   # (0.15, 0, 0.1): 0.05 m out; then 0.05 + 0.05
    term = WorkspaceCost(box)
    # 0.05 m = 1 unit at 0.05 m per unit: mean over steps (1 + 2) / 2
    torch.testing.assert_close(term(candidates(actions, obs=obs)), torch.tensor([0.0, 1.5]))
    # at 0.1 m per unit the same actions go twice as far, and a unit is 0.1 m: the first candidate reaches
    # (0.2, 0, 0.1), 1 unit out, then (0.2, -0.2, 0.2), 2 units; the second (0.3, 0, 0.1), 2 units, then
    # (0.3, -0.3, 0.1), 4 units
    far = FakeModel(pos_scale=0.1)
    torch.testing.assert_close(term(candidates(actions, model=far, obs=obs)), torch.tensor([1.5, 3.0]))
    # from a hand already outside: the start counts too (positions, not deltas)
    outside = point_obs((0.0, 0.0, 0.25))
    torch.testing.assert_close(term(candidates(torch.zeros(1, 2, 3), obs=outside)), torch.tensor([1.0]))


def test_workspace_cost_build() -> None:
    term = WorkspaceCost.build(context(view_box=(np.array([-0.1, -0.2, 0.0]), np.array([0.1, 0.2, 0.3]))),
                               FakeModel(), weight=2.0)
    assert term.box == WorkspaceBox((-0.1, -0.2, 0.0), (0.1, 0.2, 0.3)) and term.weight == 2.0
    term = WorkspaceCost.build(context(), FakeModel(), box=[[0, 0, 0], [1, 1, 1]])
    assert term.box == WorkspaceBox((0, 0, 0), (1, 1, 1)) and term.weight == 1.0
    with pytest.raises(ValueError, match="task 'toy' defines no view box"):
        WorkspaceCost.build(context(), FakeModel())
    for bad in ("room", [[0, 0, 0]], 3):
        with pytest.raises(ValueError, match="costs.workspace.box"):
            WorkspaceCost.build(context(), FakeModel(), box=bad)


def test_weighted_sum_adds_weights_times_terms_and_skips_zero_weights() -> None:
    actions = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])  # (B=2, H=1, A=3)
    skipped = ConstantTerm(float("nan"), weight=0.0)  # never called: its NaN would spoil the sum
    cost = WeightedSum({"energy": LatentEnergy(weight=2.0), "action": ActionCost(weight=0.5),
                        "constant": ConstantTerm(3.0, weight=0.1), "skipped": skipped})
    cands = candidates(actions)
    expected = 2.0 * LatentEnergy()(cands) + 0.5 * torch.tensor([1.0, 0.0]) + 0.1 * 3.0
    torch.testing.assert_close(cost(cands), expected)
    assert skipped.calls == 0
    only_zero = WeightedSum({"skipped": ConstantTerm(1.0, weight=0.0)})
    torch.testing.assert_close(only_zero(cands), torch.zeros(2))
    goal, model = goal_at((0.0, 0.0, 0.0)), FakeModel()
    cost.reset(goal, model)
    assert skipped.resets == [(goal, model)] and cost.terms["constant"].resets == [(goal, model)]
    assert list(cost.terms) == ["energy", "action", "constant", "skipped"]


def test_weighted_sum_rejects_bad_terms() -> None:
    with pytest.raises(ValueError, match="at least one term"):
        WeightedSum({})
    with pytest.raises(TypeError, match="costs.energy must be a cost term"):
        WeightedSum({"energy": lambda candidates: candidates.actions.sum((1, 2))})
    with pytest.raises(TypeError, match="costs.box must be a cost term"):
        WeightedSum({"box": WorkspaceBox((0, 0, 0), (1, 1, 1))})
    for bad in (-1.0, True, "1", float("nan")):
        with pytest.raises(ValueError, match="costs.bad.weight"):
            WeightedSum({"ok": ConstantTerm(1.0), "bad": ConstantTerm(1.0, weight=bad)})


def test_the_rollout_is_computed_once_per_call_for_all_terms() -> None:
    model = FakeModel()
    cost = WeightedSum({"l1": LatentEnergy(), "l2": LatentEnergy(EnergySettings("l2"), weight=3.0),
                        "action": ActionCost(weight=1.0)})
    obs, goal = point_obs((0.0, 0.0, 0.1)), goal_at((0.05, 0.0, 0.1))
    bound = cost.bind(model, obs, goal, 0)
    assert isinstance(bound, BoundCost)
    actions = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    value = bound(actions)
    assert value.shape == (5,) and model.calls["rollout"] == 1
    predicted = latent_of(torch.as_tensor(obs["state"][:3]) + 0.05 * actions.cumsum(1))[:, -1]
    goal_latent = goal.latents[0]
    by_hand = ((predicted - goal_latent).abs().mean((1, 2)) + 3.0 * (predicted - goal_latent).square().mean((1, 2))
               + actions.abs().sum(-1).mean(-1))
    torch.testing.assert_close(value, by_hand)
    bound(actions)
    assert model.calls["rollout"] == 2  # once per call, not cached across calls
    ActionCost(weight=1.0)(Candidates(actions, obs, goal, 0, model))
    assert model.calls["rollout"] == 2  # a term that does not read the prediction costs no rollout


def test_bound_cost_lives_on_the_goal_latents_device() -> None:
    goal = ImageGoal(("final",), torch.zeros(1, 4, 3, device="meta"), None, SubgoalConfig())
    bound = WeightedSum({"energy": LatentEnergy()}).bind(FakeModel(), point_obs((0, 0, 0)), goal, 0)
    assert bound.device == torch.device("meta")
    assert WeightedSum({"energy": LatentEnergy()}).bind(FakeModel(), point_obs((0, 0, 0)), goal_at((0, 0, 0)),
                                                        0).device == torch.device("cpu")


def test_a_term_refuses_a_model_that_predicts_something_else() -> None:
    objects = FakeModel(prediction="object")
    with pytest.raises(ValueError, match=r"costs\.energy scores predicted latents; the world model \(FakeModel\) "
                                         r"predicts object") as err:
        LatentEnergy.build(context(), objects)
    assert "costs.energy=null" in str(err.value)
    with pytest.raises(ValueError, match=r"costs\.my_term .* predicts None"):
        check_prediction(SimpleNamespace(), "latents", "my_term")
    check_prediction(FakeModel(), "latents", "energy")  # a latent model passes
    check_prediction(objects, "object", "object")
