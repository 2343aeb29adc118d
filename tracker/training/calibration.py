"""Fitting the calibrations stored in a model: each detector's box calibration and the box of the
model's own estimates (:class:`tracker.detection.calibration.BoxCalibration`), and the confidence
calibration (:class:`tracker.distribution.confidence.ConfidenceCalibration`). Used by training's
last step and by ``facetrack calibrate``."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from tracker.detection.calibration import BoxCalibration
from tracker.detection.detectors import DETECTOR_NAMES, Detector, DetectorUnavailable, default_detector
from tracker.distribution.confidence import ConfidenceCalibration
from tracker.geometry.boxes import iou, landmark_box, match_detections, shift_boxes
from tracker.training.augment import rescale_sample

# ----------------------------------------------------------------------------- detector boxes


def _load_image(image) -> np.ndarray:
    if isinstance(image, (str, Path)):
        loaded = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if loaded is None:
            raise FileNotFoundError(f"cannot read image {image}")
        return loaded
    return image


def collect_matches(detector: Detector, images: Iterable, landmarks: Iterable,
                    min_iou: float = 0.3, rescale: tuple[float, float] | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Matched detector boxes (M, 4), their landmark boxes (M, 4), and the image count.

    With ``rescale=(lo, hi)`` each image is first resized by a log-uniform random factor
    (boxes are then in the resized frames; calibration offsets are scale-free).
    """
    rng = np.random.default_rng(seed)
    det_rows, gt_rows, n_images = [], [], 0
    for image, points in zip(images, landmarks):
        n_images += 1
        image = _load_image(image)
        points = np.asarray(points, dtype=np.float64)
        if rescale is not None:
            image, points = rescale_sample(image, points, rng, rescale)
        gt = landmark_box(points)
        found = detector.detect(image)
        k = match_detections(found, gt, min_iou)
        if k >= 0:
            det_rows.append(found[k, :4])
            gt_rows.append(gt)
    det = np.asarray(det_rows, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_rows, dtype=np.float64).reshape(-1, 4)
    return det, gt, n_images


def fit_calibration(detector: Detector, images: Iterable, landmarks: Iterable,
                    min_iou: float = 0.3, rescale: tuple[float, float] | None = (0.7, 1.5),
                    seed: int = 0) -> tuple[BoxCalibration, dict]:
    """Run ``detector`` on images (arrays or paths), match to landmark boxes, fit.

    By default every image is resized by a random factor in ``rescale`` first: detectors
    report positions and sizes on a coarse grid (dlib: 8-pixel HOG cells, 5/6 pyramid
    steps), and on data where all faces share one size and place (the 300-W crops) the
    fit would otherwise learn that grid's phase. ``rescale=None`` uses images as given.
    Returns the calibration and stats: n_images, n_detected, detection_rate, and mean
    IoU with the landmark box before (raw detector box) and after calibration.
    """
    det, gt, n_images = collect_matches(detector, images, landmarks, min_iou, rescale, seed)
    name = getattr(detector, "name", type(detector).__name__)
    calibration = BoxCalibration.fit(det, gt, detector=name)
    stats = {"n_images": n_images, "n_detected": int(len(det)),
             "detection_rate": len(det) / n_images if n_images else 0.0,
             "mean_iou_before": float(iou(det, gt).mean()),
             "mean_iou_after": float(iou(calibration.apply(det), gt).mean()),
             "rescale": None if rescale is None else [float(v) for v in rescale]}
    return calibration, stats


SLOW_DETECTOR_FACES = {"cnn": 500}   # faces a slow detector's calibration is fitted on (evenly spaced)


