"""A box the planned end-effector position should stay in, as a cost on action sequences.

Position actions are deltas: from the observed position ``p_0`` (the robot's proprioception,
never the objects'), the plan's positions are ``p_t = p_0 + pos_scale * sum_{s <= t} a_s[:3]``.
:class:`WorkspaceBox` charges each action unit that a planned position lies outside
``[low, high]`` (L1 over axes, averaged over the plan's steps): zero inside, so the energy
alone chooses among plans that stay in. Subgradients are nonzero outside the box, so the
gradient planner is pushed back in too.

Used to keep the hand where the camera sees it (``envs.TabletopEnv.view_box``): an image
energy cannot tell "hand far out of view" from "hand nearly right", and a planner that only
scores images drifted out of frame (docs/research/).

:func:`hand_distance` measures the same planned positions against a target position, such as the
hand pose a hand reader reads from the goal image (:mod:`jepa_wm.plugins.object_reader.cost`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor


def planned_positions(start: Tensor, actions: Tensor, pos_scale: float) -> Tensor:
    """Planned positions ``(B, H, 3)`` after each action, from ``start`` ``(3,)`` and
    ``actions`` ``(B, H, A)`` (position deltas in ``actions[..., :3]``, ``pos_scale`` metres each)."""
    if start.shape != (3,):
        raise ValueError(f"start must be a position (3,), got {tuple(start.shape)}")
    if actions.ndim != 3 or actions.shape[-1] < 3:
        raise ValueError(f"actions must be (B, H, A >= 3), got {tuple(actions.shape)}")
    return start.to(actions) + pos_scale * actions[..., :3].cumsum(dim=1)


def hand_distance(start: Tensor, actions: Tensor, pos_scale: float, target: Tensor,
                  dims: Sequence[int] = (0, 1, 2)) -> Tensor:
    """Distances ``(B,)`` (metres) of each plan's last planned position to ``target`` ``(3,)``,
    on the axes ``dims`` (default all three)."""
    if target.shape != (3,):
        raise ValueError(f"target must be a position (3,), got {tuple(target.shape)}")
    last = planned_positions(start, actions, pos_scale)[:, -1]  # (B, 3)
    dims = list(dims)
    return (last[:, dims] - target.to(last)[dims]).norm(dim=-1)


@dataclass(frozen=True)
class WorkspaceBox:
    """An axis-aligned box for the planned positions (action dimensions 0-2).

    Args:
        low, high: corners of the box ``(3,)``, in the state's units (metres).
    """

    low: Sequence[float]
    high: Sequence[float]

    def __post_init__(self) -> None:
        low, high = tuple(float(v) for v in self.low), tuple(float(v) for v in self.high)
        if len(low) != 3 or len(high) != 3:
            raise ValueError(f"low and high must be 3 values (x, y, z), got {list(self.low)} and {list(self.high)}")
        if any(lo >= hi for lo, hi in zip(low, high)):
            raise ValueError(f"low must be below high on every axis, got low {list(low)}, high {list(high)}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def cost(self, start: Tensor, actions: Tensor, pos_scale: float) -> Tensor:
        """Costs ``(B,)``: the mean over steps of the L1 distance (action units) of each planned
        position to the box."""
        pos = planned_positions(start, actions, pos_scale)  # (B, H, 3)
        low, high = pos.new_tensor(self.low), pos.new_tensor(self.high)
        outside = (low - pos).clamp(min=0) + (pos - high).clamp(min=0)  # (B, H, 3) metres
        return outside.sum(-1).mean(-1) / pos_scale  # (B,)
