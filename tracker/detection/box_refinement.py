"""Detection refinement (the paper's Fig. 6): a ridge regressor on the classifier's embedding.

The classifier was trained on crops around the square landmark box
(:func:`tracker.geometry.boxes.landmark_box`). From the embedding of a crop around any box, a
linear map predicts the offsets that move that box onto the landmark box, in the units of
:meth:`tracker.detection.calibration.BoxCalibration.offsets`: (dx / side, dy / side, log side ratio)
(:func:`tracker.geometry.boxes.shift_boxes` applies them). The fitting is
:mod:`tracker.training.box_refinement`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.geometry.boxes import shift_boxes

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
