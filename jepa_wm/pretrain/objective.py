"""The V-JEPA objective: predict the EMA target encoder's features of masked tokens.

For a clip ``x`` (B, C, T, H, W) and mask pairs (context, target) from
:class:`~jepa_wm.pretrain.masks.MultiBlockMasker`:

1. targets: ``h = layer_norm(target_encoder(x))`` over all tokens, no affine parameters,
   computed without gradient (stop-gradient);
2. for each pair ``i``: ``z = encoder(x, context_i)`` sees only visible tokens,
   ``p = predictor(z, context_i, target_i, mask_index=i)``;
3. loss = mean over pairs of ``mean |p - h[target_i]|`` (L1; V-JEPA 2's ``loss_exp = 1``).

:class:`JEPA` holds the three networks; its ``forward`` returns the loss and the collapse
signal, so one ``DistributedDataParallel`` wrapper covers the trainable parts.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jepa_wm.encoders.vit import VisionTransformer, apply_masks
from jepa_wm.pretrain.ema import ema_update
from jepa_wm.pretrain.masks import MaskPair
from jepa_wm.pretrain.predictor import MaskedPredictor


def jepa_l1_loss(predictions: Tensor, targets: Tensor, target_ids: Tensor) -> Tensor:
    """Mean absolute error between predictions and the target features they stand for.

    Args:
        predictions: (B, Kt, D) predictor outputs.
        targets: (B, N, D) layer-normed target-encoder features of every token.
        target_ids: (B, Kt) indices of the predicted tokens.
    """
    chosen = apply_masks(targets, [target_ids])  # (B, Kt, D)
    return (predictions.float() - chosen.float()).abs().mean()


def feature_std(features: Tensor) -> Tensor:
    """Collapse signal: per-dimension std over all tokens of all samples, averaged over D.

    ``features`` (B, N, D) -> scalar; near 0 when the encoder maps everything to one point.
    """
    return features.detach().float().flatten(0, -2).std(dim=0).mean()


class JEPA(nn.Module):
    """Context encoder, EMA target encoder and predictor of V-JEPA pretraining.

    Args:
        encoder: the context (online) encoder, trained by gradient.
        predictor: the masked-token predictor, trained by gradient.

    The target encoder is a deep copy of ``encoder`` with gradients disabled, updated only by
    :meth:`update_target`.
    """

    def __init__(self, encoder: VisionTransformer, predictor: MaskedPredictor) -> None:
        super().__init__()
        if encoder.embed_dim != predictor.config.embed_dim:
            raise ValueError(
                f"predictor.embed_dim {predictor.config.embed_dim} must equal the encoder width "
                f"{encoder.embed_dim}"
            )
        self.encoder = encoder
        self.predictor = predictor
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)

    @torch.no_grad()
    def targets(self, video: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, N, D) target features, layer-normed without affine parameters."""
        h = self.target_encoder(video)  # (B, N, D)
        return F.layer_norm(h.float(), (h.shape[-1],))

    def forward(self, video: Tensor, masks: Sequence[MaskPair]) -> tuple[Tensor, Tensor]:
        """The JEPA loss of a batch.

        Args:
            video: (B, C, T, H, W) normalised clips.
            masks: one :class:`MaskPair` per mask spec (spec ``i`` uses mask token ``i``).

        Returns:
            ``(loss, target_std)``: scalar L1 loss averaged over the mask pairs, and the
            collapse signal :func:`feature_std` of the targets (detached).
        """
        if not masks:
            raise ValueError("need at least one MaskPair")
        cfg = self.encoder.config
        grid_hw = (video.shape[-2] // cfg.patch_size, video.shape[-1] // cfg.patch_size)
        targets = self.targets(video)  # (B, N, D)
        losses = []
        for index, pair in enumerate(masks):
            context = self.encoder(video, masks=pair.context)  # (B, Kc, D)
            predictions = self.predictor(context, pair.context, pair.target, grid_hw, index)  # (B, Kt, D)
            losses.append(jepa_l1_loss(predictions, targets, pair.target))
        return torch.stack(losses).mean(), feature_std(targets)

    def update_target(self, momentum: float) -> None:
        """EMA step of the target encoder toward the context encoder."""
        ema_update(self.target_encoder, self.encoder, momentum)
