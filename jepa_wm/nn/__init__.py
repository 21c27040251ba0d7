"""Shared neural-network layers: 3D rotary embeddings, RoPE attention, transformer blocks."""

from jepa_wm.nn.attention import RopeAttention
from jepa_wm.nn.blocks import MLP, Block, init_vjepa_weights
from jepa_wm.nn.rope import (
    ROPE_LAYOUTS,
    RopeLayout,
    RopeTable,
    grid_positions,
    rope_axis_dim,
    rope_table,
    token_positions,
)

__all__ = [
    "MLP",
    "ROPE_LAYOUTS",
    "Block",
    "RopeAttention",
    "RopeLayout",
    "RopeTable",
    "grid_positions",
    "init_vjepa_weights",
    "rope_axis_dim",
    "rope_table",
    "token_positions",
]