def calibrate_detectors(faces, names=DETECTOR_NAMES) -> tuple[dict, dict]:
    """Fit each available detector's box -> face-box calibration on training faces (randomly rescaled).

    Returns (detector name -> calibration dict, detector name -> fit statistics).
    """
    calibrations, stats = {}, {}
    for name in names:
        step = max(1, -(-len(faces) // SLOW_DETECTOR_FACES.get(name, len(faces) or 1)))
        subset = faces[::step]
        try:
            fitted, stats[name] = fit_calibration(default_detector(name), [f.image for f in subset],
                                                  [f.landmarks for f in subset])
        except (DetectorUnavailable, ValueError) as exc:
            stats[name] = {"error": str(exc)}
            continue
        calibrations[name] = fitted.to_dict()
    return calibrations, stats


def calibrate_landmark_boxes(model, faces, jitter: float = 0.03, repeats: int = 3,
                             seed: int = 0) -> tuple[dict, dict]:
    """Fit the map from the box of the model's own estimate to the true face box.

    Tracking crops each frame around the previous estimate; a small systematic error in
    the estimate's size would compound from frame to frame. Fitted on held-out faces
    cropped around slightly jittered true boxes (the error range of tracking).
    """
    from tracker.inference.landmarker import LANDMARK_BOXES, Landmarker
    rng = np.random.default_rng(seed)
    landmarker = Landmarker(model, passes=1)
    estimated, target = [], []
    for face in faces:
        true_box = landmark_box(face.landmarks)
        shifts = rng.normal(0, jitter, (repeats, 2))
        offsets = np.column_stack([shifts, rng.normal(0, jitter, repeats)])
        boxes = shift_boxes(true_box, offsets)
        for est in landmarker.from_boxes(face.image, boxes):
            estimated.append(landmark_box(est.landmarks))
            target.append(true_box)
    fitted = BoxCalibration.fit(np.array(estimated), np.array(target), LANDMARK_BOXES)
    # Mirrored templates and flip augmentation make the model left-right symmetric, so a
    # horizontal offset measured here is sampling noise; tracking would add it up frame after frame.
    fitted = dataclasses.replace(fitted, ax=0.0)
    return fitted.to_dict(), {"n": fitted.n_fit, "scale": float(np.exp(fitted.b)), "shift": [fitted.ax, fitted.ay]}


# ----------------------------------------------------------------------------- confidence

PERTURB_SMALL = (0.12, 0.12)     # box shift (of its side) and log-scale bounds, half of the examples
PERTURB_LARGE = (0.35, 0.40)     # the other half: many of these fail
REPEATS = 8                      # perturbed boxes per validation face


def fit_logistic(features: np.ndarray, success: np.ndarray, ridge: float = 1e-2,
                 iterations: int = 50) -> ConfidenceCalibration:
    """Newton's method on the L2-penalised log loss (the bias unpenalised)."""
    x = np.asarray(features, np.float64)
    y = np.asarray(success, np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-9
    z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    w = np.zeros(z.shape[1])
    penalty = ridge * np.r_[np.ones(z.shape[1] - 1), 0.0]
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return ConfidenceCalibration(mean=mean.tolist(), scale=scale.tolist(), weights=w[:-1].tolist(), bias=float(w[-1]))


def perturbed_boxes(box: np.ndarray, rng, repeats: int = REPEATS) -> np.ndarray:
    """``repeats`` squares around ``box`` (4,), half moved a little and half a lot."""
    offsets = []
    for r in range(repeats):
        shift, log_scale = PERTURB_LARGE if r >= repeats // 2 else PERTURB_SMALL
        offsets.append(np.r_[rng.uniform(-shift, shift, 2), rng.uniform(-log_scale, log_scale)])
    return shift_boxes(box, offsets)


def confidence_examples(landmarker, faces, seed: int = 0, repeats: int = REPEATS):
    """(features (M, 5), success (M,), errors (M,)) of ``faces`` (objects with .image and
    .landmarks) each cropped from ``repeats`` perturbed boxes and run through the landmarker
    (passes, regressors) as a fresh detection would be."""
    from tracker.evaluation.metrics import THRESHOLD, nme
    rng = np.random.default_rng(seed)
    feats, errors = [], []
    for face in faces:
        boxes = perturbed_boxes(landmark_box(face.landmarks), rng, repeats)
        estimates = landmarker.from_boxes(face.image, boxes, features=True)
        feats += [e.features for e in estimates]
        errors += [float(nme(e.landmarks, face.landmarks)) for e in estimates]
    errors = np.asarray(errors)
    return np.asarray(feats), errors <= THRESHOLD, errors
