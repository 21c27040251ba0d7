"""Multi-head self-attention with 3D rotary position embeddings and an optional mask.

Parameter names (``qkv``, ``proj``) match V-JEPA 2's ``RoPEAttention`` so its weights load
as they are.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from jepa_wm.nn.rope import RopeTable


class RopeAttention(nn.Module):
    """Self-attention; queries and keys are rotated by a :class:`RopeTable` when one is given.

    Args:
        dim: token width.
        num_heads: attention heads; ``dim`` must be divisible by it.
        qkv_bias: bias on the fused query/key/value projection (True in V-JEPA 2).
    """

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: Tensor, rope: RopeTable | None = None, attn_mask: Tensor | None = None
    ) -> Tensor:
        """Attend over the tokens of ``x``.

        Args:
            x: (B, N, D) tokens.
            rope: rotation table for the N token positions, or None for no positional rotation.
            attn_mask: optional mask broadcastable to (B, heads, N, N): boolean (True = may
                attend, e.g. a block-causal mask) or additive float, as in
                ``F.scaled_dot_product_attention``.

        Returns:
            (B, N, D) attended tokens.
        """
        b, n, d = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim))  # (B, N, 3, h, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, N, hd)
        if rope is not None:
            q, k = rope.rotate(q), rope.rotate(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)
