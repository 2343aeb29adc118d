"""Fitting the box refinement (:class:`tracker.detection.box_refinement.BoxRefiner`, the paper's
Fig. 6): training pairs are crops around matched, calibrated detector boxes (on randomly
rescaled images) and around landmark boxes jittered like the detector's residual errors, each
with the offsets that move its box onto the landmark box; a ridge regression from the
classifier's embedding of the crop to those offsets."""
from __future__ import annotations

import time

import numpy as np

from tracker.detection.box_refinement import BoxRefiner
from tracker.detection.calibration import BoxCalibration
from tracker.geometry.boxes import iou, landmark_box, match_detections, shift_boxes
from tracker.training.augment import flip_sample, rescale_sample

EMBED_BATCH = 64

# ----------------------------------------------------------------------------- samples


def offset_iou(predicted, target) -> np.ndarray:
    """IoU with the truth of a box moved by ``predicted`` when ``target`` moves it onto the truth."""
    unit = np.array([-0.5, -0.5, 0.5, 0.5])
    return iou(shift_boxes(unit, predicted), shift_boxes(unit, target))


def embed_crops(landmarker, crops: np.ndarray, batch_size: int = EMBED_BATCH) -> np.ndarray:
    """Classifier embeddings (N, D) float32 of crops (N, S, S, 3), in batches."""
    out = [landmarker.scores(crops[i:i + batch_size], embed=True)[0] for i in range(0, len(crops), batch_size)]
    if not out:
        return np.zeros((0, landmarker.model.config["model"].get("embedding") or 0), np.float32)
    return np.concatenate(out).astype(np.float32)


class _BatchedEmbedder:
    """Collects crops and embeds them a full batch at a time."""

    def __init__(self, landmarker, batch_size: int):
        self.landmarker, self.batch_size = landmarker, batch_size
        self.pending, self.done = [], []

    def add(self, crops: np.ndarray) -> None:
        self.pending.extend(crops)
        while len(self.pending) >= self.batch_size:
            batch, self.pending = self.pending[:self.batch_size], self.pending[self.batch_size:]
            self.done.append(embed_crops(self.landmarker, np.stack(batch), self.batch_size))

    def result(self) -> np.ndarray:
        if self.pending:
            self.done.append(embed_crops(self.landmarker, np.stack(self.pending), self.batch_size))
            self.pending = []
        if not self.done:
            return np.zeros((0, self.landmarker.model.network.classifier.in_features), np.float32)
        return np.concatenate(self.done)


def detector_spread(landmarker) -> np.ndarray:
    """Residual (x, y, log-scale) sigmas of the first calibrated detector (zeros if none)."""
    for detector in landmarker.detectors:
        spread = np.asarray(landmarker.calibrations[detector.name].spread, dtype=np.float64)
        if spread.any():
            return spread
    return np.zeros(3)


def _maybe_flipped(face, flip: bool):
    """The face's image and landmarks, mirrored left-right when ``flip``."""
    return flip_sample(face.image, face.landmarks) if flip else (face.image, face.landmarks)


def matched_detector_box(landmarker, image: np.ndarray, gt_box: np.ndarray, min_iou: float):
    """The calibrated detector box (4,) that overlaps ``gt_box`` most, or None."""
    boxes = landmarker.face_boxes(image)
    k = match_detections(boxes, gt_box, min_iou)
    return None if k < 0 else boxes[k]


def _detector_samples(landmarker, face, rng, rescales, rescale, flip_prob, min_iou):
    """Crops around matched detector boxes on ``rescales`` resized (and maybe mirrored) copies."""
    crops, targets = [], []
    for _ in range(rescales):
        image, points = _maybe_flipped(face, rng.random() < flip_prob)
        if rescale is not None:
            image, points = rescale_sample(image, points, rng, rescale)
        gt = landmark_box(points)
        box = matched_detector_box(landmarker, image, gt, min_iou)
        if box is not None:
            crops.append(landmarker.crops(image, box[None]))
            targets.append(BoxCalibration.offsets(box[None], gt[None]))
    return crops, targets


def _jitter_samples(landmarker, face, rng, jitters, spread, flip_prob):
    """Crops around jittered landmark boxes, each on the image or its mirror."""
    crops, targets = [], []
    flips = rng.random(jitters) < flip_prob
    for flip in (False, True):
        n = int((flips == flip).sum())
        if n == 0:
            continue
        image, points = _maybe_flipped(face, flip)
        gt = landmark_box(points)
        boxes = shift_boxes(gt, rng.normal(0.0, 1.0, (n, 3)) * spread)
        crops.append(landmarker.crops(image, boxes))
        targets.append(BoxCalibration.offsets(boxes, np.broadcast_to(gt, boxes.shape)))
    return crops, targets


