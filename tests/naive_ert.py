"""Slow NumPy references for kernels/ert.py (one loop per definition, no tricks)."""
from __future__ import annotations

import numpy as np


def similarity(mean_centered: np.ndarray, shape: np.ndarray) -> tuple[float, float]:
    """Least-squares [[a, -b], [b, a]] with shape - centroid ~ M @ mean_centered, by lstsq."""
    t = shape - shape.mean(axis=0)
    rows, rhs = [], []
    for (sx, sy), (tx, ty) in zip(mean_centered, t):
        rows += [[sx, -sy], [sy, sx]]
        rhs += [tx, ty]
    (a, b), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return float(a), float(b)


def bilinear(image: np.ndarray, x: float, y: float) -> float:
    h, w = image.shape
    x = min(max(x, 0.0), w - 1.0)
    y = min(max(y, 0.0), h - 1.0)
    x0, y0 = min(int(np.floor(x)), w - 2), min(int(np.floor(y)), h - 2)
    fx, fy = x - x0, y - y0
    return float(image[y0, x0] * (1 - fx) * (1 - fy) + image[y0, x0 + 1] * fx * (1 - fy)
                 + image[y0 + 1, x0] * (1 - fx) * fy + image[y0 + 1, x0 + 1] * fx * fy)


def shape_features(images, image_of, shapes, mean_centered, anchors, offsets) -> np.ndarray:
    out = np.zeros((len(shapes), len(anchors)))
    for i, shape in enumerate(shapes):
        a, b = similarity(mean_centered, shape)
        for f, (k, (ox, oy)) in enumerate(zip(anchors, offsets)):
            x = shape[k, 0] + a * ox - b * oy
            y = shape[k, 1] + b * ox + a * oy
            out[i, f] = bilinear(images[image_of[i]], x, y)
    return out


def split_sums(features, residuals, members, cand_u, cand_v, cand_t):
    """``members[c]``: the sample ids of candidate c's node."""
    sums = np.zeros((len(cand_u), residuals.shape[1]))
    counts = np.zeros(len(cand_u), dtype=np.int64)
    for c in range(len(cand_u)):
        for i in members[c]:
            if features[i, cand_u[c]] - features[i, cand_v[c]] > cand_t[c]:
                sums[c] += residuals[i]
                counts[c] += 1
    return sums, counts


def forest_sum(features, split_u, split_v, split_t, leaves) -> np.ndarray:
    depth = int(np.log2(leaves.shape[1]))
    out = np.zeros((len(features), leaves.shape[2]))
    for i, row in enumerate(features):
        for tree in range(len(split_u)):
            node = 0
            for _ in range(depth):
                left = row[split_u[tree, node]] - row[split_v[tree, node]] > split_t[tree, node]
                node = 2 * node + 1 if left else 2 * node + 2
            out[i] += leaves[tree, node - (2 ** depth - 1)]
    return out


def stage_step(images, image_of, shapes, mean_centered, anchors, offsets, split_u, split_v, split_t, leaves,
               leaf_scale=1.0):
    """Features, forest sum (times ``leaf_scale``), then the update turned onto each shape by its similarity."""
    features = shape_features(images, image_of, shapes, mean_centered, anchors, offsets)
    delta = leaf_scale * forest_sum(features, split_u, split_v, split_t, np.asarray(leaves, np.float64))
    delta = delta.reshape(shapes.shape)
    out = np.array(shapes, dtype=np.float64)
    for i, shape in enumerate(shapes):
        a, b = similarity(mean_centered, shape)
        out[i] += delta[i] @ np.array([[a, b], [-b, a]])
    return out
