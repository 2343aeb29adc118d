"""Numba kernels of the exact k-nearest-neighbour search over pose templates.

A median-split k-d tree over a low-dimensional lower-bound space, searched block-wise
in parallel; candidates are refined with exact float64 distances. Validation and the
choice of the lower-bound space live in :func:`tracker.distribution.poses.knn_graph`, which builds
the HMM's pose-neighbour graph with it. Only :func:`knn_search` uses ``parallel=True``;
every ``prange`` iteration writes its own block of rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .select import nth_element

_KNN_BLOCK = 2048             # queries per parallel block of knn_search


@njit(cache=True, nogil=True)
def kdtree_build(points, leaf_size):
    """Median-split k-d tree over the rows of ``points`` (K, D) float64.

    Returns ``(perm, start, end, left, right, lo, hi)``: ``perm`` (K,) int64 orders the
    rows so that node ``v`` holds ``perm[start[v]:end[v]]``; ``left``/``right`` are child
    node ids (-1 for a leaf); ``lo``/``hi`` (nodes, D) are the nodes' bounding boxes.
    Node 0 is the root. A node is split on its widest coordinate at the median position,
    unless it holds at most ``leaf_size`` rows or all its rows coincide.
    """
    size, dim = points.shape
    leaf_size = max(leaf_size, 1)
    half = max(1, (leaf_size + 1) // 2)
    cap = 2 * (size // half + 1) + 1
    start = np.zeros(cap, dtype=np.int64)
    end = np.zeros(cap, dtype=np.int64)
    left = np.full(cap, -1, dtype=np.int64)
    right = np.full(cap, -1, dtype=np.int64)
    lo = np.zeros((cap, dim))
    hi = np.zeros((cap, dim))
    perm = np.arange(size)
    stack = np.zeros(cap, dtype=np.int64)
    end[0] = size
    count = 1
    top = 1                                 # stack holds node 0
    values = np.empty(size)
    while top > 0:
        top -= 1
        node = stack[top]
        s, e = start[node], end[node]
        for d in range(dim):
            lo[node, d] = np.inf
            hi[node, d] = -np.inf
        for p in range(s, e):
            row = perm[p]
            for d in range(dim):
                v = points[row, d]
                if v < lo[node, d]:
                    lo[node, d] = v
                if v > hi[node, d]:
                    hi[node, d] = v
        if e - s <= leaf_size:
            continue
        split, widest = 0, -1.0
        for d in range(dim):
            if hi[node, d] - lo[node, d] > widest:
                widest = hi[node, d] - lo[node, d]
                split = d
        if widest <= 0.0:
            continue
        for p in range(s, e):
            values[p] = points[perm[p], split]
        mid = s + (e - s) // 2
        nth_element(values, perm, s, e, mid)
        for child, cs, ce in ((count, s, mid), (count + 1, mid, e)):
            start[child] = cs
            end[child] = ce
            stack[top] = child
            top += 1
        left[node] = count
        right[node] = count + 1
        count += 2
    return perm, start[:count], end[:count], left[:count], right[:count], lo[:count], hi[:count]


@njit(cache=True, nogil=True, inline="always")
def _box_sqdist(q, lo, hi, node):
    total = 0.0
    for d in range(q.shape[0]):
        v = q[d]
        if v < lo[node, d]:
            gap = lo[node, d] - v
            total += gap * gap
        elif v > hi[node, d]:
            gap = v - hi[node, d]
            total += gap * gap
    return total


@njit(cache=True, nogil=True, inline="always")
def _heap_less(da, ia, db, ib):
    return da < db or (da == db and ia < ib)


@njit(cache=True, nogil=True)
def _heap_replace_top(hd, hidx, hpos, d, i, p):
    """Replace the largest (d, id) of a max-heap and restore the heap (hpos rides along)."""
    n = hd.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _heap_less(hd[child], hidx[child], hd[child + 1], hidx[child + 1]):
            child += 1
        if _heap_less(d, i, hd[child], hidx[child]):
            hd[pos] = hd[child]
            hidx[pos] = hidx[child]
            hpos[pos] = hpos[child]
            pos = child
        else:
            break
    hd[pos] = d
    hidx[pos] = i
    hpos[pos] = p


@njit(cache=True, nogil=True)
def _knn_range(low, data, ids, start, end, left, right, lo, hi, n, rel_slack, abs_slack,
               out_ids, out_d2, q0, q1):
    """:func:`knn_search` for the queries at tree rows [q0, q1)."""
    size, dim = low.shape
    feat = data.shape[1]
    hd = np.empty(n)
    hidx = np.empty(n, dtype=np.int64)
    hpos = np.empty(n, dtype=np.int64)
    prev = np.empty(n + 1, dtype=np.int64)
    seen = np.full(size, -1, dtype=np.int64)
    rows = np.arange(size)
    stack = np.empty(256, dtype=np.int64)
    stack_lb = np.empty(256)
    q = np.empty(dim)
    qx = np.empty(feat)
    n_prev = 0
    for qp in range(q0, q1):
        for d in range(dim):
            q[d] = low[qp, d]
        for f in range(feat):
            qx[f] = data[qp, f]
        for k in range(n):
            hd[k] = np.inf
            hidx[k] = size
            hpos[k] = -1
        seen[qp] = qp
        stack[0] = 0                            # the root ...
        stack_lb[0] = 0.0
        stack[1] = -1                           # ... after the seed list (node -1)
        stack_lb[1] = 0.0
        top = 2
        while top > 0:
            top -= 1
            node = stack[top]
            if stack_lb[top] > hd[0] * (1.0 + rel_slack) + abs_slack:
                continue
            if node < 0 or left[node] < 0:
                if node < 0:
                    src, s0, s1 = prev, 0, n_prev
                else:
                    src, s0, s1 = rows, start[node], end[node]
                for c in range(s0, s1):
                    p = src[c]
                    if seen[p] == qp:
                        continue
                    seen[p] = qp
                    lb = 0.0
                    for d in range(dim):
                        g = low[p, d] - q[d]
                        lb += g * g
                    if lb > hd[0] * (1.0 + rel_slack) + abs_slack:
                        continue
                    exact = 0.0
                    for f in range(feat):
                        g = np.float64(data[p, f]) - qx[f]
                        exact += g * g
                    if _heap_less(exact, ids[p], hd[0], hidx[0]):
                        _heap_replace_top(hd, hidx, hpos, exact, ids[p], p)
            else:
                a, b = left[node], right[node]
                la = _box_sqdist(q, lo, hi, a)
                lb_ = _box_sqdist(q, lo, hi, b)
                if la > lb_:                    # push the farther child first
                    a, b = b, a
                    la, lb_ = lb_, la
                stack[top] = b
                stack_lb[top] = lb_
                stack[top + 1] = a
                stack_lb[top + 1] = la
                top += 2
        for k in range(1, n):                   # heap -> ascending (d2, id): insertion sort
            d_k, i_k, p_k = hd[k], hidx[k], hpos[k]
            m = k - 1
            while m >= 0 and _heap_less(d_k, i_k, hd[m], hidx[m]):
                hd[m + 1] = hd[m]
                hidx[m + 1] = hidx[m]
                hpos[m + 1] = hpos[m]
                m -= 1
            hd[m + 1] = d_k
            hidx[m + 1] = i_k
            hpos[m + 1] = p_k
        row = ids[qp]
        for k in range(n):
            out_ids[row, k] = hidx[k]
            out_d2[row, k] = hd[k]
            prev[k] = hpos[k]
        prev[n] = qp
        n_prev = n + 1


@njit(cache=True, nogil=True, parallel=True)
def knn_search(low, data, ids, start, end, left, right, lo, hi, n, rel_slack, abs_slack,
               out_ids, out_d2):
    """Exact ``n`` nearest other rows of every row, by exact float64 squared L2 on ``data``.

    ``low`` (K, D) float64 and ``data`` (K, F) are in tree order (row p is the original
    row ``ids[p]``) and the tree (``start`` .. ``hi``) is :func:`kdtree_build` over
    ``low``. ``low`` must be a lower-bound embedding, ||low_a - low_b||^2 <=
    ||data_a - data_b||^2, up to rounding: a bound rules a pair out only when it exceeds
    the current n-th distance d^2 by more than d^2 rel_slack + abs_slack.

    Writes, for original row ``ids[q]``, the neighbours' original ids into ``out_ids``
    (K, n) int64 and their squared distances into ``out_d2`` (K, n) float64, sorted by
    (distance, id): the result equals a stable float64 brute force (up to the rounding
    of float64 sums, which only matters for distinct pairs tied to the last bit).
    Needs n <= K - 1.

    Filter and refine: queries run in tree order and each first scores the previous
    query's neighbours (a tight starting bound); then tree nodes and rows whose lower
    bound exceeds the current n-th distance are skipped, the others get their exact
    distance. (The row loop is written once, inline: a helper call per row was 3x slower.)

    Parallel over blocks of ``_KNN_BLOCK`` queries; each block writes only its own rows.
    """
    size = low.shape[0]
    n_blocks = (size + _KNN_BLOCK - 1) // _KNN_BLOCK
    for blk in prange(n_blocks):
        _knn_range(low, data, ids, start, end, left, right, lo, hi, n, rel_slack, abs_slack,
                   out_ids, out_d2, blk * _KNN_BLOCK, min(size, (blk + 1) * _KNN_BLOCK))
