"""Discrete pose classes in the canonical face frame (paper Sec. 3, eqs. 2, 3, 6).

Shapes are canonical landmarks (see :func:`tracker.geometry.shapes.to_canonical`), given as
(N, 68, 2) arrays (or anything reshapeable to (N, 136)). Every distance here is the
RMS point-to-point distance in canonical units::

    rms(a, b) = ||a - b||_F / sqrt(68)

faiss does the brute-force searches (k-means, membership ranges, nearest template) on
float32 vectors; pairs close to a threshold are re-checked in float64, so results match
an exact float64 computation. The HMM's k-nearest-neighbour graph uses a k-d tree
kernel instead (:func:`knn_graph`): exact too, and 15 s instead of about 215 s for
faiss's flat search at K = 140,000 on 2 cores. faiss is imported where it searches
(training, class building), not by the tracker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from kernels.knn import kdtree_build, knn_search
from tracker.geometry.shapes import N_POINTS

DIM = 2 * N_POINTS
DEFAULT_CHUNK = 2048          # query rows per faiss call
PAIR_BLOCK = 65536            # (shape, template) pairs gathered at once
MIN_WIDTH = 1e-3              # floor of a class width, canonical units
_RERANK = 4                   # faiss candidates re-ranked exactly for the nearest template


# ----------------------------------------------------------------------------- basics

def _flat(shapes: np.ndarray) -> np.ndarray:
    """(N, 136) view of (N, 68, 2) shapes (a single (68, 2) shape gives N = 1)."""
    arr = np.asarray(shapes)
    if arr.size % DIM:
        raise ValueError(f"shapes must hold 68 (x, y) points each, got array of shape {arr.shape}")
    return arr.reshape(-1, DIM)


def rms_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS point-to-point distance between matching shapes of ``a`` and ``b`` (broadcasts)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.sqrt((diff ** 2).sum(axis=(-2, -1)) / N_POINTS)


def _radius(tau: float) -> float:
    """Squared-L2 radius on 136-d vectors equivalent to an RMS distance ``tau``."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    return N_POINTS * float(tau) ** 2


