"""Slow references for the neighbour search (kernels/knn.py via tracker.distribution.poses.knn_graph)."""
from __future__ import annotations

import numpy as np


def structured_shapes(rng, n, spread=0.02, noise=0.003):
    """Canonical-looking shapes: a mean face plus low-rank variation plus noise."""
    base = np.random.default_rng(123).uniform(-0.4, 0.4, size=(1, 136))
    basis = np.random.default_rng(456).normal(size=(6, 136)) * spread
    flat = base + rng.normal(size=(n, 6)) @ basis + rng.normal(size=(n, 136)) * noise
    return flat.reshape(n, 68, 2)


def brute_knn(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, n) nearest other rows by float64 squared L2, ties by smaller id, and the RMS
    distances (68 points)."""
    x = np.asarray(flat, dtype=np.float64).reshape(len(flat), -1)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, :n]
    return order, np.sqrt(np.take_along_axis(d2, order, axis=1) / 68)
