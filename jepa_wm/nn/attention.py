"""Multi-head self-attention with 3D rotary position embeddings and an optional mask.

Parameter names (``qkv``, ``proj``) match V-JEPA 2's ``RoPEAttention`` so its weights load
as they are.
"""

from __future__ import annotations

import torch
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
        return self.attend(x, rope, attn_mask)[0]

    def attend(
        self,
        x: Tensor,
        rope: RopeTable | None = None,
        attn_mask: Tensor | None = None,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Attention of new tokens to cached keys/values and to themselves (incremental decoding).

        Args:
            x: (B, L, D) new tokens.
            rope: rotation table for the L new tokens' positions.
            attn_mask: mask broadcastable to (B, heads, L, P + L), or None (attend to all).
            past: (keys, values) of P earlier tokens, each (B, heads, P, head_dim), already
                rotated; None when there are none.

        Returns:
            (B, L, D) attended tokens, and the keys and values (B, heads, P + L, head_dim) of
            all tokens, to pass as ``past`` for the next tokens.
        """
        b, n, d = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim))  # (B, L, 3, h, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, L, hd)
        if rope is not None:
            q, k = rope.rotate(q), rope.rotate(k)
        if past is not None:
            k = torch.cat((past[0].to(k.dtype), k), dim=2)  # (B, h, P+L, hd)
            v = torch.cat((past[1].to(v.dtype), v), dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, L, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), k, v  # (B, L, D)