def _pair_sqdist(a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Exact float64 squared L2 between rows a[ia] and b[ib] (1-D index arrays)."""
    diff = a[ia].astype(np.float64) - b[ib].astype(np.float64)
    return np.einsum("ij,ij->i", diff, diff)


class _FlatSearch:
    """Exact faiss L2 index over templates, centred on their mean for float32 accuracy."""

    def __init__(self, templates: np.ndarray):
        self.templates = _flat(templates)
        if len(self.templates) == 0:
            raise ValueError("need at least one template")
        self.center = self.templates.mean(axis=0, dtype=np.float64)
        base = self._centred(self.templates)
        import faiss
        self.index = faiss.IndexFlatL2(DIM)
        self.index.add(base)
        self.max_sqnorm = float(np.einsum("ij,ij->i", base, base).max())

    def __len__(self) -> int:
        return len(self.templates)

    def _centred(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.subtract(x, self.center, dtype=np.float32))

    def margin(self, queries32: np.ndarray) -> float:
        """Bound on faiss's float32 error in a squared distance for these queries."""
        q = float(np.einsum("ij,ij->i", queries32, queries32).max()) if len(queries32) else 0.0
        return 3e-5 * (q + self.max_sqnorm) + 1e-12

    def nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index and exact squared L2 of the nearest template to each query row."""
        k = min(_RERANK, len(self))
        _, cand = self.index.search(self._centred(queries), k)
        rows = np.repeat(np.arange(len(queries)), k)
        d2 = _pair_sqdist(queries, rows, self.templates, cand.ravel()).reshape(-1, k)
        best = d2.argmin(axis=1)
        pick = np.arange(len(queries))
        return cand[pick, best].astype(np.int64), d2[pick, best]

    def within(self, queries: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """(row, template) pairs with exact squared distance <= radius, nearest always added."""
        q32 = self._centred(queries)
        margin = self.margin(q32)
        lims, d2, cand = self.index.range_search(q32, radius + margin)
        rows = np.repeat(np.arange(len(queries)), np.diff(lims.astype(np.int64)))
        keep = d2 <= radius - margin
        unsure = np.flatnonzero(~keep)
        if len(unsure):
            exact = _pair_sqdist(queries, rows[unsure], self.templates, cand[unsure])
            keep[unsure] = exact <= radius
        rows, cols = rows[keep], cand[keep]
        empty = np.flatnonzero(np.bincount(rows, minlength=len(queries)) == 0)
        if len(empty):
            near, _ = self.nearest(queries[empty])
            rows = np.concatenate([rows, empty])
            cols = np.concatenate([cols, near])
        return rows, cols


def _query_chunks(n: int, chunk: int) -> Iterator[slice]:
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


# ----------------------------------------------------------------------------- templates

def kmeans_templates(shapes: np.ndarray, k: int, seed: int = 0, iters: int = 25) -> np.ndarray:
    """K pose classes mu_k: faiss k-means on flattened canonical shapes, (k, 68, 2) float32."""
    flat = _flat(shapes)
    if not 1 <= k <= len(flat):
        raise ValueError(f"k must be between 1 and the number of shapes ({len(flat)}), got {k}")
    center = flat.mean(axis=0, dtype=np.float64)
    data = np.ascontiguousarray(np.subtract(flat, center, dtype=np.float32))
    import faiss
    km = faiss.Kmeans(DIM, int(k), niter=int(iters), seed=int(seed), verbose=False,
                      min_points_per_centroid=1)
    km.train(data)
    centroids = km.centroids.astype(np.float64) + center
    return centroids.astype(np.float32).reshape(k, N_POINTS, 2)


# ----------------------------------------------------------------------------- membership

@dataclass(frozen=True, eq=False)
class Membership:
    """Membership sets M_i as CSR: row i lists the classes k with rms(mu_k, y_i) <= tau.

    ``indptr`` is int64 (length M + 1); ``indices`` is int32, sorted within each row.
    """

    indptr: np.ndarray
    indices: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "indptr", np.asarray(self.indptr, dtype=np.int64))
        object.__setattr__(self, "indices", np.asarray(self.indices))
        if self.indptr.ndim != 1 or len(self.indptr) < 1 or self.indptr[-1] != len(self.indices):
            raise ValueError("indptr must be 1-D with indptr[-1] == len(indices)")

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> np.ndarray:
        """Classes in M_i."""
        return self.indices[self.indptr[i]:self.indptr[i + 1]]

    def sizes(self) -> np.ndarray:
        """|M_i| for every row, int64."""
        return np.diff(self.indptr)

    def subset(self, rows: Iterable[int]) -> "Membership":
        """CSR of the selected rows, in the given order (e.g. a mini-batch)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        counts = self.sizes()[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        shift = np.repeat(self.indptr[rows] - indptr[:-1], counts)
        return Membership(indptr, self.indices[np.arange(indptr[-1]) + shift])

    def row_ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Row of each stored entry in positions [start, stop) of ``indices``."""
        stop = len(self.indices) if stop is None else stop
        return np.searchsorted(self.indptr, np.arange(start, stop), side="right") - 1


def _to_csr(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((cols, rows))
    counts = np.bincount(rows, minlength=n_rows)
    return counts, cols[order].astype(np.int32)


def membership_sets(shapes: np.ndarray, templates: np.ndarray, tau: float,
                    chunk: int = DEFAULT_CHUNK) -> Membership:
    """Eq. 6: M_i = {k : rms(mu_k, y_i) <= tau}, plus the nearest template when beyond tau.

    Exact faiss range search (squared L2 radius 68 tau^2), ``chunk`` query shapes at a
    time, so memory scales with the output, never with M x K.
    """
    queries = _flat(shapes)
    search = _FlatSearch(templates)
    radius = _radius(tau)
    counts, parts = [], []
    for sl in _query_chunks(len(queries), chunk):
        rows, cols = search.within(queries[sl], radius)
        c, idx = _to_csr(rows, cols, sl.stop - sl.start)
        counts.append(c)
        parts.append(idx)
    indptr = np.zeros(len(queries) + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return Membership(indptr, indices)


def nearest_template(shapes: np.ndarray, templates: np.ndarray,
                     chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Index (int64) and RMS distance (float64) of each shape's nearest template."""
    queries = _flat(shapes)
    search = _FlatSearch(templates)
    idx = np.empty(len(queries), dtype=np.int64)
    d2 = np.empty(len(queries), dtype=np.float64)
    for sl in _query_chunks(len(queries), chunk):
        idx[sl], d2[sl] = search.nearest(queries[sl])
    return idx, np.sqrt(d2 / N_POINTS)


# ----------------------------------------------------------------------------- pair sweeps

def _pair_sqdist_fast(a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Squared L2 between rows a[ia] and b[ib] in the inputs' precision (for statistics)."""
    diff = a[ia] - b[ib]
    return np.einsum("ij,ij->i", diff, diff).astype(np.float64)


def _pair_blocks(membership: Membership, block: int = PAIR_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row, class) index arrays of the membership, ``block`` entries at a time."""
    nnz = len(membership.indices)
    for start in range(0, nnz, block):
        stop = min(start + block, nnz)
        yield membership.row_ids(start, stop), membership.indices[start:stop].astype(np.int64)


def class_widths(templates: np.ndarray, shapes: np.ndarray, membership: Membership,
                 min_width: float = MIN_WIDTH) -> np.ndarray:
    """Width sigma_k of each class's spherical Gaussian in the mixture p(y) (eq. 3).

    sigma_k is the RMS distance of the member shapes {i : k in M_i} to mu_k, i.e.
    sigma_k^2 = mean_i rms(mu_k, y_i)^2 (the per-coordinate standard deviation is
    sigma_k / sqrt(2)). Classes without members get the median width of the others;
    every width is floored at ``min_width``. Returns (K,) float32.
    """
    t, y = _flat(templates), _flat(shapes)
    if len(membership) != len(y):
        raise ValueError(f"membership has {len(membership)} rows for {len(y)} shapes")
    sums = np.zeros(len(t), dtype=np.float64)
    counts = np.zeros(len(t), dtype=np.int64)
    for rows, cols in _pair_blocks(membership):
        sums += np.bincount(cols, weights=_pair_sqdist_fast(y, rows, t, cols), minlength=len(t))
        counts += np.bincount(cols, minlength=len(t))
    has = counts > 0
    widths = np.full(len(t), np.nan)
    widths[has] = np.sqrt(sums[has] / counts[has] / N_POINTS)
    widths[~has] = np.median(widths[has]) if has.any() else min_width
    return np.maximum(widths, min_width).astype(np.float32)


def _blend_means(templates: np.ndarray, membership: Membership) -> np.ndarray:
    """Mean template over each row's membership set, (M, 136) float64."""
    t = _flat(templates)
    sums = np.zeros((len(membership), DIM), dtype=np.float64)
    for rows, cols in _pair_blocks(membership):
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        sums[rows[starts]] += np.add.reduceat(t[cols].astype(np.float64), starts, axis=0)
    return sums / np.maximum(membership.sizes(), 1)[:, None]


# ----------------------------------------------------------------------------- tau selection

class TauScore(NamedTuple):
    """One row of :func:`choose_tau`'s table."""

    tau: float
    mean_error: float
    median_size: float


def choose_tau(templates: np.ndarray, val_shapes: np.ndarray,
               candidates: Iterable[float]) -> tuple[float, list[TauScore]]:
    """Pick tau by the blend-oracle criterion on a validation split.

    For each candidate tau and validation shape y, M(y) is the set of templates within
    tau of y (nearest always included); the prediction is their plain mean, which is
    what a classifier that put equal mass on M(y) would report. The chosen tau has the
    lowest mean RMS error of that prediction (ties go to the smaller tau). Templates
    may be k-means centres or the training shapes themselves (K = M); the validation
    shapes must not be among them, otherwise tau = 0 wins trivially.

    Returns (best_tau, table) with one :class:`TauScore` per candidate, in ascending tau.
    """
    taus = sorted(float(t) for t in candidates)
    if not taus:
        raise ValueError("need at least one candidate tau")
    val = _flat(val_shapes)
    table = []
    for tau in taus:
        member = membership_sets(val, templates, tau)
        errors = np.sqrt(((_blend_means(templates, member) - val) ** 2).sum(axis=1) / N_POINTS)
        table.append(TauScore(tau, float(errors.mean()), float(np.median(member.sizes()))))
    best = min(table, key=lambda row: row.mean_error)
    return best.tau, table


# ----------------------------------------------------------------------------- neighbour graph

_KNN_PCA = 16                # principal axes kept by the kNN lower bound
_KNN_LEAF = 16               # k-d tree leaf size of the kNN search


def _lower_bound_space(t: np.ndarray) -> tuple[np.ndarray, float]:
    """(K, d + 1) float64 coordinates whose L2 distances bound the true ones from below.

    Each centred shape x maps to (V x, ||x - V^T V x||) for an orthonormal basis V of the
    top principal axes, so ||a' - b'||^2 = ||V(a - b)||^2 + (||r_a|| - ||r_b||)^2 <= ||a - b||^2.
    Face shapes keep most of their variance in a few axes, which makes the bound tight.
    Also returns the largest squared norm of a centred shape (the scale of rounding errors).
    """
    size = len(t)
    center = t.mean(axis=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    sample = t[np.sort(rng.choice(size, min(size, 20_000), replace=False))] - center
    basis = np.linalg.svd(sample, full_matrices=False)[2][:_KNN_PCA].T
    out = np.empty((size, basis.shape[1] + 1))
    max_sq = 0.0
    for sl in _query_chunks(size, 16_384):
        x = t[sl] - center
        proj = x @ basis
        sq = np.einsum("ij,ij->i", x, x)
        out[sl, :-1] = proj
        out[sl, -1] = np.sqrt(np.maximum(sq - np.einsum("ij,ij->i", proj, proj), 0))
        max_sq = max(max_sq, float(sq.max()))
    return out, max_sq


def knn_graph(templates: np.ndarray, n: int,
              chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each template's ``n`` nearest other templates, self first (for HMM transitions).

    Returns CSR (indptr int64, indices int64, dist float32) where row k is
    [k, its neighbours by increasing RMS distance, ties by smaller index]; ``dist`` is the
    RMS distance (0 for self and for exact duplicates). ``n`` is capped at K - 1, so every
    row has min(n, K - 1) + 1 entries.

    Exact (it equals a stable float64 brute force) and fast for face shapes: filter and
    refine with a k-d tree (:func:`kernels.knn.knn_search`) over a 17-d lower-bound
    embedding (top principal axes plus residual norm, :func:`_lower_bound_space`); only
    pairs the bound cannot rule out get their exact float64 distance. Memory is a tree-
    ordered copy of the templates plus O(K n). ``chunk`` is accepted for compatibility
    and must be >= 1; the tree search needs no chunking.
    """
    t = _flat(templates)
    if t.dtype not in (np.float32, np.float64):
        t = t.astype(np.float64)
    size = len(t)
    if size == 0:
        raise ValueError("need at least one template")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if not np.isfinite(t).all():
        raise ValueError("templates must be finite")
    n_eff = min(max(int(n), 0), size - 1)
    width = n_eff + 1
    indices = np.empty((size, width), dtype=np.int64)
    dist = np.zeros((size, width), dtype=np.float32)
    indices[:, 0] = np.arange(size)
    if n_eff:
        low, max_sq = _lower_bound_space(t)
        perm, start, end, left, right, lo, hi = kdtree_build(low, _KNN_LEAF)
        nbr = np.empty((size, n_eff), dtype=np.int64)
        d2 = np.empty((size, n_eff), dtype=np.float64)
        knn_search(np.ascontiguousarray(low[perm]), np.ascontiguousarray(t[perm]), perm,
                   start, end, left, right, lo, hi, n_eff, 1e-9, 1e-12 * max_sq + 1e-300, nbr, d2)
        indices[:, 1:] = nbr
        dist[:, 1:] = np.sqrt(d2 / N_POINTS)
    indptr = np.arange(size + 1, dtype=np.int64) * width
    return indptr, indices.ravel(), dist.ravel()
