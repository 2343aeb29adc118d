"""Detection refinement (the paper's Fig. 6): a ridge regressor on the classifier's embedding.

The classifier was trained on crops around the square landmark box
(:func:`tracker.geometry.shapes.landmark_box`). From the embedding of a crop around any box, a
linear map predicts the offsets that move that box onto the landmark box, in the units of
:meth:`tracker.detection.detectors.BoxCalibration.offsets`: (dx / side, dy / side, log side ratio).
Training pairs are crops around matched, calibrated detector boxes (on randomly rescaled
images) and around landmark boxes jittered like the detector's residual errors.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tracker.detection.detectors import BoxCalibration, _rescaled
from tracker.geometry.boxes import box_center_size, iou, landmark_box, match_detections
from tracker.geometry.shapes import flip_horizontal, from_canonical

EMBED_BATCH = 64


# ----------------------------------------------------------------------------- regression

def fit_ridge(X, Y, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression ``Y ~ X @ W + b``, solved exactly by the normal equations.

    Inputs are standardised and outputs centred before the fit, so ``lam`` penalises the
    weights of unit-variance features: min ||Xs W' - Yc||^2 + lam ||W'||^2. The scaling
    and centring are folded back into the returned W (D, K) and b (K,).
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    x_mean, y_mean = X.mean(0), Y.mean(0)
    x_std = X.std(0)
    x_std = np.where(x_std > 1e-12, x_std, 1.0)
    Xs = (X - x_mean) / x_std
    gram = Xs.T @ Xs + lam * np.eye(X.shape[1])
    W = np.linalg.solve(gram, Xs.T @ (Y - y_mean)) / x_std[:, None]
    return W, y_mean - x_mean @ W


def shift_boxes(boxes, offsets) -> np.ndarray:
    """Square boxes moved by offsets (N, 3): centre + side * (dx, dy), side * exp(ds)."""
    center, side = box_center_size(np.asarray(boxes, dtype=np.float64)[..., :4])
    offsets = np.asarray(offsets, dtype=np.float64).reshape(center.shape[:-1] + (3,))
    center = center + side[..., None] * offsets[..., :2]
    half = (side * np.exp(offsets[..., 2]))[..., None] / 2
    return np.concatenate([center - half, center + half], axis=-1)


def offset_iou(predicted, target) -> np.ndarray:
    """IoU with the truth of a box moved by ``predicted`` when ``target`` moves it onto the truth."""
    unit = np.array([-0.5, -0.5, 0.5, 0.5])
    return iou(shift_boxes(np.broadcast_to(unit, np.shape(target)[:-1] + (4,)), predicted),
               shift_boxes(np.broadcast_to(unit, np.shape(target)[:-1] + (4,)), target))


@dataclass
class BoxRefiner:
    """Embedding (N, D) -> box offsets (N, 3) by a linear map; see :func:`fit_ridge`."""

    weights: np.ndarray             # (D, 3) float32
    bias: np.ndarray                # (3,) float32
    lam: float = 0.0                # the ridge strength it was fitted with
    n_fit: int = 0                  # training samples

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=np.float32).reshape(-1, 3)
        self.bias = np.asarray(self.bias, dtype=np.float32).reshape(3)

    @classmethod
    def identity(cls, dim: int = 256) -> "BoxRefiner":
        """The refiner that leaves every box as it is (made square)."""
        return cls(np.zeros((dim, 3)), np.zeros(3))

    @classmethod
    def fit(cls, features, offsets, lam: float) -> "BoxRefiner":
        W, b = fit_ridge(features, offsets, lam)
        return cls(W, b, lam=float(lam), n_fit=len(features))

    def offsets(self, features) -> np.ndarray:
        """Predicted (dx / side, dy / side, log side ratio) for embeddings (N, D)."""
        features = np.asarray(features, dtype=np.float32).reshape(-1, self.weights.shape[0])
        return features @ self.weights + self.bias

    def apply(self, features, boxes) -> np.ndarray:
        """Refined square boxes (N, 4) for the boxes (N, 4+) whose crops gave ``features``."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, np.shape(boxes)[-1])
        return shift_boxes(boxes, self.offsets(features))

    def to_dict(self) -> dict:
        """float32 tensors and plain numbers: numpy arrays would not load with
        ``torch.load(..., weights_only=True)``, tensors do."""
        import torch
        return {"weights": torch.from_numpy(self.weights.copy()), "bias": torch.from_numpy(self.bias.copy()),
                "lam": float(self.lam), "n_fit": int(self.n_fit)}

    @classmethod
    def from_dict(cls, data: dict) -> "BoxRefiner":
        """Inverse of :meth:`to_dict` (tensors or numpy arrays)."""
        return cls(np.asarray(data["weights"]), np.asarray(data["bias"]),
                   lam=float(data.get("lam", 0.0)), n_fit=int(data.get("n_fit", 0)))


