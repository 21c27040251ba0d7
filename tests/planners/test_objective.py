"""The latent energy against hand computations, and LatentGoalCost as a planner's cost."""

from __future__ import annotations

import pytest
import torch

from planners import CEM, ActionSpace, CEMConfig, LatentGoalCost, ObjectiveConfig, change_token_weights, latent_energy
from planners.objective import smooth_tokens, view_grids


def test_l1_and_l2_by_hand() -> None:
    z_pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]],
                           [[0.0, 0.0], [0.0, 0.0]]])  # (B=2, N=2, D=2)
    goal = torch.tensor([[1.0, 0.0], [0.0, 4.0]])  # (N, D)
    # candidate 0: |diff| = [0, 2, 3, 0] -> mean 5/4; squared [0, 4, 9, 0] -> 13/4
    # candidate 1: |diff| = [1, 0, 0, 4] -> 5/4;     squared [1, 0, 0, 16] -> 17/4
    torch.testing.assert_close(latent_energy(z_pred, goal, "l1"), torch.tensor([1.25, 1.25]))
    torch.testing.assert_close(latent_energy(z_pred, goal, "l2"), torch.tensor([3.25, 4.25]))
    torch.testing.assert_close(latent_energy(z_pred, z_pred, "l1"), torch.zeros(2))  # per-candidate goal


