"""Similarity transforms between shapes: least-squares alignment, and random similarity jitter."""
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


def similarity_jitter(shapes: np.ndarray, rng, rotate_deg: float, log_scale: float, shift: float) -> np.ndarray:
    """Shapes (N, P, 2) each turned (uniform within +-``rotate_deg``), scaled (log scale within
    +-``log_scale``) about its centroid and shifted (within +-``shift`` of its side) at random."""
    n = len(shapes)
    centre = shapes.mean(axis=1, keepdims=True)
    side = np.ptp(shapes, axis=1).max(axis=1)[:, None, None]
    angle = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg, n))
    scale = np.exp(rng.uniform(-log_scale, log_scale, n))
    moved = rotate(shapes - centre, scale * np.cos(angle), scale * np.sin(angle))
    return centre + moved + rng.uniform(-shift, shift, (n, 1, 2)) * side


def alignment_matrix(shape: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Affine (2, 3) similarity taking ``shape`` (P, 2) onto ``target`` (least squares)."""
    mu_s, mu_t = shape.mean(axis=0), target.mean(axis=0)
    a, b = similarity_params(shape - mu_s, (target - mu_t)[None])
    a, b = float(a[0]), float(b[0])
    linear = np.array([[a, -b], [b, a]])
    return np.concatenate([linear, (mu_t - linear @ mu_s)[:, None]], axis=1)


def similarity_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Source shape moved onto target by the least-squares similarity transform."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    # Complex-number form of 2-D Procrustes: t ~ a * s with a complex.
    sc = s[:, 0] + 1j * s[:, 1]
    tc = t[:, 0] + 1j * t[:, 1]
    a = np.vdot(sc, tc) / max(np.vdot(sc, sc).real, 1e-12)
    out = a * sc
    return np.stack([out.real, out.imag], axis=1) + mu_t
