"""Similarity transforms between shapes: least-squares alignment (one solver, :func:`similarity_params`,
behind :func:`alignment_matrix` and :func:`similarity_align`), and the random similarity jitter."""
from __future__ import annotations

import numpy as np


def similarity_params(mean_centered: np.ndarray, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) per shape: the scale-rotation [[a, -b], [b, a]] taking the centred mean
    shape onto each of ``shapes`` (N, P, 2), translation removed (least squares)."""
    s = mean_centered[..., 0] + 1j * mean_centered[..., 1]
    t = shapes - shapes.mean(axis=-2, keepdims=True)
    t = t[..., 0] + 1j * t[..., 1]
    alpha = (np.conj(s)[None] * t).sum(-1) / max(float((np.abs(s) ** 2).sum()), 1e-12)
    return alpha.real, alpha.imag


def rotate(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectors (N, P, 2) through [[a, -b], [b, a]] per row."""
    x, y = vectors[..., 0], vectors[..., 1]
    a, b = a[:, None], b[:, None]
    return np.stack([a * x - b * y, b * x + a * y], axis=-1)


def unrotate(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rotate`."""
    norm = np.maximum(a * a + b * b, 1e-12)
    return rotate(vectors, a / norm, -b / norm)


def similarity_jitter(shapes: np.ndarray, rng, rotate_deg: float, log_scale: float, shift: float,
                      frame: tuple | None = None) -> np.ndarray:
    """Shapes (N, P, 2) each turned (uniform within +-``rotate_deg``) and scaled (log scale uniform
    within +-``log_scale``) about the centre of its frame, and shifted (uniform within +-``shift``
    of the frame's side), at random: the one shape jitter (the template bank's perturbed copies,
    the regressors' perturbed starts, the network stage's moved starts).

    ``frame``: (centre, side) shared by every shape (the canonical frame's box is (0.0, 1.0)),
    or by default each shape's own centroid and longer extent. Draws the angles (N), the log
    scales (N) and the shifts (N, 2), in that order; the shape is c + R (x - c) / s - d."""
    n = len(shapes)
    angle = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, n))
    scale = np.exp(rng.uniform(-log_scale, log_scale, n))
    move = rng.uniform(-shift, shift, (n, 2))
    if frame is None:
        centre, side = shapes.mean(axis=1, keepdims=True), np.ptp(shapes, axis=1).max(axis=1)[:, None, None]
    else:
        centre, side = frame
    cos, sin = np.cos(angle), np.sin(angle)
    turn = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)   # (N, 2, 2)
    return centre + np.einsum("nij,npj->npi", turn, shapes - centre) / scale[:, None, None] - move[:, None, :] * side


def alignment_matrix(shape: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Affine (2, 3) similarity taking ``shape`` (P, 2) onto ``target`` (least squares)."""
    mu_s, mu_t = shape.mean(axis=0), target.mean(axis=0)
    a, b = similarity_params(shape - mu_s, (target - mu_t)[None])
    a, b = float(a[0]), float(b[0])
    linear = np.array([[a, -b], [b, a]])
    return np.concatenate([linear, (mu_t - linear @ mu_s)[:, None]], axis=1)


def similarity_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Source shape (P, 2) moved onto target by the least-squares similarity transform
    (:func:`similarity_params`, as :func:`alignment_matrix`)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    centred = (source - mu_s)[None]
    a, b = similarity_params(centred[0], (target - mu_t)[None])
    return rotate(centred, a, b)[0] + mu_t
