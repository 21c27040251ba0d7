"""The hand-pull cost term: the plan's last grip site charged by its distance to the hand pose a goal image shows.

A hand reader (:class:`~jepa_wm.plugins.object_reader.reader.ObjectReader` trained with
``target=hand``) reads the grip site's xyz from each goal stage's latent; the term charges the
distance (metres, on ``dims``) of the plan's last planned grip site (the observed proprioception
plus the planned deltas, :func:`planners.workspace.hand_distance`) beyond ``margin``::

    costs:
      hand: {_target_: jepa_wm.plugins.object_reader.cost.HandPull.build, weight: 3.0, margin: 0.06, dims: [0, 1],
             reader: ${world_model.hand_reader}}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from jepa_wm.planning.costs import BuildContext, Candidates, check_weight
from jepa_wm.plugins.object_reader.reader import ObjectReader
from jepa_wm.protocols import CostModel, Goal
from planners.workspace import hand_distance


class HandPull:
    """``max(0, d - margin)`` with ``d`` the last planned grip site's distance to the stage's read hand position.

    Args:
        reader: reads the grip site's xyz ``(M, 3)`` from latents ``(M, N, D)``.
        margin: metres of the distance not charged.
        dims: the axes the distance counts (``(0, 1)``: x and y, the height left to the energy).
        weight: its factor in the cost (per metre).
    """

    def __init__(self, reader: ObjectReader, margin: float = 0.0, dims: Sequence[int] = (0, 1, 2),
                 weight: float = 0.0) -> None:
        dims = tuple(int(d) for d in dims)
        if not dims or not set(dims) <= {0, 1, 2} or len(set(dims)) != len(dims):
            raise ValueError(f"costs.hand.dims must be distinct axes among 0, 1, 2 (x, y, z), got {list(dims)}")
        if not margin >= 0:
            raise ValueError(f"costs.hand.margin must be >= 0 (m), got {margin}")
        self.reader, self.margin, self.dims, self.weight = reader, float(margin), dims, check_weight(weight, "hand")
        self.hands: Tensor | None = None  # (G, 3)

    @classmethod
    def build(cls, context: BuildContext, model: CostModel, *, weight: float, reader: str | None, margin: float = 0.0,
              dims: Sequence[int] = (0, 1, 2)) -> HandPull:
        if reader is None:
            raise ValueError("costs.hand reads each goal's hand pose with a hand reader, and the world model pair has "
                             "none (world_model.hand_reader=null): train one with `python experiments/"
                             "train_object_reader.py target=hand` on its encoder, or drop the term (costs.hand=null)")
        fingerprint = getattr(model, "encoder_fingerprint", None)
        if fingerprint is None:
            raise ValueError(f"costs.hand reads goal latents of a JEPA encoder; the world model "
                             f"({type(model).__name__}) has none: drop the term (costs.hand=null)")
        loaded, _ = ObjectReader.load(reader, encoder_fingerprint=fingerprint, target="hand")
        return cls(loaded.to(context.device), margin, dims, weight)

    def reset(self, goal: Goal, model: CostModel) -> None:
        """Read the hand position each stage's latent shows."""
        with torch.no_grad():
            self.hands = self.reader(goal.latents)  # (G, 3)

    def __call__(self, candidates: Candidates) -> Tensor:
        assert self.hands is not None, "reset(goal, model) first"
        distance = hand_distance(candidates.hand, candidates.actions, candidates.model.pos_scale,
                                 self.hands[candidates.stage], self.dims)  # (B,)
        return (distance - self.margin).clamp(min=0)
