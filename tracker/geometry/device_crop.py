"""Face crops cut on the network's device with torchvision's ``roi_align`` (for a GPU).

The crops are those of :func:`tracker.geometry.crop.crop_batch` (an axis-aligned square region
around each box, bilinear, one sample per output pixel, black outside), cut from frames
uploaded once per batch: only whole frames cross to the GPU, and cropping runs there
beside the classifier. Values are not rounded to uint8, and OpenCV's bilinear weights are
quantised to 1/32, so crops agree with the CPU's to a few grey levels (median 0.2).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tracker.geometry.boxes import box_center_size
from tracker.geometry.crop import DEFAULT_MARGIN


def roi_regions(boxes: np.ndarray, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 for ``roi_align(aligned=True)``: the square of side ``margin``
    times each box's side about its centre, shifted half a pixel (roi_align puts pixel
    centres at +0.5, our crops at integers)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0, 4))
    center, side = box_center_size(boxes)
    half = (float(margin) * np.asarray(side, np.float64) / 2).reshape(-1, 1)
    center = np.asarray(center, np.float64).reshape(-1, 2)
    return np.concatenate([center - half + 0.5, center + half + 0.5], axis=1)


def device_crops(images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], out_size: int,
                 margin: float = DEFAULT_MARGIN, device="cpu"):
    """Crops (N, S, S, 3) float32 on ``device`` around ``boxes[i]`` (M_i, 4) of ``images[i]``
    (HxWx3 or HxW uint8), in that order; images of one size go up in one transfer."""
    import torch
    from torchvision.ops import roi_align
    rows = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
    total = sum(len(r) for r in rows)
    out = torch.zeros((total, 3, out_size, out_size), dtype=torch.float32, device=device)
    starts = np.cumsum([0] + [len(r) for r in rows])
    by_shape: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        if len(rows[i]):
            by_shape.setdefault(np.shape(image), []).append(i)
    for indices in by_shape.values():
        frames = torch.from_numpy(np.stack([_three_channels(images[i]) for i in indices])).to(device)
        # a black ring, so that roi_align's edge clamping blends the frame's edge with black as warpAffine does
        frames = torch.nn.functional.pad(frames.permute(0, 3, 1, 2).float(), (1, 1, 1, 1))
        regions = np.concatenate([np.concatenate([np.full((len(rows[i]), 1), k), roi_regions(rows[i], margin) + 1], 1)
                                  for k, i in enumerate(indices)])
        cut = roi_align(frames, torch.from_numpy(regions).to(device=device, dtype=torch.float32),
                        (out_size, out_size), spatial_scale=1.0, sampling_ratio=1, aligned=True)
        where = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in indices])
        out[torch.from_numpy(where).to(device)] = cut
    return out.permute(0, 2, 3, 1)


def _three_channels(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
