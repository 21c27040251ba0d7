"""Random resized crops of video clips, as V-JEPA pretraining uses them.

Every clip gets one crop box (the same for all its frames, so motion stays consistent),
with an area fraction drawn uniformly from ``scale`` and a log-uniform aspect ratio from
``aspect_ratio``, at a uniformly drawn position; the box is resampled bilinearly to the
original size. All randomness comes from the caller's generator, so a resumed run draws the
same crops as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CropSpec:
    """Random resized crop ranges.

    Args:
        scale: (min, max) fraction of the frame's area kept, in (0, 1].
        aspect_ratio: (min, max) width / height of the crop box.
    """

    scale: tuple[float, float] = (0.3, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.35)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        object.__setattr__(self, "aspect_ratio", tuple(float(a) for a in self.aspect_ratio))
        low, high = self.scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        low, high = self.aspect_ratio
        if not 0.0 < low <= high:
            raise ValueError(f"crop aspect_ratio must satisfy 0 < min <= max, got {self.aspect_ratio}")


def crop_boxes(batch: int, spec: CropSpec, generator: torch.Generator) -> Tensor:
    """Crop boxes in normalised coordinates.

    Returns:
        float (batch, 4): centre x, centre y, width, height as fractions of the frame
        (width and height <= 1; the box lies inside the frame).
    """
    uniform = torch.rand(batch, 4, generator=generator, dtype=torch.float64)  # (B, 4)
    area = spec.scale[0] + (spec.scale[1] - spec.scale[0]) * uniform[:, 0]
    log_low, log_high = math.log(spec.aspect_ratio[0]), math.log(spec.aspect_ratio[1])
    ratio = torch.exp(log_low + (log_high - log_low) * uniform[:, 1])
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = width / 2 + (1 - width) * uniform[:, 2]
    centre_y = height / 2 + (1 - height) * uniform[:, 3]
    return torch.stack([centre_x, centre_y, width, height], dim=1).float()


def random_resized_crop(video: Tensor, spec: CropSpec, generator: torch.Generator) -> Tensor:
    """Crop every clip of a batch to a random box and resize it back.

    Args:
        video: float (B, C, T, H, W).
        spec: crop ranges.
        generator: CPU generator the boxes are drawn from.

    Returns:
        float (B, C, T, H, W): the cropped clips.
    """
    if video.ndim != 5:
        raise ValueError(f"expected a video batch (B, C, T, H, W), got shape {tuple(video.shape)}")
    batch, channels, steps, height, width = video.shape
    boxes = crop_boxes(batch, spec, generator).to(video.device)  # (B, 4)
    theta = torch.zeros(batch, 2, 3, device=video.device, dtype=video.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = boxes[:, 2], boxes[:, 3]  # half-extent in [-1, 1] units
    theta[:, 0, 2], theta[:, 1, 2] = 2 * boxes[:, 0] - 1, 2 * boxes[:, 1] - 1  # centre
    frames = video.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)
    theta = theta.repeat_interleave(steps, dim=0)  # (B*T, 2, 3)
    grid = F.affine_grid(theta, [batch * steps, channels, height, width], align_corners=False)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.unflatten(0, (batch, steps)).transpose(1, 2).contiguous()
