"""The narrow JEPA predictor of V-JEPA 2 pretraining (``src/models/predictor.py``), with RoPE.

The context encoder's visible tokens are projected to the predictor width; one learnable
mask token (zero-initialised, one per mask spec) is placed at every target position. Both
sets go through pre-norm RoPE blocks, where each token is rotated by its own (t, h, w) grid
position (so token order does not matter and no positional table is needed); the outputs
at the target positions are normed and projected back to the encoder width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from jepa_wm.nn.blocks import Block, init_vjepa_weights
from jepa_wm.nn.rope import (
    ROPE_LAYOUTS,
    RopeLayout,
    rope_axis_dim,
    rope_table,
    token_positions,
)


@dataclass(frozen=True)
class PredictorConfig:
    """Architecture of the masked-token predictor.

    Args:
        embed_dim: encoder width ``D`` (input and output width).
        predictor_dim: internal width (V-JEPA 2: 384 for a 1024-wide ViT-L).
        depth: transformer blocks (V-JEPA 2: 12).
        num_heads: attention heads (V-JEPA 2: 12).
        mlp_ratio: MLP hidden width over ``predictor_dim``.
        num_mask_tokens: learnable mask tokens, one per mask spec.
        rope_layout: RoPE frequency layout (see :mod:`jepa_wm.nn.rope`).
        init_std: std of the truncated-normal weight init.
    """

    embed_dim: int = 192
    predictor_dim: int = 96
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    num_mask_tokens: int = 2
    rope_layout: RopeLayout = "vjepa2"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("embed_dim", "predictor_dim", "depth", "num_heads", "num_mask_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PredictorConfig.{name} must be an int >= 1, got {value!r}")
        if self.predictor_dim % self.num_heads:
            raise ValueError(
                f"predictor_dim {self.predictor_dim} must be divisible by num_heads {self.num_heads}"
            )
        if rope_axis_dim(self.predictor_dim // self.num_heads) == 0:
            raise ValueError("predictor_dim / num_heads must be >= 6 for 3D RoPE")
        if self.rope_layout not in ROPE_LAYOUTS:
            raise ValueError(f"rope_layout must be one of {ROPE_LAYOUTS}, got {self.rope_layout!r}")
        if not self.mlp_ratio > 0 or not self.init_std > 0:
            raise ValueError(f"mlp_ratio and init_std must be > 0, got {self.mlp_ratio}, {self.init_std}")


class MaskedPredictor(nn.Module):
    """Predicts encoder features at target positions from context tokens.

    Parameter names follow V-JEPA 2's ``VisionTransformerPredictor`` (``predictor_embed``,
    ``mask_tokens``, ``predictor_blocks``, ``predictor_norm``, ``predictor_proj``).
    """

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.predictor_dim
        self.predictor_embed = nn.Linear(config.embed_dim, dim)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, dim)) for _ in range(config.num_mask_tokens)
        )
        self.predictor_blocks = nn.ModuleList(
            Block(dim, config.num_heads, mlp_ratio=config.mlp_ratio) for _ in range(config.depth)
        )
        self.predictor_norm = nn.LayerNorm(dim, eps=1e-6)
        self.predictor_proj = nn.Linear(dim, config.embed_dim)
        init_vjepa_weights(self, self.predictor_blocks, self.config.init_std)

    def forward(
        self,
        context: Tensor,
        context_ids: Tensor,
        target_ids: Tensor,
        grid_hw: tuple[int, int],
        mask_index: int = 0,
    ) -> Tensor:
        """Predict the target tokens.

        Args:
            context: (B, Kc, D) context-encoder outputs at ``context_ids``.
            context_ids: (B, Kc) raster indices of the context tokens.
            target_ids: (B, Kt) raster indices of the tokens to predict.
            grid_hw: (H', W') tokens per tubelet (to turn indices into positions).
            mask_index: which mask token to use (the mask spec's index).

        Returns:
            (B, Kt) x D predictions, in the order of ``target_ids``.
        """
        batch, num_context, _ = context.shape
        if context_ids.shape != (batch, num_context) or target_ids.ndim != 2 or target_ids.shape[0] != batch:
            raise ValueError(
                f"expected context_ids ({batch}, {num_context}) and target_ids ({batch}, Kt), "
                f"got {tuple(context_ids.shape)} and {tuple(target_ids.shape)}"
            )
        if not 0 <= mask_index < self.config.num_mask_tokens:
            raise ValueError(f"mask_index must lie in [0, {self.config.num_mask_tokens}), got {mask_index}")
        x = self.predictor_embed(context)  # (B, Kc, Dp)
        queries = self.mask_tokens[mask_index].expand(batch, target_ids.shape[1], -1)  # (B, Kt, Dp)
        x = torch.cat([x, queries.to(x.dtype)], dim=1)  # (B, Kc + Kt, Dp)
        ids = torch.cat([context_ids, target_ids], dim=1)  # (B, Kc + Kt)
        head_dim = self.config.predictor_dim // self.config.num_heads
        rope = rope_table(token_positions(ids, grid_hw), head_dim, layout=self.config.rope_layout)
        for block in self.predictor_blocks:
            x = block(x, rope=rope)  # (B, Kc + Kt, Dp)
        x = self.predictor_norm(x[:, num_context:])  # (B, Kt, Dp)
        return self.predictor_proj(x)  # (B, Kt, D)
