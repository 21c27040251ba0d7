"""The JEPA world model behind the planning contract: encode observations, roll out candidates in latent space.

:class:`LatentModel` wraps a frozen encoder + action-conditioned predictor
(:class:`jepa_wm.world_model.WorldModel`) as a :class:`jepa_wm.protocols.CostModel`. It is the
``world_model`` of the plan config (``world_model=tiny_2cam`` and the other pairs in
``configs/world_model/``)::

    >>> model = LatentModel(load_planning_world_model(encoder, predictor, image_size=(128, 64)))
    >>> z = model.encode(obs)                      # (N, D), computed once per observation
    >>> z_future = model.rollout(obs, candidates)  # (B, H, 7) -> (B, H, N, D)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from jepa_wm.planning.costs import BuildContext
from jepa_wm.planning.loading import load_planning_world_model
from jepa_wm.protocols import Observation, check_observation
from jepa_wm.world_model import PRECISIONS, EncoderOnly, WorldModel, image_tensor


class LatentModel:
    """A JEPA world model as the planner's cost model (its rollouts are latents).

    Args:
        world_model: encoder + predictor (or the encoder alone, for subclasses that predict otherwise).
    """

    prediction = "latents"

    def __init__(self, world_model: WorldModel | EncoderOnly) -> None:
        self.world_model = world_model
        self.pos_scale = float(world_model.integration.pos_scale)
        self._last: tuple[np.ndarray, Tensor] | None = None  # the latest observation's image and latent

    @classmethod
    def build(cls, context: BuildContext, *, encoder: str, predictor: str | None, precision: str = "float32",
              check_fingerprint: bool = True, any_task: bool = False, **attachments: Any) -> LatentModel:
        """Load the pair for the task of ``context``.

        Args:
            encoder, predictor: checkpoints (a predictor file or training run directory).
            precision: ``"float32"`` or ``"bfloat16"`` (the predictor's rollouts under bf16 autocast).
            check_fingerprint: the encoder must be the very one the predictor was trained on.
            any_task: skip the check that the predictor was trained on this task.
            attachments: the pair's other entries (camera, calibrated energies, reader checkpoints),
                which the task, the agent and the cost terms read through the config.
        """
        if predictor is None:
            raise ValueError("world_model.predictor=null: a latent world model needs a predictor checkpoint "
                             "(the encoder alone plans only with the simulator as the model, "
                             "world_model=oracle_tiny_2cam)")
        return cls(cls.load(context, encoder, predictor, precision, check_fingerprint, any_task))

    @staticmethod
    def load(context: BuildContext, encoder: str, predictor: str | None, precision: str, check_fingerprint: bool,
             any_task: bool) -> WorldModel | EncoderOnly:
        """The checked encoder + predictor for the task of ``context``."""
        if precision not in PRECISIONS:
            raise ValueError(f"world_model.precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        return load_planning_world_model(encoder, predictor, device=context.device,
                                         image_size=context.env.unwrapped.image_hw, check_fingerprint=check_fingerprint,
                                         precision=precision, task=None if any_task else context.task)

    @property
    def device(self) -> torch.device:
        return self.world_model.encoder.device

    @property
    def encoder_fingerprint(self) -> str:
        """The encoder's weights hash (readers of its latents are checked against it)."""
        return self.world_model.encoder.fingerprint()

    @property
    def image_hw(self) -> tuple[int, int]:
        """The images the encoder takes ``(H, W)``."""
        return tuple(self.world_model.encoder.img_hw)

    def reset(self) -> None:
        """Forget the cached latent."""
        self._last = None

    def encode(self, obs: Observation) -> Tensor:
        """The observation's latent ``(N, D)``, cached while the same image comes back."""
        image = obs.get("image") if isinstance(obs, Mapping) else None
        if image is None or self._last is None or self._last[0] is not image:
            check_observation(obs, self.image_hw)
            with torch.no_grad():
                self._last = (image, self.world_model.encode(image_tensor(image)))  # (N, D)
        return self._last[1]

    def encode_goal(self, images: Sequence[np.ndarray]) -> Tensor:
        """Goal latents ``(G, N, D)`` of uint8 ``(H, W, 3)`` images.

        Raises:
            ValueError: an image is not the encoder's size.
        """
        expected = (*self.image_hw, 3)
        for i, image in enumerate(images):
            if image.shape != expected or image.dtype != np.uint8:
                raise ValueError(f"goal image {i} must be uint8 {expected} (the encoder's size), got {image.dtype} "
                                 f"{image.shape}; render goals at the observation size")
        with torch.no_grad():
            return self.world_model.encode(torch.stack([image_tensor(image) for image in images]))  # (G, N, D)

    def rollout(self, obs: Observation, actions: Tensor) -> Tensor:
        """Predicted latents ``(B, H, N, D)`` of candidate actions ``(B, H, A)`` from ``obs``."""
        z = self.encode(obs)[None]  # (1, N, D)
        check_observation(obs)  # a state changed in place since the image was encoded
        if not isinstance(actions, Tensor) or actions.ndim != 3 or not actions.is_floating_point():
            got = f"{actions.dtype} {tuple(actions.shape)}" if isinstance(actions, Tensor) else type(actions).__name__
            raise ValueError(f"candidate actions must be a float tensor (B, H, A), got {got}")
        if not torch.isfinite(actions).all():
            raise ValueError("candidate actions must be finite, got NaN or inf")
        state = torch.as_tensor(obs["state"], dtype=torch.float32, device=z.device)[None]  # (1, 7)
        return self.world_model.rollout(z, state, actions)
