"""The 300VW evaluation protocol: NME, CED, AUC@0.08, failure rate, hard subset.

A frame with ground truth but no prediction has error ``inf``: it counts as a failure
and contributes nothing to the AUC.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tracker.geometry.alignment import similarity_align
from tracker.geometry.shapes import box_diagonal, interocular

THRESHOLD = 0.08


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean point-to-point distance per face, in pixels; (..., 68, 2) -> (...)."""
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "diag") -> np.ndarray:
    """Normalised mean error per face: by the GT box diagonal ('diag') or outer-eye distance ('io')."""
    scale = {"diag": box_diagonal, "io": interocular}[norm](gt)
    return point_errors(pred, gt) / scale


def ced(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Cumulative error distribution: fraction of errors <= each threshold."""
    errors = np.sort(np.asarray(errors, dtype=np.float64))
    if errors.size == 0:
        return np.zeros(len(thresholds))
    return np.searchsorted(errors, thresholds, side="right") / errors.size


def auc(errors: np.ndarray, threshold: float = THRESHOLD) -> float:
    """Area under the CED from 0 to ``threshold``, divided by ``threshold`` (exact).

    Each error e contributes max(0, threshold - e) to the integral of the step CED.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return float("nan")
    return float(np.clip(threshold - errors, 0.0, None).mean() / threshold)


def failure_rate(errors: np.ndarray, threshold: float = THRESHOLD) -> float:
    """Fraction of faces with error above ``threshold`` (missing ones included)."""
    errors = np.asarray(errors, dtype=np.float64)
    return float((errors > threshold).mean()) if errors.size else float("nan")


def mean_shape(shapes: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Generalised Procrustes mean of (n, 68, 2) shapes."""
    ref = shapes[0] - shapes[0].mean(axis=0)
    for _ in range(iterations):
        aligned = np.stack([similarity_align(s, ref) for s in shapes])
        ref = aligned.mean(axis=0)
        ref = ref - ref.mean(axis=0)
        ref = ref / np.linalg.norm(ref)
    return ref


def shape_deviation(shapes: np.ndarray) -> np.ndarray:
    """How far each shape is from the mean shape after similarity alignment.

    Each shape's mean shape is aligned onto it, and the mean point distance is
    divided by the shape's box diagonal, so size does not matter.
    """
    ref = mean_shape(shapes)
    fitted = np.stack([similarity_align(ref, s) for s in shapes])
    return point_errors(fitted, shapes) / box_diagonal(shapes)


def hard_subset(shapes: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Indices of the ``fraction`` of shapes that deviate most from the mean shape."""
    n = len(shapes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, int(round(fraction * n)))
    return np.sort(np.argsort(-shape_deviation(shapes), kind="stable")[:k])


@dataclass(frozen=True)
class Summary:
    """One row of an evaluation table."""

    nme_diag: float
    nme_io: float
    auc: float
    failure_rate: float
    n: int
    missing: int
    jitter: float = float("nan")      # of the predictions on video (see :func:`jitter`); nan for stills
    median_io: float = float("nan")   # median inter-ocular NME of the predicted faces

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(err_diag: np.ndarray, err_io: np.ndarray) -> Summary:
    """Table row from per-face errors (``inf`` marks a missing prediction).

    The NMEs average the predicted faces only; AUC and failure rate count the
    missing ones as failures.
    """
    err_diag = np.asarray(err_diag, dtype=np.float64)
    err_io = np.asarray(err_io, dtype=np.float64)
    found = np.isfinite(err_diag)
    return Summary(
        nme_diag=float(err_diag[found].mean()) if found.any() else float("nan"),
        nme_io=float(err_io[found].mean()) if found.any() else float("nan"),
        auc=auc(err_diag),
        failure_rate=failure_rate(err_diag),
        n=int(err_diag.size),
        missing=int((~found).sum()),
        median_io=float(np.median(err_io[found])) if found.any() else float("nan"),
    )


def jitter(tracks: dict) -> float:
    """Frame-to-frame jitter of landmarks on video: the mean second difference
    |p[t+1] - 2 p[t] + p[t-1]| over points and frames, over the box diagonal at t.

    ``tracks`` maps a frame number to that frame's (68, 2) landmarks (one face); only
    frames whose neighbours both have landmarks count. A constant velocity costs nothing,
    so this measures shake, not motion. NaN when no three consecutive frames exist."""
    values = []
    for t, here in tracks.items():
        before, after = tracks.get(t - 1), tracks.get(t + 1)
        if before is None or after is None or here is None:
            continue
        second = np.linalg.norm(after - 2 * here + before, axis=-1).mean()
        values.append(second / box_diagonal(here))
    return float(np.mean(values)) if values else float("nan")
