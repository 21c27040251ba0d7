"""Frozen per-frame encoder: images -> layer-normed patch tokens, as V-JEPA 2-AC encodes them.

Each frame is encoded on its own: it is repeated ``tubelet_size`` times to fill one tubelet, so
a frame gives ``H/p * W/p`` tokens. The tokens are then layer-normed without affine parameters
(``F.layer_norm(z, (D,))``), which is what the action-conditioned predictor predicts and what
the planner's energy compares.

With ``pool > 1`` the frame's token grid is average-pooled ``pool x pool`` before the layer
norm (an 8x8 grid becomes 4x4 with ``pool=2``): the predictor then works on a quarter of the
tokens, which is what makes CPU planning fast, while every token still carries the
encoder's full width.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jepa_wm.encoders.vit import VisionTransformer

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenEncoder(nn.Module):
    """A ViT in eval mode with no gradients, encoding (B, T, 3, H, W) frames to (B, T, N, D).

    Args:
        vit: the encoder; its parameters are frozen in place (``requires_grad_(False)``).
        chunk_size: frames encoded per forward pass (bounds memory for long batches).
        resize: resize frames whose size differs from the encoder's ``img_size`` (bilinear,
            antialiased); when False such frames raise a ValueError.
        pool: average-pool the token grid by ``pool x pool`` (must divide the grid).

    Attributes the predictor can size itself from: ``embed_dim`` (D), ``grid_hw`` (tokens per
    frame along height and width), ``num_patches`` (N = tokens per frame), ``img_hw``.
    """

    def __init__(
        self, vit: VisionTransformer, *, chunk_size: int = 64, resize: bool = False, pool: int = 1
    ) -> None:
        super().__init__()
        if not isinstance(vit, VisionTransformer):
            raise TypeError(f"vit must be a VisionTransformer, got {type(vit).__name__}")
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        grid_h, grid_w = vit.config.grid_hw
        if not isinstance(pool, int) or pool < 1 or grid_h % pool or grid_w % pool:
            raise ValueError(f"pool must be a positive int dividing the {grid_h}x{grid_w} token grid, got {pool!r}")
        self.vit = vit.eval().requires_grad_(False)
        self.chunk_size = chunk_size
        self.resize = resize
        self.pool = pool
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def embed_dim(self) -> int:
        return self.vit.config.embed_dim

    @property
    def grid_hw(self) -> tuple[int, int]:
        """Tokens per encoded frame along height and width (after pooling)."""
        grid_h, grid_w = self.vit.config.grid_hw
        return grid_h // self.pool, grid_w // self.pool

    @property
    def num_patches(self) -> int:
        """Tokens per encoded frame (after pooling)."""
        grid_h, grid_w = self.grid_hw
        return grid_h * grid_w

    @property
    def img_hw(self) -> tuple[int, int]:
        return self.vit.config.img_hw

    @property
    def device(self) -> torch.device:
        return self.vit.patch_embed.proj.weight.device

    def train(self, mode: bool = True) -> FrozenEncoder:
        """The encoder stays in eval mode whatever a parent module asks."""
        super().train(False)
        return self

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """Encode frames one by one.

        Args:
            frames: (B, T, 3, H, W) uint8 in [0, 255] or float in [0, 1], on any device.

        Returns:
            (B, T, N, D) float32 tokens on the encoder's device, layer-normed without affine
            parameters (per token: mean 0, variance 1 over D), whatever the ViT's dtype.
        """
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must have shape (B, T, 3, H, W), got {tuple(frames.shape)}")
        batch, steps = frames.shape[:2]
        flat = frames.flatten(0, 1)  # (B*T, 3, H, W)
        chunks = [
            self._encode_chunk(flat[i : i + self.chunk_size])
            for i in range(0, flat.shape[0], self.chunk_size)
        ]
        if not chunks:
            raise ValueError(
                f"frames must hold at least one frame, got shape {tuple(frames.shape)}"
            )
        tokens = torch.cat(chunks, dim=0)  # (B*T, N, D)
        return tokens.view(batch, steps, self.num_patches, self.embed_dim)  # (B, T, N, D)

    forward = encode

    def _encode_chunk(self, images: Tensor) -> Tensor:
        """(n, 3, H, W) raw images -> (n, N, D) normalised tokens."""
        x = self.preprocess(images)  # (n, 3, H', W')
        clip = x.unsqueeze(2).expand(
            -1, -1, self.vit.config.tubelet_size, -1, -1
        )  # (n, 3, t, H', W')
        tokens = self.vit(clip)  # (n, H'*W', D)
        if self.pool > 1:
            grid = tokens.transpose(1, 2).unflatten(2, self.vit.config.grid_hw)  # (n, D, H', W')
            tokens = F.avg_pool2d(grid, self.pool).flatten(2).transpose(1, 2)  # (n, N, D)
        return F.layer_norm(tokens.float(), (tokens.shape[-1],))  # float32 whatever the ViT dtype

    def preprocess(self, images: Tensor) -> Tensor:
        """(n, 3, H, W) uint8 or [0, 1] float -> ImageNet-normalised, encoder size and dtype."""
        if images.dtype == torch.uint8:
            x = images.to(self.device, torch.float32) / 255.0
        elif images.dtype.is_floating_point:
            x = images.to(self.device, torch.float32)
            if x.numel() and (float(x.min()) < -1e-3 or float(x.max()) > 1.0 + 1e-3):
                raise ValueError(
                    f"float frames must lie in [0, 1], got [{float(x.min()):.3g}, "
                    f"{float(x.max()):.3g}]; pass uint8 for 0..255 images"
                )
        else:
            raise TypeError(f"frames must be uint8 or floating point, got {images.dtype}")
        if tuple(x.shape[-2:]) != self.img_hw:
            if not self.resize:
                raise ValueError(
                    f"frames are {tuple(x.shape[-2:])} but the encoder expects {self.img_hw}; "
                    "resize them or build FrozenEncoder(..., resize=True)"
                )
            x = F.interpolate(
                x, size=self.img_hw, mode="bilinear", antialias=True, align_corners=False
            )
        dtype = self.vit.patch_embed.proj.weight.dtype
        return ((x - self.mean.float()) / self.std.float()).to(dtype)

    def describe(self) -> dict[str, Any]:
        """The ViT config and, when pooling, ``pool`` (unpooled encoders keep their earlier
        fingerprints and latent-cache headers)."""
        return {**asdict(self.vit.config), **({"pool": self.pool} if self.pool > 1 else {})}

    def fingerprint(self) -> str:
        """Short hash of the architecture, weights and preprocessing (names a latent cache)."""
        digest = hashlib.sha256()
        digest.update(
            json.dumps({**self.describe(), "resize": self.resize}, sort_keys=True).encode()
        )
        for name, tensor in sorted(self.vit.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]
