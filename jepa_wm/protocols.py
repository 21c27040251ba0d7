"""The world-model contract the planners and the planning script rely on, written down once.

A world model encodes observation images into latents and rolls candidate action sequences
forward in latent space. Planners never see it directly: ``planners.objective.LatentGoalCost``
wraps ``lambda actions: world_model.rollout(z, states, actions)`` and a goal latent into a
cost function.

Shapes: ``B`` candidates, ``C`` context frames, ``H`` planned actions, ``N`` tokens per frame,
``D`` token width, ``S`` state size, ``A`` action size.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class LatentWorldModel(Protocol):
    """What :class:`jepa_wm.world_model.WorldModel` offers to planning code."""

    def encode(self, images: Tensor) -> Tensor:
        """Images ``(..., 3, H, W)`` torch tensors (uint8, or float in [0, 1]) -> latents
        ``(..., N, D)`` on the model's device. Env observations are ``(H, W, 3)`` numpy:
        ``torch.from_numpy(obs["image"]).permute(2, 0, 1)``."""
        ...

    def rollout(
        self, z_context: Tensor, states: Tensor, actions: Tensor, *, past_actions: Tensor | None = None
    ) -> Tensor:
        """Predict the latents that follow the context under each candidate action sequence.

        Args:
            z_context: ``(C, N, D)`` context latents shared by all candidates (or
                ``(B, C, N, D)``); the last one is the current observation.
            states: raw states of the context frames, ``(C, S)`` (or ``(B, C, S)``).
            actions: raw candidate actions ``(B, H, A)``; the first is taken at the last
                context frame.
            past_actions: the ``C - 1`` actions executed between the context frames,
                ``(C - 1, A)`` (or ``(B, C - 1, A)``); needed only when ``C > 1``.

        Returns:
            ``(B, H, N, D)``: entry ``k`` is the latent after action ``k``; differentiable with
            respect to ``actions`` (sampling planners call it under ``torch.no_grad()``).
        """
        ...
