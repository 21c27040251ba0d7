"""Video Vision Transformer as in V-JEPA 2: tubelet patch embedding, 3D RoPE, pre-norm blocks.

Module and parameter names follow facebookresearch/vjepa2 (``src/models/vision_transformer.py``)
so the published encoder state dicts load after stripping their ``module.backbone.`` prefix:
``patch_embed.proj.{weight,bias}``, ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``,
``blocks.{i}.attn.proj``, ``blocks.{i}.norm2``, ``blocks.{i}.mlp.fc1``, ``blocks.{i}.mlp.fc2``,
``norm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
class ViTConfig:
    """Architecture of a video ViT.

    ``img_size`` and ``num_frames`` are the nominal input size (they define ``grid_hw`` and
    ``num_patches``); with RoPE the network itself accepts any multiple of the patch and
    tubelet sizes. The default ``num_frames = tubelet_size`` is one tubelet: the per-frame
    encoding of V-JEPA 2-AC.
    """

    img_size: int | tuple[int, int] = 64
    patch_size: int = 8
    tubelet_size: int = 2
    num_frames: int = 2
    in_chans: int = 3
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_layout: RopeLayout = "vjepa2"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if isinstance(self.img_size, Sequence):  # hydra hands lists
            object.__setattr__(self, "img_size", tuple(self.img_size))
        size = (self.img_size, self.img_size) if isinstance(self.img_size, int) else self.img_size
        if len(size) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size
        ):
            raise ValueError(
                "ViTConfig.img_size must be a positive int or (height, width), "
                f"got {self.img_size!r}"
            )
        for name in (
            "patch_size",
            "tubelet_size",
            "num_frames",
            "in_chans",
            "embed_dim",
            "depth",
            "num_heads",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ViTConfig.{name} must be a positive int, got {value!r}")
        height, width = self.img_hw
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"img_size {self.img_hw} must be divisible by patch_size {self.patch_size}"
            )
        if self.num_frames % self.tubelet_size:
            raise ValueError(
                f"num_frames {self.num_frames} must be divisible by "
                f"tubelet_size {self.tubelet_size}"
            )
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim {self.embed_dim} must be divisible by num_heads {self.num_heads}"
            )
        if rope_axis_dim(self.head_dim) == 0:
            raise ValueError(
                f"head_dim = embed_dim / num_heads must be >= 6 for 3D RoPE, got {self.head_dim}"
            )
        if not self.mlp_ratio > 0 or not self.norm_eps > 0 or not self.init_std > 0:
            raise ValueError(
                "mlp_ratio, norm_eps and init_std must be > 0, "
                f"got {self.mlp_ratio}, {self.norm_eps}, {self.init_std}"
            )
        if self.rope_layout not in ROPE_LAYOUTS:
            raise ValueError(f"rope_layout must be one of {ROPE_LAYOUTS}, got {self.rope_layout!r}")

    @property
    def img_hw(self) -> tuple[int, int]:
        """(height, width) of the nominal input image."""
        if isinstance(self.img_size, int):
            return (self.img_size, self.img_size)
        return self.img_size

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def grid_hw(self) -> tuple[int, int]:
        """Tokens per frame along height and width."""
        height, width = self.img_hw
        return (height // self.patch_size, width // self.patch_size)

    @property
    def tokens_per_frame(self) -> int:
        """Tokens per tubelet (per encoded frame in the per-frame setting)."""
        return self.grid_hw[0] * self.grid_hw[1]

    @property
    def num_patches(self) -> int:
        """Tokens for the nominal input (num_frames, img_size)."""
        return (self.num_frames // self.tubelet_size) * self.tokens_per_frame


_PUBLISHED = {"img_size": 256, "patch_size": 16, "tubelet_size": 2}
VIT_SIZES: dict[str, dict[str, Any]] = {
    # CPU-friendly sizes for 64x64 images: patch 8 -> 8 x 8 = 64 tokens per frame.
    "tiny": {"img_size": 64, "patch_size": 8, "embed_dim": 192, "depth": 6, "num_heads": 3},
    "small": {"img_size": 64, "patch_size": 8, "embed_dim": 384, "depth": 12, "num_heads": 6},
    # Published V-JEPA 2 widths (vit_base exists in the V-JEPA 2.1 release).
    "base": {**_PUBLISHED, "embed_dim": 768, "depth": 12, "num_heads": 12},
    "large": {**_PUBLISHED, "embed_dim": 1024, "depth": 24, "num_heads": 16},
    "huge": {**_PUBLISHED, "embed_dim": 1280, "depth": 32, "num_heads": 16},
    "giant": {**_PUBLISHED, "embed_dim": 1408, "depth": 40, "num_heads": 22, "mlp_ratio": 48 / 11},
}


def vit_config(size: str, **overrides: Any) -> ViTConfig:
    """A named size (``tiny``, ``small``, ``base``, ``large``, ``huge``, ``giant``), overridden."""
    if size not in VIT_SIZES:
        raise ValueError(f"unknown ViT size {size!r}; choose one of {sorted(VIT_SIZES)}")
    return ViTConfig(**{**VIT_SIZES[size], **overrides})


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: (B, C, T, H, W) -> (B, T/t * H/p * W/p, D) with a strided Conv3d."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D), raster order (t, h, w)


def apply_masks(x: Tensor, masks: Sequence[Tensor]) -> Tensor:
    """Keep the tokens listed by each mask: (B, N, D), K x (B, K') -> (len(masks) * B, K', D)."""
    kept = [torch.gather(x, 1, m.unsqueeze(-1).expand(-1, -1, x.shape[-1])) for m in masks]
    return torch.cat(kept, dim=0)


class VisionTransformer(nn.Module):
    """V-JEPA 2 video ViT encoder (no final pooling): video -> layer-normed patch tokens."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed3D(
            config.patch_size, config.tubelet_size, config.in_chans, config.embed_dim
        )
        self.blocks = nn.ModuleList(
            Block(
                config.embed_dim,
                config.num_heads,
                mlp_ratio=config.mlp_ratio,
                qkv_bias=config.qkv_bias,
                norm_eps=config.norm_eps,
            )
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        init_vjepa_weights(self, self.blocks, self.config.init_std)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, x: Tensor, masks: Tensor | Sequence[Tensor] | None = None) -> Tensor:
        """Encode a video clip.

        Args:
            x: (B, C, T, H, W) video; T a multiple of ``tubelet_size``, H and W of ``patch_size``.
            masks: optional indices of the tokens to KEEP, (B, K) integer raster indices into
                the full (T/t, H/p, W/p) token grid, or a list of such tensors (results are
                concatenated along the batch, as V-JEPA's ``apply_masks``). Dropped tokens
                never enter attention; kept tokens keep their original 3D positions.

        Returns:
            (B, N, D) tokens in raster order, or (len(masks) * B, K, D) with masks; final
            LayerNorm (with affine) applied.
        """
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_chans:
            raise ValueError(
                f"expected video of shape (B, {cfg.in_chans}, T, H, W), got {tuple(x.shape)}"
            )
        _, _, frames, height, width = x.shape
        if frames % cfg.tubelet_size or height % cfg.patch_size or width % cfg.patch_size:
            raise ValueError(
                f"T={frames} must be a multiple of tubelet_size {cfg.tubelet_size} and "
                f"H, W={height}, {width} multiples of patch_size {cfg.patch_size}"
            )
        grid_hw = (height // cfg.patch_size, width // cfg.patch_size)
        num_tokens = (frames // cfg.tubelet_size) * grid_hw[0] * grid_hw[1]

        tokens = self.patch_embed(x)  # (B, N, D)
        if masks is None:
            ids = torch.arange(num_tokens, device=x.device)  # (N,)
        else:
            masks = [masks] if isinstance(masks, Tensor) else list(masks)
            self._check_masks(masks, batch=x.shape[0], num_tokens=num_tokens)
            tokens = apply_masks(tokens, masks)  # (M * B, K, D)
            ids = torch.cat(masks, dim=0)  # (M * B, K)
        rope = rope_table(token_positions(ids, grid_hw), cfg.head_dim, layout=cfg.rope_layout)
        for block in self.blocks:
            tokens = block(tokens, rope=rope)  # (B', K, D)
        return self.norm(tokens)

    @staticmethod
    def _check_masks(masks: list[Tensor], *, batch: int, num_tokens: int) -> None:
        for i, mask in enumerate(masks):
            if mask.dtype.is_floating_point or mask.dtype == torch.bool:
                raise TypeError(
                    f"masks[{i}] must hold integer token indices, got dtype {mask.dtype}"
                )
            if mask.ndim != 2 or mask.shape[0] != batch or mask.shape[1] != masks[0].shape[1]:
                raise ValueError(
                    f"masks[{i}] must have shape ({batch}, K) with the same K for every mask, "
                    f"got {tuple(mask.shape)}"
                )
            if mask.numel() and (int(mask.min()) < 0 or int(mask.max()) >= num_tokens):
                raise ValueError(
                    f"masks[{i}] indices must lie in [0, {num_tokens}), "
                    f"got [{int(mask.min())}, {int(mask.max())}]"
                )


__all__ = [
    "VIT_SIZES",
    "PatchEmbed3D",
    "ViTConfig",
    "VisionTransformer",
    "apply_masks",
    "vit_config",
]
