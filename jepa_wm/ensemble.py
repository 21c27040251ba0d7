"""Several predictors over one encoder's latents, planned with as one world model.

Predictors trained on the same latents (other seeds, or another length of the same run) make
errors of their own on the moves a planner compares: which reach episodes fail changes from
one predictor to the next (experiments/README.md). :class:`EnsembleWorldModel` predicts the mean of its
members' rollouts, which averages out the errors they do not share; it costs one rollout per
member. The energy is that of the mean prediction, so the members' disagreement is not
charged as such, and the mean of layer-normed latents is a little shorter than each of them.

>>> members = [load_world_model(path, encoder) for path in ("runs/a", "runs/b")]
>>> world_model = EnsembleWorldModel(members)   # encode / rollout like a WorldModel
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from jepa_wm.world_model import WorldModel


class EnsembleWorldModel(WorldModel):
    """The mean rollout of several :class:`WorldModel` members that share one encoder.

    Args:
        members: at least two world models with the same encoder object, predictor
            architecture (token grid and width, action and state sizes), state integration
            and precision.

    ``predictor``, ``config`` and ``integration`` are the first member's (for code that reads
    sizes or the position scale); :meth:`rollout` averages all members.
    """

    def __init__(self, members: Sequence[WorldModel]) -> None:
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two world models, got {len(members)}")
        first = members[0]
        for i, member in enumerate(members[1:], start=1):
            if member.encoder is not first.encoder:
                raise ValueError(f"ensemble member {i} has an encoder of its own: load every predictor "
                                 f"with the same encoder object")
            if member.precision != first.precision:
                raise ValueError(f"ensemble member {i} rolls out in {member.precision}, member 0 in {first.precision}")
            mismatch = [name for name in ("embed_dim", "grid_hw", "action_dim", "state_dim", "normalize_output")
                        if getattr(member.config, name) != getattr(first.config, name)]
            if mismatch:
                raise ValueError(f"ensemble member {i} differs from member 0 in {mismatch}")
            if member.integration != first.integration:
                raise ValueError(f"ensemble member {i} integrates states differently: "
                                 f"{member.integration} vs {first.integration}")
        super().__init__(first.encoder, first.predictor, first.integration, precision=first.precision)
        self.members = nn.ModuleList(members)

    def rollout(
        self, z_context: Tensor, states: Tensor, actions: Tensor, *, past_actions: Tensor | None = None
    ) -> Tensor:
        """The members' mean prediction ``(B, H, N, D)`` (arguments as :meth:`WorldModel.rollout`);
        each member rolls out on its own predictions."""
        predictions = [m.rollout(z_context, states, actions, past_actions=past_actions) for m in self.members]
        return torch.stack(predictions).mean(dim=0)
