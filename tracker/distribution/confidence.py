"""A confidence that means something: the probability that a face's estimate is right.

"Right" is the evaluation's success: NME (by the landmark box diagonal) within the 0.08
failure threshold. A logistic regression maps features of the classifier's posterior
and of the crop to that probability. It is fitted on held-out training faces (the
model's validation split) cropped from perturbed boxes, so that about a quarter fail,
and stored beside the model as ``NAME.confidence.json`` (``facetrack calibrate
--confidence``). Without that file the confidence is the raw posterior mass near the
estimate, as before.

Features, per face: the softmax mass of the kept classes within tau of the estimate,
the log of the mass the top k held, the entropy of the top k, the log spread of their
templates around the estimate (RMS, box units) and the log of how far the box implied by
the landmarks moved from the crop's box (a face sliding out of its crop).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FEATURES = ("near_mass", "log_topk_mass", "entropy", "log_spread", "log_drift")
PERTURB_SMALL = (0.12, 0.12)     # box shift (of its side) and log-scale bounds, half of the examples
PERTURB_LARGE = (0.35, 0.40)     # the other half: many of these fail
REPEATS = 8                      # perturbed boxes per validation face


def posterior_features(post, canon: np.ndarray, templates: np.ndarray, near_mass: np.ndarray,
                       drift: np.ndarray) -> np.ndarray:
    """(N, 5) features (see the module docstring) for a batch of faces."""
    p = post.probs
    entropy = -(p * np.log(p + 1e-12)).sum(1)
    spread = np.sqrt((p * ((templates[post.classes] - canon[:, None]) ** 2).sum(-1).mean(-1)).sum(1))
    return np.column_stack([near_mass, np.log(np.maximum(post.mass, 1e-9)), entropy,
                            np.log(np.maximum(spread, 1e-6)), np.log(np.asarray(drift, np.float64) + 1e-3)])


@dataclass
class ConfidenceCalibration:
    """Logistic regression on standardised features: P(success) = sigmoid(w . z + b)."""

    mean: list
    scale: list
    weights: list
    bias: float
    features: tuple = FEATURES
    stats: dict = field(default_factory=dict)

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> "ConfidenceCalibration":
        data = json.loads(Path(path).read_text())
        data["features"] = tuple(data.get("features", FEATURES))
        if data["features"] != FEATURES:
            raise ValueError(f"{path}: confidence features {data['features']} are not {FEATURES}")
        return cls(**data)


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


def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties half."""
    score, label = np.asarray(score, np.float64), np.asarray(label, bool)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    tie_rank = first + (counts + 1) / 2
    ranks[order] = np.repeat(tie_rank, counts)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability(prob: np.ndarray, success: np.ndarray, bins: int = 10) -> list[dict]:
    """Per bin of predicted probability: count, mean prediction, observed success rate."""
    prob, success = np.asarray(prob, np.float64), np.asarray(success, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(prob, edges) - 1, 0, bins - 1)
    return [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int((which == b).sum()),
             "predicted": float(prob[which == b].mean()) if (which == b).any() else float("nan"),
             "observed": float(success[which == b].mean()) if (which == b).any() else float("nan")}
            for b in range(bins)]


def perturbed_boxes(box: np.ndarray, rng, repeats: int = REPEATS) -> np.ndarray:
    """``repeats`` squares around ``box`` (4,), half moved a little and half a lot."""
    from tracker.geometry.boxes import box_center_size
    centre, side = box_center_size(np.asarray(box, np.float64))
    out = []
    for r in range(repeats):
        shift, log_scale = PERTURB_LARGE if r >= repeats // 2 else PERTURB_SMALL
        c = centre + rng.uniform(-shift, shift, 2) * side
        s = side * np.exp(rng.uniform(-log_scale, log_scale))
        out.append([c[0] - s / 2, c[1] - s / 2, c[0] + s / 2, c[1] + s / 2])
    return np.asarray(out)


def confidence_examples(landmarker, faces, seed: int = 0, repeats: int = REPEATS):
    """(features (M, 5), success (M,), errors (M,)) of ``faces`` (objects with .image and
    .landmarks) each cropped from ``repeats`` perturbed boxes and run through the landmarker
    (passes, regressors) as a fresh detection would be."""
    from tracker.evaluation.metrics import THRESHOLD, nme
    from tracker.geometry.boxes import landmark_box
    rng = np.random.default_rng(seed)
    feats, errors = [], []
    for face in faces:
        boxes = perturbed_boxes(landmark_box(face.landmarks), rng, repeats)
        estimates = landmarker.from_boxes(face.image, boxes, features=True)
        feats += [e.features for e in estimates]
        errors += [float(nme(e.landmarks, face.landmarks)) for e in estimates]
    errors = np.asarray(errors)
    return np.asarray(feats), errors <= THRESHOLD, errors
