"""Face crops: the one place where image regions are cut out and resampled.

A crop is described by a (2, 3) affine matrix mapping source-image pixels to crop
pixels. Pixel coordinates are 0-based with integer values at pixel centres (the
convention of ``cv2.warpAffine`` and of the landmarks), so a crop's centre is
``((S - 1) / 2, (S - 1) / 2)`` and its S pixels span the continuous range [-0.5, S - 0.5].
"""
from __future__ import annotations

import cv2
import numpy as np

from tracker.geometry.boxes import box_center_size

DEFAULT_MARGIN = 1.3


def crop_matrix(box, out_size: int, margin: float = DEFAULT_MARGIN,
                angle_deg: float = 0.0) -> np.ndarray:
    """Affine (2, 3) mapping a square region around ``box`` onto an S x S crop.

    The region is centred on the box centre with side ``margin`` times the box side
    (the mean side if the box is not square). With ``angle_deg`` the crop's content is
    the source rotated counter-clockwise by that angle as displayed (y down), about the
    box centre: the ``cv2.getRotationMatrix2D`` convention, so a face rolled clockwise
    by ``angle_deg`` comes out upright.
    """
    center, side = box_center_size(np.asarray(box, dtype=np.float64)[:4])
    region = float(margin) * float(side)
    if not region > 0:
        raise ValueError(f"crop region must have a positive size, got box {box!r}")
    k = out_size / region
    theta = np.deg2rad(angle_deg)
    cos, sin = k * np.cos(theta), k * np.sin(theta)
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = (out_size - 1) / 2.0 - linear @ center
    return np.concatenate([linear, offset[:, None]], axis=1)


def warp_crop(image: np.ndarray, matrix: np.ndarray, out_size: int,
              interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resample ``image`` through ``matrix`` into an S x S crop (black outside)."""
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), (out_size, out_size),
                          flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply an affine (..., 2, 3) to points (..., P, 2); leading axes broadcast."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.einsum("...ij,...pj->...pi", matrix[..., :2], points) + matrix[..., None, :, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of an affine (..., 2, 3): maps crop pixels back to the source image."""
    matrix = np.asarray(matrix, dtype=np.float64)
    linear_inv = np.linalg.inv(matrix[..., :2])
    offset = -np.einsum("...ij,...j->...i", linear_inv, matrix[..., 2])
    return np.concatenate([linear_inv, offset[..., None]], axis=-1)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine applying ``inner`` first, then ``outer``."""
    outer = np.asarray(outer, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64)
    linear = outer[..., :2] @ inner[..., :2]
    offset = np.einsum("...ij,...j->...i", outer[..., :2], inner[..., 2]) + outer[..., 2]
    return np.concatenate([linear, offset[..., None]], axis=-1)


def crop_batch(image: np.ndarray, boxes, out_size: int,
               margin: float = DEFAULT_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Crops around several boxes of one image: (N, S, S[, C]) uint8 and (N, 2, 3) matrices."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, np.shape(boxes)[-1])
    matrices = np.stack([crop_matrix(b, out_size, margin) for b in boxes]) if len(boxes) \
        else np.zeros((0, 2, 3))
    crops = np.zeros((len(boxes), out_size, out_size) + image.shape[2:], dtype=image.dtype)
    for i, m in enumerate(matrices):
        crops[i] = warp_crop(image, m, out_size)
    return crops, matrices
