"""The latent energy against hand computations, its smoothing, and the energy as a planner's cost."""

from __future__ import annotations

import pytest
import torch

from planners import CEM, ActionSpace, CEMConfig, latent_energy
from planners.objective import kernel_sizes, smooth_tokens, view_grids


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


def test_kernel_sizes() -> None:
    assert kernel_sizes(1) == (1,) and kernel_sizes(3) == (3,) and kernel_sizes([1, 3, 5]) == (1, 3, 5)
    for bad in (2, 0, -1, [], [1, 4], [1.0], (3, "5")):
        with pytest.raises(ValueError, match="odd"):
            kernel_sizes(bad)


def test_smoothing_by_hand_and_what_it_does_to_a_shift() -> None:
    z = torch.arange(4.0).view(1, 4, 1)  # a 2 x 2 grid [[0, 1], [2, 3]], one channel
    torch.testing.assert_close(smooth_tokens(z, 3), torch.full((1, 4, 1), 1.5))  # every window holds all 4
    assert smooth_tokens(z, 1) is z
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
    # by hand: the bright corner (9) of `line` against an all-zero goal; blurred, it spreads to the windows
    # that hold it: (0, 0) of 4 tokens, (0, 1) and (1, 0) of 6, the centre of 9 -> 9/4, 9/6, 9/6, 9/9
    zero = torch.zeros(9, 1)
    assert latent_energy(line, zero).item() == pytest.approx(1.0)  # 9 / 9 tokens
    assert latent_energy(line, zero, smoothing=3).item() == pytest.approx((2.25 + 1.5 + 1.5 + 1.0) / 9)
    assert latent_energy(line, zero, "l2", smoothing=3).item() == pytest.approx((2.25**2 + 2 * 1.5**2 + 1.0) / 9)
    # several sizes: the mean of the energies at each
    assert latent_energy(line, zero, smoothing=(1, 3)).item() == pytest.approx((1.0 + 6.25 / 9) / 2)
    torch.testing.assert_close(latent_energy(grid, goal, smoothing=(1, 3)), (plain + blurred) / 2)
    with pytest.raises(ValueError, match="odd"):
        latent_energy(grid, goal, smoothing=2)
    with pytest.raises(ValueError, match="square"):
        latent_energy(torch.zeros(1, 6, 1), torch.zeros(6, 1), smoothing=3)


def test_smoothing_blurs_each_camera_view_on_its_own() -> None:
    """Tokens of two stacked camera views (two 3 x 3 grids, 18 tokens) are blurred view by view:
    a bright token at the bottom of the first view leaks nothing into the second."""
    assert view_grids(64) == (1, 8) and view_grids(128) == (2, 8) and view_grids(192) == (3, 8)
    assert view_grids(1) == (1, 1) and view_grids(18) == (2, 3)
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


def _linear_rollout(actions: torch.Tensor) -> torch.Tensor:
    """Toy 'world model': the latent after step t is the running sum of actions, one token.

    actions (B, H, A) -> z (B, H, N=1, D=A)."""
    return actions.cumsum(dim=1)[:, :, None, :]


def test_planner_reaches_a_latent_goal_through_the_energy() -> None:
    """CEM only sees the energy of the last predicted latent: it finds actions whose prediction hits the goal."""
    goal = torch.tensor([[0.5, -0.25]])  # (N=1, D=2)

    def cost(actions: torch.Tensor) -> torch.Tensor:
        return latent_energy(_linear_rollout(actions)[:, -1], goal)  # (B,)

    start = float(cost(torch.zeros(1, 2, 2))[0])  # the default plan (stay) costs 0.375
    assert start == pytest.approx(0.375)
    planner = CEM(CEMConfig(horizon=2, num_samples=200, iterations=8), ActionSpace(dim=2), seed=0)
    result = planner.plan(cost)
    torch.testing.assert_close(result.actions.sum(0), goal[0], atol=0.02, rtol=0)
    assert result.cost < 0.02 < start
    assert result.cost == pytest.approx(float(cost(result.actions[None])[0]))
