"""A confidence that means something: the probability that a face's estimate is right.

"Right" is the evaluation's success: NME (by the landmark box diagonal) within the 0.08
failure threshold. A logistic regression maps features of the classifier's posterior
and of the crop to that probability. It is fitted on held-out training faces (the
model's validation split) cropped from perturbed boxes, so that about a quarter fail,
and stored beside the model as ``NAME.confidence.json`` (``facetrack calibrate
--confidence``; the fitting is :mod:`tracker.training.calibration`'s). Without that file the
confidence is the raw posterior mass near the estimate, as before.

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


