"""Face boxes (x0, y0, x1, y1): the landmarks' square box, centre and side, overlap, drift, and
the one box jitter (:func:`shift_boxes`: a box moved and rescaled by offsets in box sides)."""
from __future__ import annotations

import numpy as np


def bounding_box(points: np.ndarray) -> np.ndarray:
    """Tight box (x0, y0, x1, y1) of the landmarks; works on (..., 68, 2)."""
    return np.concatenate([points.min(axis=-2), points.max(axis=-2)], axis=-1)


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


def landmark_box(points: np.ndarray) -> np.ndarray:
    """The square box around the landmarks that defines the canonical frame."""
    return square_box(bounding_box(points))


def iou(a, b) -> np.ndarray:
    """Intersection over union of boxes (..., 4+) x0, y0, x1, y1; broadcasts."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_detections(det_boxes, gt_box, min_iou: float = 0.3) -> int:
    """Index of the detection overlapping ``gt_box`` most, or -1 if none reaches min_iou."""
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, np.shape(det_boxes)[-1])
    if len(det_boxes) == 0:
        return -1
    overlaps = iou(det_boxes[:, :4], np.asarray(gt_box, dtype=np.float64)[:4])
    best = int(np.argmax(overlaps))
    return best if overlaps[best] >= min_iou else -1


def box_from_center_size(center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The square boxes (..., 4) of centres (..., 2) and sides (...)."""
    half = size[..., None] / 2
    return np.concatenate([center - half, center + half], axis=-1)


def shift_boxes(boxes, offsets) -> np.ndarray:
    """Square boxes moved by offsets (..., 3) in box sides: centre + side * (dx, dy), side * exp(ds);
    boxes and offsets broadcast (one box, many offsets: that box jittered many ways).

    The one box jitter: the units of :meth:`tracker.detection.calibration.BoxCalibration.offsets`
    and of the box refinement's targets; training draws the offsets at random (augmentation, the
    regressors' and the box refinement's jittered boxes, the calibrations' perturbed boxes)."""
    center, side = box_center_size(np.asarray(boxes, dtype=np.float64)[..., :4])
    offsets = np.asarray(offsets, dtype=np.float64)
    return box_from_center_size(center + side[..., None] * offsets[..., :2], side * np.exp(offsets[..., 2]))