def test_energy_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"z_pred must be \(B, N, D\)"):
        latent_energy(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="z_goal"):
        latent_energy(torch.zeros(2, 3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="distance"):
        latent_energy(torch.zeros(2, 3, 4), torch.zeros(3, 4), "cosine")
    with pytest.raises(ValueError, match="steps"):
        ObjectiveConfig(steps="first")


def _linear_rollout(actions: torch.Tensor) -> torch.Tensor:
    """Toy 'world model': the latent after step t is the running sum of actions, one token.

    actions (B, H, A) -> z (B, H, N=1, D=A)."""
    return actions.cumsum(dim=1)[:, :, None, :]


def test_latent_goal_cost_last_vs_sum() -> None:
    actions = torch.tensor([[[1.0, 0.0], [1.0, 2.0]]])  # (B=1, H=2, A=2): latents (1, 0) then (2, 2)
    goal = torch.tensor([[2.0, 1.0]])  # (N=1, D=2)
    last = LatentGoalCost(_linear_rollout, goal)
    # last step: |(2, 2) - (2, 1)| -> mean(0, 1) = 0.5
    torch.testing.assert_close(last(actions), torch.tensor([0.5]))
    summed = LatentGoalCost(_linear_rollout, goal, ObjectiveConfig(distance="l2", steps="sum"))
    # step 1: (1, 0) - (2, 1) -> mean(1, 1) = 1; step 2: mean(0, 1) = 0.5 -> 1.5
    torch.testing.assert_close(summed(actions), torch.tensor([1.5]))
    assert last.device == goal.device


def test_latent_goal_cost_accepts_final_only_rollouts() -> None:
    goal = torch.zeros(1, 2)
    final_only = LatentGoalCost(lambda a: _linear_rollout(a)[:, -1], goal)
    actions = torch.ones(3, 2, 2)
    torch.testing.assert_close(final_only(actions), torch.full((3,), 2.0))
    with pytest.raises(ValueError, match="rollout must return"):
        LatentGoalCost(lambda a: _linear_rollout(a)[:, -1], goal, ObjectiveConfig(steps="sum"))(actions)
    with pytest.raises(ValueError, match="goal must be a latent"):
        LatentGoalCost(_linear_rollout, torch.zeros(2))


def test_planner_reaches_a_latent_goal_through_the_cost() -> None:
    """CEM only sees LatentGoalCost: it finds actions whose predicted latent hits the goal."""
    goal = torch.tensor([[0.5, -0.25]])
    cost = LatentGoalCost(_linear_rollout, goal)
    planner = CEM(CEMConfig(horizon=2, num_samples=200, iterations=8), ActionSpace(dim=2), seed=0)
    result = planner.plan(cost)
    torch.testing.assert_close(result.actions.sum(0), goal[0], atol=0.02, rtol=0)
    assert result.cost < 0.02


def test_action_cost_by_hand_and_what_it_decides() -> None:
    actions = torch.tensor([[[1.0, 0.0], [1.0, 2.0]]])  # (B=1, H=2, A=2)
    goal = torch.tensor([[2.0, 1.0]])
    weighted = LatentGoalCost(_linear_rollout, goal, ObjectiveConfig(action_weight=0.1, action_dims=[1]))
    # energy 0.5 (above) + 0.1 * mean_t |a[t, 1]| = 0.1 * (0 + 2) / 2
    torch.testing.assert_close(weighted(actions), torch.tensor([0.6]))
    # an energy that cannot tell dim 1 apart (the rollout ignores it): the weight keeps it still
    blind = lambda a: _linear_rollout(a * torch.tensor([1.0, 0.0]))  # noqa: E731
    space = ActionSpace(dim=2)
    for weight, still in ((0.0, False), (0.05, True)):
        cost = LatentGoalCost(blind, torch.tensor([[0.5, 0.0]]), ObjectiveConfig(action_weight=weight, action_dims=(0, 1)))
        plan = CEM(CEMConfig(horizon=1, num_samples=200, iterations=8), space, seed=0).plan(cost).actions
        assert plan[0, 0] == pytest.approx(0.5, abs=0.05) and (abs(float(plan[0, 1])) < 0.05) == still
    with pytest.raises(ValueError, match="out of range"):
        LatentGoalCost(_linear_rollout, goal, ObjectiveConfig(action_weight=0.1, action_dims=(2,)))(actions)
    with pytest.raises(ValueError, match="action_weight"):
        ObjectiveConfig(action_weight=-1.0)


def test_smoothing_by_hand_and_what_it_does_to_a_shift() -> None:
    z = torch.arange(4.0).view(1, 4, 1)  # a 2 x 2 grid [[0, 1], [2, 3]], one channel
    torch.testing.assert_close(smooth_tokens(z, 3), torch.full((1, 4, 1), 1.5))  # every window holds all 4
    line = torch.zeros(1, 9, 1)
    line[0, 0] = 9.0  # a 3 x 3 grid with one bright corner token
    # corner window: the 2 x 2 block around it; centre: all 9 tokens
    assert smooth_tokens(line, 3)[0, 0, 0].item() == pytest.approx(9 / 4)
    assert smooth_tokens(line, 3)[0, 4, 0].item() == pytest.approx(1.0)
    # a 'hand' one token from the goal's vs three tokens away: without blur both cost the same
    grid = torch.zeros(3, 16, 1)  # (B, 4 x 4 grid, D)
    goal = torch.zeros(16, 1)
    goal[5] = 1.0  # row 1, col 1
    grid[0, 6], grid[1, 15], grid[2, 5] = 1.0, 1.0, 1.0  # one to the right, far corner, on the goal
    plain = latent_energy(grid, goal)
    blurred = latent_energy(grid, goal, smoothing=3)
    assert plain[0] == plain[1] and plain[2] == 0
    assert blurred[2] == 0 and blurred[0] < blurred[1]
    cost = LatentGoalCost(lambda a: grid, goal, ObjectiveConfig(smoothing=3))
    torch.testing.assert_close(cost(torch.zeros(3, 1, 1)), blurred)
    with pytest.raises(ValueError, match="odd"):
        ObjectiveConfig(smoothing=2)
    with pytest.raises(ValueError, match="square"):
        latent_energy(torch.zeros(1, 6, 1), torch.zeros(6, 1), smoothing=3)


def test_anchor_cancels_the_predictors_error_at_the_current_frame() -> None:
    torch.manual_seed(0)
    observed, goal = torch.randn(4, 3), torch.randn(4, 3)  # (N, D)
    weights, bias = torch.randn(7, 3), torch.randn(4, 3)  # a linear predictor that is off by `bias`

    def rollout(actions: torch.Tensor) -> torch.Tensor:  # (B, H, 7) -> (B, H, N, D)
        moves = actions.cumsum(1) @ weights  # (B, H, 3)
        return observed + bias + moves[:, :, None, :] + 0.3 * actions[..., 6:7, None]  # the gripper acts too

    actions = torch.randn(5, 2, 7)
    actions[:, :, 6] = torch.tensor([-1.0, 1.0, -1.0, 1.0, 1.0])[:, None]  # two gripper commands among the candidates
    anchored = LatentGoalCost(rollout, goal, ObjectiveConfig(anchor=True), observed=observed)(actions)
    still = actions.clone()
    still[..., :3] = 0
    by_hand = latent_energy(observed + rollout(actions)[:, -1] - rollout(still)[:, -1], goal)
    assert torch.allclose(anchored, by_hand, atol=1e-6)
    # the bias is gone: the same as a predictor without it
    unbiased = LatentGoalCost(lambda a: rollout(a) - bias, goal, ObjectiveConfig(anchor=True), observed=observed)
    assert torch.allclose(anchored, unbiased(actions), atol=1e-6)
    assert not torch.allclose(anchored, LatentGoalCost(rollout, goal)(actions))
    with pytest.raises(ValueError, match="anchor"):
        LatentGoalCost(rollout, goal, ObjectiveConfig(anchor=True))


def test_smoothing_blurs_each_camera_view_on_its_own() -> None:
    """Tokens of two stacked camera views (two 3 x 3 grids, 18 tokens) are blurred view by view:
    a bright token at the bottom of the first view leaks nothing into the second."""
    assert view_grids(64) == (1, 8) and view_grids(128) == (2, 8) and view_grids(192) == (3, 8)
    views = torch.zeros(1, 18, 1)
    views[0, 7] = 9.0  # first view, bottom row, middle column
    blurred = smooth_tokens(views, 3)
    torch.testing.assert_close(blurred[0, 9:], torch.zeros(9, 1))  # the second view is untouched
    torch.testing.assert_close(blurred[:, :9], smooth_tokens(views[:, :9], 3))  # the first as if alone
    pair = torch.randn(2, 2, 16, 4)  # (B, views, 4 x 4 grid, D)
    torch.testing.assert_close(smooth_tokens(pair.flatten(1, 2), 3).view(2, 2, 16, 4),
                               smooth_tokens(pair.flatten(0, 1), 3).view(2, 2, 16, 4))
    with pytest.raises(ValueError, match="camera view"):
        view_grids(20)


def test_change_token_weights_by_hand_and_in_the_energy() -> None:
    previous = torch.zeros(4, 2)  # (N=4, D=2)
    goal = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [2.0, 4.0]])  # token changes c = [0, 1, 0, 3], mean 1
    torch.testing.assert_close(change_token_weights(goal, previous, 1.0), torch.tensor([0.0, 1.0, 0.0, 3.0]))
    torch.testing.assert_close(change_token_weights(goal, previous, 0.5), torch.tensor([0.5, 1.0, 0.5, 2.0]))
    torch.testing.assert_close(change_token_weights(goal, previous, 0.0), torch.ones(4))
    torch.testing.assert_close(change_token_weights(goal, goal, 1.0), torch.ones(4))  # nothing changes: all alike
    with pytest.raises(ValueError, match="change_weight"):
        change_token_weights(goal, previous, 1.5)
    with pytest.raises(ValueError, match="one shape"):
        change_token_weights(goal, previous[:3], 1.0)

    # a candidate wrong on the changing token 3 costs more than one wrong by as much on the still token 0
    weights = change_token_weights(goal, previous, 0.5)
    wrong_still, wrong_changing = goal.clone(), goal.clone()
    wrong_still[0] += 1.0
    wrong_changing[3] += 1.0
    energies = latent_energy(torch.stack([wrong_still, wrong_changing]), goal, token_weights=weights)
    # |diff| per token (mean over D=2): 1 on one token -> weight x 1 / 4 tokens
    torch.testing.assert_close(energies, torch.tensor([0.5 / 4, 2.0 / 4]))
    torch.testing.assert_close(latent_energy(torch.stack([wrong_still, wrong_changing]), goal),
                               torch.tensor([0.25, 0.25]))  # unweighted: alike
    cost = LatentGoalCost(lambda a: torch.stack([wrong_still, wrong_changing]), goal,
                          ObjectiveConfig(change_weight=0.5), token_weights=weights)
    torch.testing.assert_close(cost(torch.zeros(2, 1, 7)), energies)
    with pytest.raises(ValueError, match="token_weights"):
        latent_energy(torch.stack([wrong_still]), goal, token_weights=torch.ones(3))
    with pytest.raises(ValueError, match="change_weight"):
        ObjectiveConfig(change_weight=-0.1)


def test_gripper_cost_by_hand() -> None:
    goal = torch.zeros(2, 3)
    cost = LatentGoalCost(lambda a: torch.zeros(a.shape[0], 2, 3), goal, ObjectiveConfig(gripper_weight=0.1),
                          gripper_target=1.0)
    actions = torch.zeros(3, 2, 7)  # (B, H=2, A)
    actions[0, :, 6] = 1.0  # closed both steps: as the target, no cost
    actions[1, :, 6] = -1.0  # open both steps: |-1 - 1| / 2 = 1 per step
    actions[2, 0, 6], actions[2, 1, 6] = -1.0, 1.0  # open then closed: mean 0.5
    torch.testing.assert_close(cost(actions), torch.tensor([0.0, 0.1, 0.05]))
    no_target = LatentGoalCost(lambda a: torch.zeros(a.shape[0], 2, 3), goal, ObjectiveConfig(gripper_weight=0.1))
    torch.testing.assert_close(no_target(actions), torch.zeros(3))
    with pytest.raises(ValueError, match="gripper_target"):
        LatentGoalCost(lambda a: a, goal, gripper_target=2.0)
    with pytest.raises(ValueError, match="gripper_weight"):
        ObjectiveConfig(gripper_weight=-1.0)
