"""Box calibrations: a face detector's boxes mapped onto the square landmark boxes the classifier
was trained on (:func:`tracker.geometry.boxes.landmark_box`), by the detector's average offset and
scale (the paper's "pre" step before the learned box refinement). Also the map from the box of
the model's own estimate to the true face box (the model's "landmarks" calibration). Fitted by
:mod:`tracker.training.calibration`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.geometry.boxes import box_center_size, box_from_center_size


def _center_size(boxes) -> tuple[np.ndarray, np.ndarray]:
    return box_center_size(np.asarray(boxes, dtype=np.float64)[..., :4])


@dataclass
class BoxCalibration:
    """Maps a detector's box to the square landmark box the classifier was trained on.

    With the detector box made square (centre c, side s = mean side), the target is the
    square of centre ``c + s * (ax, ay)`` and side ``s * exp(b)``. ``spread`` holds robust
    standard deviations of the residual (x, y, log-scale) errors, in the same units, which
    is what augmentation should simulate.
    """

    detector: str = "identity"
    ax: float = 0.0
    ay: float = 0.0
    b: float = 0.0
    spread: tuple[float, float, float] = (0.0, 0.0, 0.0)
    n_fit: int = 0

    @classmethod
    def identity(cls, detector: str = "identity") -> "BoxCalibration":
        """The calibration that only makes boxes square."""
        return cls(detector=detector)

    @staticmethod
    def offsets(det_boxes, gt_boxes) -> np.ndarray:
        """Per-pair (dx / s, dy / s, log(side ratio)) from detector to target boxes, (N, 3)."""
        c_det, s_det = _center_size(det_boxes)
        c_gt, s_gt = _center_size(gt_boxes)
        shift = (c_gt - c_det) / s_det[..., None]
        return np.concatenate([shift, np.log(s_gt / s_det)[..., None]], axis=-1).reshape(-1, 3)

    @classmethod
    def fit(cls, det_boxes, gt_boxes, detector: str = "unknown") -> "BoxCalibration":
        """Median offsets of matched (detector box, target box) pairs."""
        d = cls.offsets(det_boxes, gt_boxes)
        if len(d) == 0:
            raise ValueError("cannot fit a box calibration on zero pairs")
        median = np.median(d, axis=0)
        # Half the central 68 % range: a robust sigma that survives the many ties a
        # detector's quantised positions and scales produce (where a MAD collapses to 0).
        sigma = (np.percentile(d, 84, axis=0) - np.percentile(d, 16, axis=0)) / 2
        return cls(detector=detector, ax=float(median[0]), ay=float(median[1]),
                   b=float(median[2]), spread=tuple(float(v) for v in sigma),
                   n_fit=int(len(d)))

    def apply(self, boxes) -> np.ndarray:
        """Calibrated square boxes (..., 4) for detector boxes (..., 4+) (a score is dropped)."""
        center, side = _center_size(boxes)
        center = center + side[..., None] * np.array([self.ax, self.ay])
        return box_from_center_size(center, side * np.exp(self.b))

    def to_dict(self) -> dict:
        """Plain JSON-able fields."""
        return {"detector": self.detector, "ax": float(self.ax), "ay": float(self.ay),
                "b": float(self.b), "spread": [float(v) for v in self.spread],
                "n_fit": int(self.n_fit)}

    @classmethod
    def from_dict(cls, data: dict) -> "BoxCalibration":
        """Inverse of :meth:`to_dict` (missing optional fields take defaults)."""
        return cls(detector=str(data.get("detector", "unknown")), ax=float(data["ax"]),
                   ay=float(data["ay"]), b=float(data["b"]),
                   spread=tuple(float(v) for v in data.get("spread", (0.0, 0.0, 0.0))),
                   n_fit=int(data.get("n_fit", 0)))
