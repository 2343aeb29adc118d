"""Numba kernels of the shape regressors: shape-indexed pixel features and regression trees.

Shapes are (N, P, 2) float32 pixel coordinates in normalised face crops (F, R, R) float32.
A *feature point* is a landmark index (``anchor``) and an offset from it, expressed in the
mean shape's frame; on a sample it lands at ``shape[anchor] + A @ offset``, where A is the
similarity (scale and rotation) taking the mean shape to the sample's current shape. A
tree splits on the difference of two feature values against a threshold; it is stored
breadth-first: node ``i``'s children are ``2i + 1`` and ``2i + 2``, and the ``2**depth``
leaves follow the ``2**depth - 1`` split nodes. Only :func:`split_sums` runs in parallel,
each ``prange`` iteration writing its own candidate's rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def similarity_to(mean_centered, shape):
    """(a, b): the scale-rotation [[a, -b], [b, a]] taking the centred mean shape onto
    ``shape`` (P, 2) in the least-squares sense (translation removed)."""
    n = shape.shape[0]
    cx = 0.0
    cy = 0.0
    for p in range(n):
        cx += shape[p, 0]
        cy += shape[p, 1]
    cx /= n
    cy /= n
    num_a = 0.0
    num_b = 0.0
    den = 0.0
    for p in range(n):
        sx = mean_centered[p, 0]
        sy = mean_centered[p, 1]
        tx = shape[p, 0] - cx
        ty = shape[p, 1] - cy
        num_a += sx * tx + sy * ty
        num_b += sx * ty - sy * tx
        den += sx * sx + sy * sy
    den = max(den, 1e-12)
    return num_a / den, num_b / den


@njit(cache=True, nogil=True)
def _bilinear(image, x, y):
    size_y, size_x = image.shape
    if x < 0.0:
        x = 0.0
    if y < 0.0:
        y = 0.0
    if x > size_x - 1.0:
        x = size_x - 1.0
    if y > size_y - 1.0:
        y = size_y - 1.0
    x0 = min(int(x), size_x - 2) if size_x > 1 else 0
    y0 = min(int(y), size_y - 2) if size_y > 1 else 0
    fx = x - x0
    fy = y - y0
    x1 = min(x0 + 1, size_x - 1)
    y1 = min(y0 + 1, size_y - 1)
    top = image[y0, x0] * (1.0 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1.0 - fx) + image[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


@njit(cache=True, nogil=True)
def _read_features(image, shape, a, b, anchors, offsets, out):
    """Pixel values (F,) into ``out`` at the feature points of one shape, given its
    similarity (a, b) from the mean frame."""
    for f in range(anchors.shape[0]):
        ox = offsets[f, 0]
        oy = offsets[f, 1]
        x = shape[anchors[f], 0] + a * ox - b * oy
        y = shape[anchors[f], 1] + b * ox + a * oy
        out[f] = _bilinear(image, x, y)


@njit(cache=True, nogil=True)
def shape_features(images, image_of, shapes, mean_centered, anchors, offsets, out):
    """Pixel values (N, F) at the feature points of each sample's current shape.

    ``images`` (M, R, R) float32, ``image_of`` (N,) which image each sample reads,
    ``shapes`` (N, P, 2), ``anchors`` (F,) int, ``offsets`` (F, 2) in the mean frame.
    Points off the crop read its nearest edge pixel (bilinear, clamped)."""
    for i in range(shapes.shape[0]):
        a, b = similarity_to(mean_centered, shapes[i])
        _read_features(images[image_of[i]], shapes[i], a, b, anchors, offsets, out[i])
    return out


@njit(cache=True, nogil=True, parallel=True)
def split_sums(features, residuals, order, node_start, node_end, cand_node, cand_u, cand_v, cand_t,
               sums_out, counts_out):
    """For each candidate split c of node ``cand_node[c]``: the residual sum (D,) and the
    count of the node's samples with ``features[u] - features[v] > t`` (the left child).

    The samples of node n are ``order[node_start[n]:node_end[n]]``."""
    dim = residuals.shape[1]
    for c in prange(cand_node.shape[0]):
        node = cand_node[c]
        u = cand_u[c]
        v = cand_v[c]
        t = cand_t[c]
        count = 0
        for j in range(node_start[node], node_end[node]):
            i = order[j]
            if features[i, u] - features[i, v] > t:
                count += 1
                for d in range(dim):
                    sums_out[c, d] += residuals[i, d]
        counts_out[c] = count
    return sums_out, counts_out


@njit(cache=True, nogil=True)
def leaf_index(features_row, split_u, split_v, split_t, depth):
    """The leaf (0 .. 2**depth - 1) one sample reaches in one tree."""
    node = 0
    for _ in range(depth):
        if features_row[split_u[node]] - features_row[split_v[node]] > split_t[node]:
            node = 2 * node + 1
        else:
            node = 2 * node + 2
    return node - (2 ** depth - 1)


@njit(cache=True, nogil=True)
def _depth(n_leaves):
    depth = 0
    while (1 << depth) < n_leaves:
        depth += 1
    return depth


@njit(cache=True, nogil=True)
def _add_leaves(features_row, split_u, split_v, split_t, leaves, depth, out_row):
    """Add each tree's leaf value (D,) for one sample into ``out_row``."""
    for tree in range(split_u.shape[0]):
        leaf = leaf_index(features_row, split_u[tree], split_v[tree], split_t[tree], depth)
        for d in range(out_row.shape[0]):
            out_row[d] += leaves[tree, leaf, d]


