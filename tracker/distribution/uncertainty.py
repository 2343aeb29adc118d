"""What a face's class distribution says beyond its landmarks: head pose with its spread,
and the spread of every landmark (paper Sec. 3, eq. 3).

Each pose class carries the yaw, pitch and roll of its template (:mod:`tracker.distribution.head_pose`)
and a spherical Gaussian of its own width; a face's top-k classes and probabilities give
the mean and standard deviation of each angle and, in pixels of its frame, the standard
deviation of each landmark under the mixture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.distribution.head_pose import class_poses, pose_moments
from tracker.distribution.posterior import Posterior, landmark_spread
from tracker.geometry.shapes import from_canonical

POSE_COLUMNS = ("yaw", "yaw_std", "pitch", "pitch_std", "roll", "roll_std")


def spread_columns(n_points: int = 68) -> tuple[str, ...]:
    return tuple(f"s_{i}" for i in range(n_points))


@dataclass(frozen=True)
class Uncertainty:
    """Head pose (degrees; yaw as OpenFace's pose_Ry) and per-landmark spread (pixels)."""

    pose: np.ndarray        # (3,) mean yaw, pitch, roll
    pose_std: np.ndarray    # (3,) their standard deviations
    spread: np.ndarray      # (68,) standard deviation of each landmark, pixels

    def pose_values(self) -> dict[str, float]:
        """``POSE_COLUMNS`` -> value, the six numbers in column order."""
        values = np.stack([self.pose, self.pose_std], axis=1).reshape(-1)
        return dict(zip(POSE_COLUMNS, (float(v) for v in values)))

    def spread_values(self) -> dict[str, float]:
        return dict(zip(spread_columns(len(self.spread)), (float(v) for v in self.spread)))


class UncertaintyReader:
    """Reads :class:`Uncertainty` from faces' top-k classes, for one model's classes.

    The class poses are computed on first use (about 0.1 s for 13k classes) and cached."""

    def __init__(self, templates: np.ndarray, widths: np.ndarray):
        self.templates = templates
        self.widths = widths
        self._poses = None

    @property
    def poses(self) -> np.ndarray:
        if self._poses is None:
            self._poses = class_poses(self.templates)
        return self._poses

    def __call__(self, classes: np.ndarray, probs: np.ndarray, box: np.ndarray) -> Uncertainty:
        """One face: its top-k ``classes`` and ``probs`` (k,), and the crop ``box`` (4,) that
        sets the pixel scale of its canonical frame."""
        classes, probs = np.asarray(classes)[None], np.asarray(probs, dtype=np.float64)[None]
        mean, std = pose_moments(classes, probs, self.poses)
        post = Posterior(classes, probs / probs.sum(), np.ones(1))
        side = float(box[2] - box[0])
        spread = landmark_spread(post, self.templates, self.widths)[0] * side
        return Uncertainty(mean[0], std[0], spread)


def landmark_heatmap(classes: np.ndarray, probs: np.ndarray, templates: np.ndarray, widths: np.ndarray,
                     box: np.ndarray, size: tuple[int, int], reach: float = 3.0) -> np.ndarray:
    """(H, W) float32 in [0, 1]: where each landmark may be under the face's mixture (eq. 3:
    its top-k ``classes`` with ``probs``, each a spherical Gaussian of its class width around
    the template's point, placed in the crop ``box``). Each landmark's density is scaled to
    peak at 1 and the landmarks are combined by their maximum, so a sure landmark is a small
    bright spot and an unsure one a wide dim cloud. ``size``: the frame's (height, width);
    each density is evaluated within ``reach`` of its widest class's sigma."""
    height, width = size
    out = np.zeros((height, width), np.float32)
    probs = np.asarray(probs, np.float64) / max(float(np.sum(probs)), 1e-300)
    points = from_canonical(templates[classes].astype(np.float64), np.asarray(box, np.float64))   # (k, 68, 2)
    sigma = np.maximum(widths[classes].astype(np.float64) * float(box[2] - box[0]), 0.5)         # (k,)
    pad = reach * sigma.max()
    for j in range(points.shape[1]):
        centres = points[:, j]
        x0, y0 = np.floor(centres.min(0) - pad).astype(int)
        x1, y1 = np.ceil(centres.max(0) + pad).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
        if x1 < x0 or y1 < y0:
            continue
        xs, ys = np.arange(x0, x1 + 1), np.arange(y0, y1 + 1)
        gx = np.exp(-(xs[None] - centres[:, :1]) ** 2 / (2 * sigma[:, None] ** 2))          # (k, w)
        gy = np.exp(-(ys[None] - centres[:, 1:]) ** 2 / (2 * sigma[:, None] ** 2))          # (k, h)
        density = np.einsum("k,kh,kw->hw", probs / (2 * np.pi * sigma ** 2), gy, gx)
        peak = density.max()
        if peak > 0:
            window = out[y0:y1 + 1, x0:x1 + 1]
            np.maximum(window, (density / peak).astype(np.float32), out=window)
    return out