# ----------------------------------------------------------------------------- features

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


def maybe_flipped(image: np.ndarray, points: np.ndarray, flip: bool):
    """The image and landmarks mirrored left-right when ``flip``."""
    if not flip:
        return image, points
    return np.ascontiguousarray(image[:, ::-1]), flip_horizontal(points, image.shape[1])


def matched_detector_box(landmarker, image: np.ndarray, gt_box: np.ndarray, min_iou: float):
    """The calibrated detector box (4,) that overlaps ``gt_box`` most, or None."""
    boxes = landmarker.face_boxes(image)
    k = match_detections(boxes, gt_box, min_iou)
    return None if k < 0 else boxes[k]


def jittered_boxes(gt_box: np.ndarray, n: int, spread, rng: np.random.Generator) -> np.ndarray:
    """``n`` copies of a box, shifted and log-scaled by Gaussians of sigmas ``spread``."""
    return shift_boxes(np.broadcast_to(gt_box, (n, 4)), rng.normal(0.0, 1.0, (n, 3)) * spread)


def _detector_samples(landmarker, face, rng, rescales, rescale, flip_prob, min_iou):
    """Crops around matched detector boxes on ``rescales`` resized (and maybe mirrored) copies."""
    crops, targets = [], []
    for _ in range(rescales):
        image, points = maybe_flipped(face.image, face.landmarks, rng.random() < flip_prob)
        if rescale is not None:
            factor = float(np.exp(rng.uniform(np.log(rescale[0]), np.log(rescale[1]))))
            image, points = _rescaled(image, points, factor)
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
        image, points = maybe_flipped(face.image, face.landmarks, flip)
        gt = landmark_box(points)
        boxes = jittered_boxes(gt, n, spread, rng)
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


# ----------------------------------------------------------------------------- evaluation

def rebox(landmarker, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """One pass of the landmark re-boxing: classify the crop at ``box``, box the landmarks."""
    _, canon = landmarker.classify_crops(landmarker.crops(image, box[None]))
    return landmarker.box_from_landmarks(from_canonical(canon, box[None]))[0]


def compare_on_detections(landmarker, refiner: BoxRefiner, faces, min_iou: float = 0.3) -> dict:
    """Mean IoU with the landmark box of the calibrated detector box, as given and after
    refinement, one or two re-boxings, and refinement then one re-boxing (images as given).

    Also the seconds per face of the embedding pass and of ``apply`` (measured per face).
    """
    kinds = ("calibrated", "refined", "reboxed", "reboxed_twice", "refined_reboxed")
    ious = {k: [] for k in kinds}
    embed_s, apply_s = [], []
    for face in faces:
        gt = landmark_box(face.landmarks)
        box = matched_detector_box(landmarker, face.image, gt, min_iou)
        if box is None:
            continue
        start = time.perf_counter()
        features = embed_crops(landmarker, landmarker.crops(face.image, box[None]))
        middle = time.perf_counter()
        refined = refiner.apply(features, box[None])[0]
        apply_s.append(time.perf_counter() - middle)
        embed_s.append(middle - start)
        reboxed = rebox(landmarker, face.image, box)
        boxes = {"calibrated": box, "refined": refined, "reboxed": reboxed,
                 "reboxed_twice": rebox(landmarker, face.image, reboxed),
                 "refined_reboxed": rebox(landmarker, face.image, refined)}
        for k in kinds:
            ious[k].append(float(iou(boxes[k], gt)))
    out = {f"iou_{k}": float(np.mean(v)) if v else float("nan") for k, v in ious.items()}
    out.update(n_faces=len(faces), n_detected=len(embed_s),
               embed_seconds_per_face=float(np.median(embed_s)) if embed_s else float("nan"),
               apply_seconds_per_face=float(np.median(apply_s)) if apply_s else float("nan"))
    return out
