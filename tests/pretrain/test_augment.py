"""Random resized crops for pretraining."""

import pytest
import torch

from jepa_wm.pretrain.augment import CropSpec, crop_boxes, random_resized_crop


def test_full_frame_crop_is_identity():
    video = torch.randn(2, 3, 4, 16, 16)  # (B, C, T, H, W)
    out = random_resized_crop(video, CropSpec(scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0)),
                              torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, video, rtol=0, atol=1e-5)


def test_boxes_respect_ranges_and_stay_inside():
    spec = CropSpec(scale=(0.3, 0.6), aspect_ratio=(0.75, 1.35))
    boxes = crop_boxes(4000, spec, torch.Generator().manual_seed(1))  # (B, 4)
    cx, cy, w, h = boxes.unbind(1)
    area, ratio = w * h, w / h
    assert area.min() >= 0.3 - 1e-5 and area.max() <= 0.6 + 1e-5
    assert ratio.min() >= 0.75 - 1e-4 and ratio.max() <= 1.35 + 1e-4
    assert (cx - w / 2).min() >= -1e-6 and (cx + w / 2).max() <= 1 + 1e-6
    assert (cy - h / 2).min() >= -1e-6 and (cy + h / 2).max() <= 1 + 1e-6


def test_crop_zooms_into_the_box_same_for_every_frame():
    """A quarter-area square crop of a horizontal ramp doubles its slope, in every frame."""
    ramp = torch.arange(32.0).expand(32, 32)  # value = column index
    video = ramp.expand(1, 1, 3, 32, 32).clone()  # (B, C, T, H, W)
    out = random_resized_crop(video, CropSpec(scale=(0.25, 0.25), aspect_ratio=(1.0, 1.0)),
                              torch.Generator().manual_seed(2))
    slope = out[0, 0, :, 10, 11:20] - out[0, 0, :, 10, 10:19]  # interior columns, each frame
    torch.testing.assert_close(slope, torch.full_like(slope, 0.5), rtol=0, atol=1e-4)
    torch.testing.assert_close(out[0, 0, 0], out[0, 0, 2])


def test_seeded_and_validated():
    video = torch.randn(3, 3, 2, 8, 8)
    spec = CropSpec()
    first = random_resized_crop(video, spec, torch.Generator().manual_seed(3))
    again = random_resized_crop(video, spec, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    with pytest.raises(ValueError, match="crop scale"):
        CropSpec(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="aspect_ratio"):
        CropSpec(aspect_ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="B, C, T, H, W"):
        random_resized_crop(torch.zeros(3, 8, 8), spec, torch.Generator())