def refinement_samples(landmarker, faces, rescales: int = 2, jitters: int = 4,
                       rescale: tuple[float, float] | None = (0.7, 1.5), spread=None,
                       flip_prob: float = 0.5, min_iou: float = 0.3, seed: int = 0,
                       batch_size: int = EMBED_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (N, D) float32 and target offsets (N, 3) for training the refiner.

    Per face: the matched calibrated detector box on ``rescales`` copies of the image,
    each resized by a log-uniform factor in ``rescale`` (None: as given) and mirrored with
    probability ``flip_prob``; and ``jitters`` landmark boxes jittered by Gaussians of
    sigmas ``spread`` (default: the model's detector calibration spread), also mirrored
    at random. The targets are the offsets from each crop's box to the landmark box.
    """
    rng = np.random.default_rng(seed)
    spread = detector_spread(landmarker) if spread is None else np.asarray(spread, dtype=np.float64)
    embedder, targets = _BatchedEmbedder(landmarker, batch_size), []
    for face in faces:
        detected = _detector_samples(landmarker, face, rng, rescales, rescale, flip_prob, min_iou)
        jittered = _jitter_samples(landmarker, face, rng, jitters, spread, flip_prob)
        for crops, offsets in (detected, jittered):
            for c in crops:
                embedder.add(c)
            targets.extend(offsets)
    Y = np.concatenate(targets) if targets else np.zeros((0, 3))
    return embedder.result(), Y


# ----------------------------------------------------------------------------- fitting

def mean_offset_iou(refiner: BoxRefiner, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """Mean IoU with the truth of the sampled boxes, before and after refinement."""
    if len(Y) == 0:
        return float("nan"), float("nan")
    return float(offset_iou(np.zeros_like(Y), Y).mean()), float(offset_iou(refiner.offsets(X), Y).mean())


def apply_seconds(refiner: BoxRefiner, dim: int, repeats: int = 2000) -> float:
    """Seconds per call of :meth:`BoxRefiner.apply` on one face (features already computed)."""
    features, box = np.ones((1, dim), np.float32), np.array([[0.0, 0.0, 100.0, 100.0]])
    start = time.perf_counter()
    for _ in range(repeats):
        refiner.apply(features, box)
    return (time.perf_counter() - start) / repeats


def fit_box_refiner(landmarker, train_faces, val_faces, lams=(0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4),
                    rescales: int = 2, jitters: int = 4, seed: int = 0) -> tuple[BoxRefiner, dict]:
    """Fit on ``train_faces``; pick the ridge strength by mean validation IoU.

    Lambda is chosen on all validation samples together: the calibrated detector boxes on
    the images as given (no rescale, no flip) and ``jitters`` jittered landmark boxes per face.
    Stats: the per-lambda validation IoUs, the chosen lambda, mean IoU with the truth
    before/after on each validation kind, sample counts and seconds per face of ``apply``.
    """
    X, Y = refinement_samples(landmarker, train_faces, rescales, jitters, seed=seed)
    Xd, Yd = refinement_samples(landmarker, val_faces, rescales=1, jitters=0, rescale=None, flip_prob=0.0,
                                seed=seed + 1)
    Xj, Yj = refinement_samples(landmarker, val_faces, rescales=0, jitters=jitters, seed=seed + 2)
    Xv, Yv = np.concatenate([Xd, Xj]), np.concatenate([Yd, Yj])
    fitted = {float(lam): BoxRefiner.fit(X, Y, lam) for lam in lams}
    val_iou = {lam: mean_offset_iou(r, Xv, Yv)[1] for lam, r in fitted.items()}
    best = max(val_iou, key=val_iou.get)
    refiner = fitted[best]
    det_before, det_after = mean_offset_iou(refiner, Xd, Yd)
    jit_before, jit_after = mean_offset_iou(refiner, Xj, Yj)
    stats = {"lam": best, "val_iou_by_lam": val_iou, "n_train_samples": int(len(Y)),
             "n_val_faces": len(val_faces), "n_val_detected": int(len(Yd)), "n_val_jittered": int(len(Yj)),
             "val_detector_iou_before": det_before, "val_detector_iou_after": det_after,
             "val_jitter_iou_before": jit_before, "val_jitter_iou_after": jit_after,
             "apply_seconds_per_face": apply_seconds(refiner, X.shape[1])}
    return refiner, stats


# ----------------------------------------------------------------------------- measurements


