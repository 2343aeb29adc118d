"""Numba kernels of the K-state pose HMM (paper Sec. 3.4, "Temporal Smoothing").

Pure functions over contiguous arrays; validation, dtype coercion and error messages
live in the wrappers of :mod:`tracker.temporal.hmm`. Everything is in the log domain. State ids
are int32 in the CSR arrays and the back-pointers, int64 elsewhere (never uint16: a
140,000-state model is the target).

Sparse transitions are CSR arrays ``(indptr int64, indices int32, log_weight float32)``.
"By destination" (the decoder's natural order) means row j lists the predecessors i of
state j with ``log_weight[p] = log P(i -> j)``; "by source" is the transpose.

Two groups of kernels:

* transitions: the symmetrised, normalised kNN transition CSR (from the neighbour
  lists of :mod:`kernels.knn`) and a CSR transpose;
* decoding: one max-product (Viterbi) step over all states (gather along the
  by-destination CSR; serial or split over threads) or over the best M states only
  (scatter along the by-source CSR), a whole-sequence forward pass, and back-tracking
  through a ring of back-pointers.

Only :func:`forward_step_parallel` uses ``parallel=True``; every ``prange`` iteration
there writes its own rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .select import nth_element

NEG_INF = -np.inf

# ----------------------------------------------------------------------------- transition CSR


@njit(cache=True, nogil=True)
def symmetric_knn_transitions(nbr, dist, sigma):
    """Symmetrised kNN graph with Gaussian weights normalised per source, CSR by destination.

    ``nbr`` (K, w) int64 and ``dist`` (K, w) float32 are :func:`tracker.distribution.poses.knn_graph`
    rows: column 0 is the state itself (distance 0), then its w - 1 nearest. The graph
    has an edge i <-> j when either is among the other's nearest, plus every self-loop.
    Weights exp(-d^2 / (2 sigma^2)) are normalised over each source's edges.

    Returns ``(indptr int64 (K + 1,), indices int32, log_weight float32)``: row j lists
    its predecessors i ascending, ``log_weight = log P(i -> j)``. Work O(K w^2), memory
    O(K w) besides the output.
    """
    size, width = nbr.shape
    # reverse lists: rev row j holds every i with j among i's nearest
    rptr = np.zeros(size + 1, dtype=np.int64)
    for i in range(size):
        for k in range(1, width):
            rptr[nbr[i, k] + 1] += 1
    for j in range(size):
        rptr[j + 1] += rptr[j]
    fill = rptr[:-1].copy()
    rind = np.empty(rptr[size], dtype=np.int32)
    rdist = np.empty(rptr[size], dtype=np.float32)
    for i in range(size):
        for k in range(1, width):
            j = nbr[i, k]
            rind[fill[j]] = i
            rdist[fill[j]] = dist[i, k]
            fill[j] += 1
    # merged, de-duplicated rows (ascending ids), counted first, then filled
    cap = width
    for j in range(size):
        cap = max(cap, width + rptr[j + 1] - rptr[j])
    ids = np.empty(cap, dtype=np.int64)
    ds = np.empty(cap, dtype=np.float32)
    indptr = np.zeros(size + 1, dtype=np.int64)
    for phase in range(2):
        if phase == 1:
            for j in range(size):
                indptr[j + 1] += indptr[j]
            indices = np.empty(indptr[size], dtype=np.int32)
            raw = np.empty(indptr[size], dtype=np.float64)
        for j in range(size):
            m = 0
            for k in range(width):
                ids[m] = nbr[j, k]
                ds[m] = dist[j, k]
                m += 1
            for p in range(rptr[j], rptr[j + 1]):
                ids[m] = rind[p]
                ds[m] = rdist[p]
                m += 1
            for a in range(1, m):                  # insertion sort by id
                ia, da = ids[a], ds[a]
                b = a - 1
                while b >= 0 and ids[b] > ia:
                    ids[b + 1] = ids[b]
                    ds[b + 1] = ds[b]
                    b -= 1
                ids[b + 1] = ia
                ds[b + 1] = da
            out = indptr[j]
            count = 0
            for a in range(m):
                if a > 0 and ids[a] == ids[a - 1]:
                    continue
                if phase == 1:
                    d = np.float64(ds[a])
                    indices[out + count] = ids[a]
                    raw[out + count] = -d * d / (2.0 * sigma * sigma)
                count += 1
            if phase == 0:
                indptr[j + 1] = count
    # the graph is symmetric: source i's edges are exactly row i's entries
    lse = np.empty(size)
    for i in range(size):
        top = -np.inf
        for p in range(indptr[i], indptr[i + 1]):
            top = max(top, raw[p])
        total = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            total += np.exp(raw[p] - top)
        lse[i] = top + np.log(total)
    log_weight = np.empty(indptr[size], dtype=np.float32)
    for j in range(size):
        for p in range(indptr[j], indptr[j + 1]):
            log_weight[p] = raw[p] - lse[indices[p]]
    return indptr, indices, log_weight


@njit(cache=True, nogil=True)
def csr_transpose(indptr, indices, data, n_cols):
    """Transpose of a CSR matrix (rows -> columns), columns sorted within each new row.

    Returns ``(indptr_t int64 (n_cols + 1,), indices_t int32, data_t)``; ``indices_t``
    holds the old row ids.
    """
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    counts = np.zeros(n_cols + 1, dtype=np.int64)
    for p in range(nnz):
        counts[indices[p] + 1] += 1
    for c in range(n_cols):
        counts[c + 1] += counts[c]
    fill = counts[:-1].copy()
    indices_t = np.empty(nnz, dtype=np.int32)
    data_t = np.empty(nnz, dtype=data.dtype)
    for r in range(n_rows):                     # rows in order: new rows come out sorted
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            dst = fill[c]
            indices_t[dst] = r
            data_t[dst] = data[p]
            fill[c] = dst + 1
    return counts, indices_t, data_t


# ----------------------------------------------------------------------------- decoding
#
# Scores are float32 and every sum is one float32 addition, in the same order in every
# kernel, so the dense, parallel and pruned steps agree bit for bit. After each step the
# scores are shifted to max 0 (no drift over long streams); the shifts, summed in
# float64 by the caller, give the best path's log score.

_ROW_BLOCK = 4096            # destination rows per parallel block of forward_step_parallel


@njit(cache=True, nogil=True)
def _shift(delta, top):
    """Subtract ``top`` (the max, float32) from ``delta`` in place; return it as float64
    (-inf, and delta untouched, when every entry is -inf)."""
    if top > NEG_INF:
        for j in range(delta.shape[0]):
            delta[j] = delta[j] - top
    return np.float64(top)


@njit(cache=True, nogil=True)
def init_step(log_init, log_obs, delta_out):
    """delta_0 = log_init + log_obs, shifted to max 0; returns the shift (float64)."""
    top = np.float32(NEG_INF)
    for j in range(delta_out.shape[0]):
        v = log_init[j] + log_obs[j]
        delta_out[j] = v
        if v > top:
            top = v
    return _shift(delta_out, top)


@njit(cache=True, nogil=True, inline="always")
def _gather_rows(delta_prev, indptr, indices, log_weight, log_obs, delta_out, backptr_out,
                 j0, j1):
    """Max-product over destination rows [j0, j1); returns the largest result."""
    top = np.float32(NEG_INF)
    for j in range(j0, j1):
        best = np.float32(NEG_INF)
        arg = np.int32(-1)
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            v = delta_prev[i] + log_weight[p]
            if v > best:                    # strict: the first (smallest) i wins ties
                best = v
                arg = i
        v = best + log_obs[j]
        delta_out[j] = v
        backptr_out[j] = arg
        if v > top:
            top = v
    return top


@njit(cache=True, nogil=True)
def forward_step(delta_prev, indptr, indices, log_weight, log_obs, delta_out, backptr_out):
    """One max-product step along the by-destination CSR (every edge is visited).

    delta_out[j] = log_obs[j] + max_{i in pred(j)} (delta_prev[i] + log_w(i -> j)),
    backptr_out[j] = the maximising i (the smallest on ties; -1 when every predecessor
    is at -inf, and delta_out[j] is then -inf). Inputs are float32 (K,) vectors, the CSR
    (indptr int64, indices int32, log_weight float32) and backptr_out (K,) int32.
    delta_out is then shifted to max 0; returns the shift (float64; -inf when every
    state is unreachable, delta_out is then left unshifted).
    """
    top = _gather_rows(delta_prev, indptr, indices, log_weight, log_obs, delta_out, backptr_out,
                       0, delta_out.shape[0])
    return _shift(delta_out, top)


@njit(cache=True, nogil=True, parallel=True)
def forward_step_parallel(delta_prev, indptr, indices, log_weight, log_obs, delta_out,
                          backptr_out):
    """:func:`forward_step` with blocks of destination rows spread over Numba's threads
    (each block writes only its own rows and its own slot of the block maxima);
    identical results."""
    size = delta_out.shape[0]
    n_blocks = (size + _ROW_BLOCK - 1) // _ROW_BLOCK
    tops = np.empty(n_blocks, dtype=np.float32)
    for b in prange(n_blocks):
        tops[b] = _gather_rows(delta_prev, indptr, indices, log_weight, log_obs, delta_out,
                               backptr_out, b * _ROW_BLOCK, min(size, (b + 1) * _ROW_BLOCK))
    top = np.float32(NEG_INF)
    for b in range(n_blocks):
        if tops[b] > top:
            top = tops[b]
    return _shift(delta_out, top)


@njit(cache=True, nogil=True)
def select_top(delta, m, active_out):
    """Ids of the ``m`` largest finite entries of ``delta`` (ties at the cut: smaller ids
    first), written ascending into ``active_out``; returns how many (<= m).

    O(K) expected: the finite entries are copied and quickselected, then one pass.
    """
    size = delta.shape[0]
    if m <= 0:
        return 0
    finite = 0
    for j in range(size):
        if delta[j] > NEG_INF:
            finite += 1
    if m >= finite:
        count = 0
        for j in range(size):
            if delta[j] > NEG_INF:
                active_out[count] = j
                count += 1
        return count
    keys = np.empty(finite, dtype=delta.dtype)
    count = 0
    for j in range(size):
        if delta[j] > NEG_INF:
            keys[count] = -delta[j]                     # m-th largest = m-th smallest of -delta
            count += 1
    nth_element(keys, np.empty(finite, dtype=np.int8), 0, finite, m - 1)
    cut = -keys[m - 1]
    room = m
    for j in range(size):
        if delta[j] > cut:
            room -= 1                               # room left for entries equal to cut
    count = 0
    for j in range(size):
        v = delta[j]
        if v > cut or (v == cut and room > 0):
            if v == cut:
                room -= 1
            if v > NEG_INF:
                active_out[count] = j
                count += 1
    return count


@njit(cache=True, nogil=True)
def forward_step_pruned(delta_prev, active, n_active, out_indptr, out_indices, out_log_weight,
                        log_obs, acc, delta_out, backptr_out):
    """:func:`forward_step` where only the states ``active[:n_active]`` of ``delta_prev``
    count (the others are taken as -inf), scattered along the **by-source** CSR.

    Edge work is O(n_active x out-degree); the rest is a few O(K) vector passes (fills,
    adding log_obs, the shift). ``acc`` is (K,) float32 scratch. Ties go to the smaller
    predecessor id, so with every state active the result equals :func:`forward_step`
    bit for bit.
    """
    size = delta_out.shape[0]
    for j in range(size):
        acc[j] = NEG_INF
        backptr_out[j] = -1
    for a in range(n_active):
        i = active[a]
        di = delta_prev[i]
        if di == NEG_INF:
            continue
        for p in range(out_indptr[i], out_indptr[i + 1]):
            j = out_indices[p]
            v = di + out_log_weight[p]
            if v > acc[j] or (v == acc[j] and v > NEG_INF and i < backptr_out[j]):
                acc[j] = v
                backptr_out[j] = i
    top = np.float32(NEG_INF)
    for j in range(size):
        v = acc[j] + log_obs[j]
        delta_out[j] = v
        if v > top:
            top = v
    return _shift(delta_out, top)


@njit(cache=True, nogil=True)
def viterbi_forward(log_obs, log_init, indptr, indices, log_weight, backptr, delta, work,
                    shifts, parallel):
    """Forward pass over a whole (T, K) float32 sequence.

    Fills ``backptr`` (T, K) int32 (row 0 unused) and ``shifts`` (T,) float64, the
    per-frame shifts (their sum is the best path's log score). ``delta``/``work`` are
    (K,) float32 scratch; ``parallel`` picks :func:`forward_step_parallel`. Returns
    ``(best_last_state, failed_frame)``: failed_frame is the first frame where every
    state is unreachable (-1 when none; decoding stops there).
    """
    frames = log_obs.shape[0]
    shifts[0] = init_step(log_init, log_obs[0], delta)
    if shifts[0] == NEG_INF:
        return -1, 0
    for t in range(1, frames):
        if parallel:
            shifts[t] = forward_step_parallel(delta, indptr, indices, log_weight, log_obs[t],
                                              work, backptr[t])
        else:
            shifts[t] = forward_step(delta, indptr, indices, log_weight, log_obs[t], work,
                                     backptr[t])
        if shifts[t] == NEG_INF:
            return -1, t
        delta, work = work, delta
    return np.argmax(delta), -1


@njit(cache=True, nogil=True)
def backtrack(ring, newest, steps, state, out):
    """Follow back-pointers ``steps`` frames back from ``state`` at ring row ``newest``.

    ``ring`` (R, K) int32 holds frame f's back-pointers in row f mod R (for a full
    (T, K) array, row f). Writes the states of frames newest - steps .. newest into
    ``out[:steps + 1]`` (int64) and returns ``out``.
    """
    rows = ring.shape[0]
    row = newest
    out[steps] = state
    for k in range(steps):
        state = ring[row, state]
        out[steps - 1 - k] = state
        row = row - 1 if row > 0 else rows - 1
    return out
