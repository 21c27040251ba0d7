"""WorkspaceBox: planned positions, the cost outside the box by hand, and what it makes planners do."""

from __future__ import annotations

import pytest
import torch

from planners import CEM, ActionSpace, CEMConfig, GradientConfig, GradientPlanner, WorkspaceBox, latent_energy
from planners.workspace import hand_distance, planned_positions

BOX = WorkspaceBox(low=(-0.1, -0.1, 0.0), high=(0.1, 0.1, 0.2))


def test_positions_and_cost_by_hand() -> None:
    start = torch.tensor([0.0, 0.0, 0.1])
    actions = torch.tensor([[[1.0, 0.0, 0.0, 9.0], [1.0, 0.0, -2.0, 9.0]]])  # (B=1, H=2, A=4), 0.05 m per unit
    pos = planned_positions(start, actions, pos_scale=0.05)
    torch.testing.assert_close(pos, torch.tensor([[[0.05, 0.0, 0.1], [0.1, 0.0, 0.0]]]))
    # the last planned position (0.1, 0, 0) to (0.1, 0.03, 0.04): 5 cm
    torch.testing.assert_close(hand_distance(start, actions, 0.05, torch.tensor([0.1, 0.03, 0.04])),
                               torch.tensor([0.05]))
    with pytest.raises(ValueError, match="target must be a position"):
        hand_distance(start, actions, 0.05, torch.zeros(2))
    assert BOX.cost(start, actions, pos_scale=0.05).item() == 0.0  # on the edges: inside
    actions[0, 1, 0] = 2.0  # second step at x = 0.15: 0.05 m = 1 unit outside
    # mean over the 2 steps of (0 + 1 unit)
    torch.testing.assert_close(BOX.cost(start, actions, pos_scale=0.05), torch.tensor([0.5]))
    below = torch.tensor([[[0.0, 0.0, -3.0]]])  # z = -0.05: 1 unit under the floor
    torch.testing.assert_close(BOX.cost(start, below, pos_scale=0.05), torch.tensor([1.0]))
    # L1 over axes, in action units whatever the scale: (0.15, -0.15, 0.1) is 0.05 m out on x and on y
    corner = torch.tensor([[[3.0, -3.0, 0.0]], [[1.5, -1.5, 0.0]]])  # (B=2, H=1, A=3)
    torch.testing.assert_close(BOX.cost(start, corner, pos_scale=0.05), torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(BOX.cost(start, corner / 2, pos_scale=0.1), torch.tensor([1.0, 0.0]))


def test_bad_boxes_and_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="3 values"):
        WorkspaceBox(low=(0.0, 0.0), high=(1.0, 1.0))
    with pytest.raises(ValueError, match="below high"):
        WorkspaceBox(low=(0.0, 0.0, 0.5), high=(1.0, 1.0, 0.5))
    with pytest.raises(ValueError, match="start"):
        BOX.cost(torch.zeros(2), torch.zeros(1, 1, 3), pos_scale=0.05)
    with pytest.raises(ValueError, match="actions"):
        BOX.cost(torch.zeros(3), torch.zeros(1, 2), pos_scale=0.05)


def _goal_outside_rollout(actions: torch.Tensor) -> torch.Tensor:
    """A 'latent' that is the final position (start 0): the goal at x = 0.2 m lies outside BOX."""
    return (0.05 * actions[..., :3].sum(1))[:, None, :]  # (B, N=1, D=3)


@pytest.mark.parametrize("planner", ["cem", "gradient"])
def test_planners_stop_at_the_box_edge(planner: str) -> None:
    """Without the box the plan goes to the goal (x = 0.2); with it, it stops at the edge x = 0.1."""
    goal = torch.tensor([[0.2, 0.0, 0.1]])
    space = ActionSpace(dim=3, low=-4.0, high=4.0)
    for with_box, x in ((False, 0.2), (True, 0.1)):

        def cost(actions: torch.Tensor, with_box: bool = with_box) -> torch.Tensor:
            energy = latent_energy(_goal_outside_rollout(actions), goal)  # (B,)
            return energy + BOX.cost(torch.zeros(3), actions, pos_scale=0.05) if with_box else energy

        if planner == "cem":
            search = CEM(CEMConfig(horizon=1, num_samples=300, iterations=10), space, seed=0)
        else:
            search = GradientPlanner(GradientConfig(horizon=1, iterations=300, lr=0.05), space, seed=0)
        plan = search.plan(cost).actions
        assert 0.05 * float(plan[0, 0]) == pytest.approx(x, abs=0.01)
        inside = BOX.cost(torch.zeros(3), plan[None], pos_scale=0.05)
        assert (float(inside) < 0.2) if with_box else (float(inside) > 1.0)  # at most 1 cm out with the box