@njit(cache=True, nogil=True)
def forest_sum(features, split_u, split_v, split_t, leaves, out):
    """Sum over trees of each sample's leaf values: (N, D) into ``out`` (added to it).

    ``split_*`` (T, 2**depth - 1), ``leaves`` (T, 2**depth, D)."""
    depth = _depth(leaves.shape[1])
    for i in range(features.shape[0]):
        _add_leaves(features[i], split_u, split_v, split_t, leaves, depth, out[i])
    return out


@njit(cache=True, nogil=True)
def group_sums(values, group, n_groups):
    """Row sums of ``values`` (N, D) per group id (N,) in 0 .. n_groups - 1, and the counts."""
    sums = np.zeros((n_groups, values.shape[1]), dtype=np.float64)
    counts = np.zeros(n_groups, dtype=np.int64)
    for i in range(values.shape[0]):
        g = group[i]
        counts[g] += 1
        for d in range(values.shape[1]):
            sums[g, d] += values[i, d]
    return sums, counts


@njit(cache=True, nogil=True)
def stage_step(images, image_of, shapes, mean_centered, anchors, offsets, split_u, split_v, split_t, leaves,
               leaf_scale, out):
    """One tree stage applied to each sample: its features, its forest's update (mean
    frame) turned and scaled onto the sample by the same similarity, added to the shape.
    ``leaves`` may be quantised (int16): the update is their sum times ``leaf_scale``.

    Writes the moved shapes (N, P, 2) into ``out`` (which may be ``shapes`` itself)."""
    depth = _depth(leaves.shape[1])
    features = np.empty(anchors.shape[0], dtype=np.float32)
    delta = np.empty(leaves.shape[2], dtype=np.float64)
    for i in range(shapes.shape[0]):
        a, b = similarity_to(mean_centered, shapes[i])
        _read_features(images[image_of[i]], shapes[i], a, b, anchors, offsets, features)
        delta[:] = 0.0
        _add_leaves(features, split_u, split_v, split_t, leaves, depth, delta)
        for p in range(shapes.shape[1]):
            dx = delta[2 * p] * leaf_scale
            dy = delta[2 * p + 1] * leaf_scale
            out[i, p, 0] = shapes[i, p, 0] + a * dx - b * dy
            out[i, p, 1] = shapes[i, p, 1] + b * dx + a * dy
    return out
