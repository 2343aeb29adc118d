"""The 68-point iBUG / 300-W conventions in one place.

Landmarks are float arrays of shape (68, 2) holding (x, y) in 0-based pixels.
"""
from __future__ import annotations

import numpy as np

from tracker.geometry.boxes import bounding_box, box_center_size

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


def box_diagonal(points: np.ndarray) -> np.ndarray:
    """Diagonal of the landmarks' bounding box: the 300VW normaliser."""
    box = bounding_box(points)
    return np.hypot(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])


def interocular(points: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance: the common 300-W normaliser."""
    a, b = OUTER_EYE_CORNERS
    return np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1)


def to_canonical(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Centre and scale landmarks by a face box: the box maps to [-0.5, 0.5]^2."""
    center, size = box_center_size(box)
    return (points - center[..., None, :]) / size[..., None, None]


def from_canonical(canonical: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_canonical`."""
    center, size = box_center_size(box)
    return canonical * size[..., None, None] + center[..., None, :]


