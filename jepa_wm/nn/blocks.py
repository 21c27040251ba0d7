"""Pre-norm transformer block (LayerNorm -> RoPE attention, LayerNorm -> GELU MLP).

Module names (``norm1``, ``attn``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``) match V-JEPA 2's
``Block`` so its state dicts load without renaming.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from jepa_wm.nn.attention import RopeAttention
from jepa_wm.nn.rope import RopeTable


class MLP(nn.Module):
    """Two-layer perceptron with GELU: (..., D) -> (..., hidden) -> (..., D)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``dim``; the hidden width is ``int(dim * mlp_ratio)``
            (ViT-g: 1408 * 48 / 11 = 6144).
        qkv_bias: bias on the attention's qkv projection.
        norm_eps: LayerNorm epsilon (1e-6 in V-JEPA 2).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = RopeAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(
        self, x: Tensor, rope: RopeTable | None = None, attn_mask: Tensor | None = None
    ) -> Tensor:
        """(B, N, D) -> (B, N, D); ``rope``, ``attn_mask`` as in :meth:`RopeAttention.forward`."""
        return self.forward_cached(x, rope, attn_mask)[0]  # (B, N, D)

    def forward_cached(
        self,
        x: Tensor,
        rope: RopeTable | None = None,
        attn_mask: Tensor | None = None,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The block on new tokens (B, L, D) that also attend to ``past`` keys/values.

        See :meth:`RopeAttention.attend`; returns the (B, L, D) outputs and the keys and
        values of all tokens.
        """
        out, k, v = self.attn.attend(self.norm1(x), rope, attn_mask, past)
        x = x + out  # (B, L, D)
        return x + self.mlp(self.norm2(x)), k, v


def init_vjepa_weights(model: nn.Module, blocks: Iterable[Block], std: float) -> None:
    """V-JEPA 2 initialisation of ``model`` in place.

    Linear and Conv3d weights: truncated normal with ``std``; biases zero; LayerNorms one and
    zero; then each block's residual output projections (``attn.proj``, ``mlp.fc2``) are
    divided by ``sqrt(2 l)`` for block ``l = 1, 2, ...``. Other parameters (mask tokens) stay.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    with torch.no_grad():
        for layer_id, block in enumerate(blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
