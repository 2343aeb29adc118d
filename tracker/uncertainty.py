"""What a face's class distribution says beyond its landmarks: head pose with its spread,
and the spread of every landmark (paper Sec. 3, eq. 3).

Each pose class carries the yaw, pitch and roll of its template (:mod:`tracker.headpose`)
and a spherical Gaussian of its own width; a face's top-k classes and probabilities give
the mean and standard deviation of each angle and, in pixels of its frame, the standard
deviation of each landmark under the mixture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .headpose import class_poses, pose_moments
from .posterior import Posterior, landmark_spread

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
