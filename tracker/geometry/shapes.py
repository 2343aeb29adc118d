"""The 68-point iBUG / 300-W conventions in one place.

Landmarks are float arrays of shape (68, 2) holding (x, y) in 0-based pixels.
"""
from __future__ import annotations

import numpy as np

N_POINTS = 68

GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),
    "left_brow": range(22, 27),
    "nose": range(27, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "mouth": range(48, 68),
}

OUTER_EYE_CORNERS = (36, 45)
NOSE_TIP = 30


def _mirror_permutation() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(8)]                      # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]                # brows
    pairs += [(31, 35), (32, 34)]                                # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lip
    pairs += [(60, 64), (61, 63), (65, 67)]                      # inner lip
    perm = np.arange(N_POINTS)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


MIRROR = _mirror_permutation()
"""Index permutation: point i of a flipped face is point MIRROR[i] of the original."""


def flip_horizontal(points: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the image mirrored left-right (``width`` in pixels)."""
    flipped = points[..., MIRROR, :].copy()
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped


def bounding_box(points: np.ndarray) -> np.ndarray:
    """Tight box (x0, y0, x1, y1) of the landmarks; works on (..., 68, 2)."""
    return np.concatenate([points.min(axis=-2), points.max(axis=-2)], axis=-1)


def box_diagonal(points: np.ndarray) -> np.ndarray:
    """Diagonal of the landmarks' bounding box: the 300VW normaliser."""
    box = bounding_box(points)
    return np.hypot(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])


def interocular(points: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance: the common 300-W normaliser."""
    a, b = OUTER_EYE_CORNERS
    return np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1)


def square_box(box: np.ndarray) -> np.ndarray:
    """The square (x0, y0, x1, y1) with the same centre and the longer side."""
    box = np.asarray(box, dtype=np.float64)
    c = (box[..., :2] + box[..., 2:]) / 2
    half = np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])[..., None] / 2
    return np.concatenate([c - half, c + half], axis=-1)


def box_center_size(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (..., 2) and side (...) of a square box (mean side if not square)."""
    box = np.asarray(box, dtype=np.float64)
    center = (box[..., :2] + box[..., 2:]) / 2
    size = ((box[..., 2] - box[..., 0]) + (box[..., 3] - box[..., 1])) / 2
    return center, size


def box_drift(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """How far ``new`` boxes moved from ``old`` ones: max of centre shift and log-scale change, in box sides."""
    c0, s0 = box_center_size(old)
    c1, s1 = box_center_size(new)
    return np.maximum(np.linalg.norm(c1 - c0, axis=-1) / s0, np.abs(np.log(s1 / s0)))


def to_canonical(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Centre and scale landmarks by a face box: the box maps to [-0.5, 0.5]^2."""
    center, size = box_center_size(box)
    return (points - center[..., None, :]) / size[..., None, None]


def from_canonical(canonical: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_canonical`."""
    center, size = box_center_size(box)
    return canonical * size[..., None, None] + center[..., None, :]


def landmark_box(points: np.ndarray) -> np.ndarray:
    """The square box around the landmarks that defines the canonical frame."""
    return square_box(bounding_box(points))


