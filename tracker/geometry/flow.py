"""Points followed from one frame to the next by optical flow."""
from __future__ import annotations

import cv2
import numpy as np

FOLLOWED_SHARE = 0.6     # at least this share of the points must be followed (a face gone, or turned away: fewer)
MAX_STEP = 0.15          # at most this change of scale, and of rotation (radians), in one frame


def flowed(before: np.ndarray, after: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """``points`` (N, 2) of the grey image ``before`` (:attr:`tracker.io.sources.Frame.gray`)
    moved into the grey image ``after``: each followed by pyramidal
    Lucas-Kanade optical flow, then all moved together by the similarity transform (shift,
    rotation, scale) that best fits those followed, which keeps the flow's noise on single
    points out of the shape. None when the flow is not to be trusted: under FOLLOWED_SHARE of
    the points followed, or a step in scale or rotation over MAX_STEP."""
    start = np.ascontiguousarray(points, np.float32).reshape(-1, 1, 2)
    moved, ok, _ = cv2.calcOpticalFlowPyrLK(before, after, start, None, winSize=(15, 15), maxLevel=2)
    ok = ok.reshape(-1).astype(bool)
    if ok.sum() < max(3, FOLLOWED_SHARE * len(ok)):
        return None
    matrix, inliers = cv2.estimateAffinePartial2D(start[ok], moved[ok], method=cv2.LMEDS)
    if matrix is None or inliers.sum() < FOLLOWED_SHARE * len(ok):
        return None
    scale = np.hypot(matrix[0, 0], matrix[1, 0])
    if abs(scale - 1) > MAX_STEP or abs(np.arctan2(matrix[1, 0], matrix[0, 0])) > MAX_STEP:
        return None
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]
