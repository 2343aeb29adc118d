"""The K-state pose HMM (paper Sec. 3.4, "Temporal Smoothing"): transitions and decoders.

States are the K pose classes; a face may move from a class to itself or to a nearby
class (in canonical landmark space) between frames; max-product (Viterbi) inference
picks a temporally smooth, high-scoring sequence of classes.

* :func:`pose_transitions` builds the sparse transition model (:class:`Transitions`).
* :func:`viterbi` decodes a whole sequence offline.
* :class:`FixedLagDecoder` decodes a stream: each frame's state becomes final ``lag``
  frames later.

The numerical work lives in :mod:`kernels.hmm`; this module validates and coerces.
Observations are per-frame log scores over the K classes (e.g. the classifier's
log-softmax), float32, -inf allowed for impossible classes, NaN not allowed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from kernels import hmm
from tracker.distribution import poses
from tracker.geometry.shapes import N_POINTS

__all__ = [
    "Transitions", "pose_transitions", "model_transitions", "viterbi", "FixedLagDecoder", "decode_benchmark",
]


# ----------------------------------------------------------------------------- transitions

@dataclass(frozen=True, eq=False)
class Transitions:
    """Sparse log transition matrix as CSR **by destination**.

    Row j (``indices[indptr[j]:indptr[j + 1]]``, ascending) lists the predecessors i of
    state j, with ``log_weight[p] = log P(i -> j)``. ``indptr`` is (K + 1,) int64,
    ``indices`` int32 state ids, ``log_weight`` float32 (finite or -inf). Nothing here
    requires the rows of P to sum to one (:func:`pose_transitions` makes them do so);
    the decoders just maximise sums of log weights. Ascending rows make ties go to the
    smaller predecessor id.

    The transpose (CSR by source, for the pruned decoder) is built on first use by
    :meth:`by_source` and cached.
    """

    indptr: np.ndarray
    indices: np.ndarray
    log_weight: np.ndarray
    n: int | None = None            # neighbours per class it was built with (None: unknown)
    sigma: float | None = None      # distance scale of the weights
    _by_source: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        indptr = np.ascontiguousarray(self.indptr)
        indices = np.ascontiguousarray(self.indices)
        log_weight = np.ascontiguousarray(self.log_weight)
        if indptr.ndim != 1 or len(indptr) < 2:
            raise ValueError(f"indptr must be 1-D with K + 1 >= 2 entries, got shape {indptr.shape}")
        if not np.issubdtype(indptr.dtype, np.integer) or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indptr and indices must be integer arrays, got {indptr.dtype} and "
                             f"{indices.dtype}")
        if indices.ndim != 1 or log_weight.shape != indices.shape:
            raise ValueError(f"indices and log_weight must be 1-D of equal length, got "
                             f"{indices.shape} and {log_weight.shape}")
        size = len(indptr) - 1
        if size >= 2 ** 31:
            raise ValueError(f"at most 2^31 - 1 states are supported, got {size}")
        if indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
            raise ValueError("indptr must start at 0, never decrease and end at len(indices)")
        if len(indices) and (indices.min() < 0 or indices.max() >= size):
            raise ValueError(f"state ids in indices must lie in [0, {size}), got "
                             f"[{indices.min()}, {indices.max()}]")
        ascending = np.diff(indices) > 0
        starts = indptr[1:-1]
        ascending[starts[(starts > 0) & (starts < len(indices))] - 1] = True   # row boundaries
        if not ascending.all():
            raise ValueError("indices must be strictly ascending within each row (no repeats)")
        log_weight = log_weight.astype(np.float32, copy=False)
        if np.isnan(log_weight).any() or (log_weight == np.inf).any():
            raise ValueError("log_weight must be finite or -inf (no NaN, no +inf)")
        object.__setattr__(self, "indptr", indptr.astype(np.int64, copy=False))
        object.__setattr__(self, "indices", indices.astype(np.int32, copy=False))
        object.__setattr__(self, "log_weight", log_weight)

    @property
    def num_states(self) -> int:
        return len(self.indptr) - 1

    @property
    def num_edges(self) -> int:
        return len(self.indices)

    @property
    def nbytes(self) -> int:
        """Bytes held by the CSR arrays (the cached transpose, if built, doubles it)."""
        extra = sum(a.nbytes for a in self._by_source) if self._by_source else 0
        return self.indptr.nbytes + self.indices.nbytes + self.log_weight.nbytes + extra

    def by_source(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR by source (indptr int64, indices int32 destinations, log_weight float32):
        row i lists the successors j of state i, ascending. Built once, then cached."""
        if self._by_source is None:
            out = hmm.csr_transpose(self.indptr, self.indices, self.log_weight, self.num_states)
            object.__setattr__(self, "_by_source", out)
        return self._by_source

    def dense(self) -> np.ndarray:
        """(K, K) float64 log matrix, [i, j] = log P(i -> j), -inf where there is no edge.
        For tests and small K only."""
        size = self.num_states
        out = np.full((size, size), -np.inf)
        dst = np.repeat(np.arange(size), np.diff(self.indptr))
        out[self.indices, dst] = self.log_weight
        return out

    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (for a model file's dict or ``np.savez``)."""
        extra = {k: v for k, v in (("n", self.n), ("sigma", self.sigma)) if v is not None}
        return {"indptr": self.indptr, "indices": self.indices, "log_weight": self.log_weight, **extra}

    @classmethod
    def from_dict(cls, d: dict) -> "Transitions":
        missing = {"indptr", "indices", "log_weight"} - set(d)
        if missing:
            raise ValueError(f"transitions dict lacks {sorted(missing)}")
        n, sigma = d.get("n"), d.get("sigma")
        return cls(*(np.asarray(d[k]) for k in ("indptr", "indices", "log_weight")),
                   n=None if n is None else int(n), sigma=None if sigma is None else float(sigma))

    def save(self, path: str | Path) -> None:
        """Write the arrays to an uncompressed ``.npz`` file."""
        np.savez(path, **self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Transitions":
        with np.load(path) as f:
            return cls.from_dict({k: f[k] for k in f.files})


def pose_transitions(templates: np.ndarray, n: int, sigma: float | None = None) -> Transitions:
    """Transition model between K pose classes that only allows moves to similar poses.

    Graph: state i may move to itself and to each of its ``n`` nearest classes in
    canonical landmark space (RMS distance over the 68 points, :func:`tracker.distribution.poses.knn_graph`,
    exact). kNN is not symmetric; the graph is **symmetrised** (i <-> j whenever either is
    among the other's n nearest), so every class can be both entered and left, and a
    class that is nobody's neighbour neither traps nor is unreachable. Each state has
    between n + 1 and K edges out (in practice about 1.4 n + 1).

    Weights: w(i, j) = exp(-d(i, j)^2 / (2 sigma^2)), with d the RMS distance, then
    normalised over each **source**'s out-edges, so P(i -> .) is a proper distribution
    (sums to 1, self included, w(i, i) = 1 before normalising). Because the graph is
    symmetric, row i of the by-destination CSR lists exactly the successors of i too.

    ``sigma`` defaults to the median over classes of the distance to the nearest other
    class (ignoring exact duplicates; 1.0 if every class is a duplicate): the typical
    spacing of the classes, so a move to an adjacent class costs about 1/2 nat more than
    staying, and moves several spacings away are strongly discouraged.

    Returns :class:`Transitions` with the log weights (float32).
    """
    t = np.asarray(templates)
    if t.ndim != 3 or t.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"templates must have shape (K, {N_POINTS}, 2), got {t.shape}")
    if len(t) < 1:
        raise ValueError("need at least one template")
    if not np.isfinite(t).all():
        raise ValueError("templates must be finite")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    size = len(t)
    if size >= 2 ** 31:
        raise ValueError(f"at most 2^31 - 1 states are supported, got {size}")
    _, nbr, dist = poses.knn_graph(t.astype(np.float32, copy=False), int(n))
    width = len(nbr) // size
    nbr = nbr.reshape(size, width)
    dist = dist.reshape(size, width)
    if sigma is None:
        nearest = dist[:, 1] if width > 1 else np.zeros(0, dtype=np.float32)
        nearest = nearest[nearest > 0]
        sigma = float(np.median(nearest.astype(np.float64))) if len(nearest) else 1.0
    return Transitions(*hmm.symmetric_knn_transitions(nbr, dist, float(sigma)), n=int(n), sigma=float(sigma))


def model_transitions(model, n: int) -> Transitions:
    """The model's stored transition graph when it was built with ``n`` neighbours, else a new one."""
    stored = model.transitions
    if stored is not None and int(stored.get("n", -1)) == int(n):
        return Transitions.from_dict(stored)
    return pose_transitions(model.templates, n)


# ----------------------------------------------------------------------------- validation

def _as_obs(log_obs, size: int, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(log_obs, dtype=np.float32)
    if arr.shape != (size,):
        raise ValueError(f"{what} must have shape ({size},), got {np.shape(log_obs)}")
    if np.isnan(arr).any() or (arr == np.inf).any():
        raise ValueError(f"{what} must be finite or -inf (no NaN, no +inf)")
    return arr


def _as_init(log_init, size: int) -> np.ndarray:
    if log_init is None:
        return np.full(size, -np.log(size), dtype=np.float32)
    return _as_obs(log_init, size, "log_init")


def _check_transitions(transitions) -> Transitions:
    if not isinstance(transitions, Transitions):
        raise TypeError(f"transitions must be a Transitions, got {type(transitions).__name__}")
    return transitions


PARALLEL_MIN_EDGES = 1 << 20     # below this a step is too short to share between threads


def _use_parallel(transitions: Transitions, parallel: bool | None) -> bool:
    if parallel is None:
        return numba.get_num_threads() > 1 and transitions.num_edges >= PARALLEL_MIN_EDGES
    return bool(parallel)


# ----------------------------------------------------------------------------- offline decode

def viterbi(transitions: Transitions, log_obs: np.ndarray, log_init: np.ndarray | None = None,
            parallel: bool | None = None) -> tuple[np.ndarray, float]:
    """Most probable state sequence of a whole (T, K) sequence of log observations.

    Maximises log_init[s_0] + sum_t log_obs[t, s_t] + sum_t log P(s_{t-1} -> s_t);
    ``log_init`` defaults to uniform, log(1/K). Ties go to the smaller state id.
    Returns (path int64 (T,), score float: the maximised sum). Raises ValueError when no
    path has a finite score. Memory: T x K int32 back-pointers. ``parallel`` as in
    :class:`FixedLagDecoder`.
    """
    trans = _check_transitions(transitions)
    size = trans.num_states
    obs = np.ascontiguousarray(log_obs, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[1] != size or obs.shape[0] < 1:
        raise ValueError(f"log_obs must have shape (T >= 1, {size}), got {np.shape(log_obs)}")
    if np.isnan(obs).any() or (obs == np.inf).any():
        raise ValueError("log_obs must be finite or -inf (no NaN, no +inf)")
    init = _as_init(log_init, size)
    frames = len(obs)
    backptr = np.empty((frames, size), dtype=np.int32)
    shifts = np.empty(frames)
    best, failed = hmm.viterbi_forward(obs, init, trans.indptr, trans.indices, trans.log_weight,
                                       backptr, np.empty(size, np.float32),
                                       np.empty(size, np.float32), shifts,
                                       _use_parallel(trans, parallel))
    if failed >= 0:
        raise ValueError(f"no state sequence has a finite score up to frame {failed}")
    path = np.empty(frames, dtype=np.int64)
    hmm.backtrack(backptr, frames - 1, frames - 1, np.int64(best), path)
    return path, float(shifts.sum())


# ----------------------------------------------------------------------------- streaming decode

class FixedLagDecoder:
    """Streaming (fixed-lag) Viterbi over a :class:`Transitions` model.

    :meth:`push` takes frame t's (K,) log observations and returns the (frame, state)
    pairs that became final: once frame t has arrived, frame t - ``lag`` gets the state
    that the best path ending at frame t passes through (backtracked ``lag`` steps).
    ``lag`` = 0 is filtering: the argmax of the current max-product score. Emitted states
    are final and never revised, although a later best path may disagree with them
    (standard fixed-lag Viterbi; with lag >= T everything is emitted by :meth:`flush`
    and equals :func:`viterbi`). :meth:`flush` ends the stream and emits the frames still
    pending by backtracking from the best final state; :meth:`reset` starts a new stream.
    Frame indices count pushes from 0 since the last reset. Ties go to the smaller id.

    ``prune_top`` = M keeps only the M best states of each frame's score before the
    next step (the others count as -inf): the step then costs O(M x out-degree) edge
    visits plus O(K) vector passes instead of O(edges). Approximate unless M >= K.

    Memory: a ring of lag + 1 back-pointer rows of K int32 plus two (K,) float32 score
    vectors (:attr:`memory_bytes`); pruning adds K float32 and M int64.

    ``parallel`` spreads the unpruned step over Numba's threads (same results); None
    means yes when Numba has more than one thread and the model has >= 2^20 edges.
    """

    def __init__(self, transitions: Transitions, lag: int, prune_top: int | None = None,
                 log_init: np.ndarray | None = None, parallel: bool | None = None):
        self.transitions = _check_transitions(transitions)
        self.parallel = _use_parallel(self.transitions, parallel)
        if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)) or lag < 0:
            raise ValueError(f"lag must be an integer >= 0, got {lag!r}")
        if prune_top is not None and (isinstance(prune_top, bool)
                                      or not isinstance(prune_top, (int, np.integer))
                                      or prune_top < 1):
            raise ValueError(f"prune_top must be None or an integer >= 1, got {prune_top!r}")
        size = self.transitions.num_states
        self.lag = int(lag)
        self.prune_top = None if prune_top is None else int(prune_top)
        self._init = _as_init(log_init, size)
        self._ring = np.empty((self.lag + 1, size), dtype=np.int32)
        self._delta = np.empty(size, dtype=np.float32)
        self._work = np.empty(size, dtype=np.float32)
        self._path = np.empty(self.lag + 1, dtype=np.int64)
        if self.prune_top is not None:
            self._out = self.transitions.by_source()
            self._acc = np.empty(size, dtype=np.float32)
            self._active = np.empty(min(self.prune_top, size), dtype=np.int64)
        self.reset()

    @property
    def num_states(self) -> int:
        return self.transitions.num_states

    @property
    def frames_seen(self) -> int:
        """Frames pushed since the last reset."""
        return self._count

    @property
    def memory_bytes(self) -> int:
        """Bytes of the decoding window (back-pointer ring, score vectors, pruning scratch)."""
        total = self._ring.nbytes + self._delta.nbytes + self._work.nbytes + self._path.nbytes
        if self.prune_top is not None:
            total += self._acc.nbytes + self._active.nbytes
        return total

    def reset(self) -> None:
        """Forget the stream; the next push is frame 0."""
        self._count = 0
        self._emitted = 0
        self._flushed = False

    def push(self, log_obs: np.ndarray) -> list[tuple[int, int]]:
        """Add the next frame's (K,) log observations; return the newly final frames."""
        if self._flushed:
            raise ValueError("the stream was flushed; call reset() before pushing again")
        t = self._count
        obs = _as_obs(log_obs, self.num_states, f"log_obs of frame {t}")
        row = t % len(self._ring)
        if t == 0:
            shift = hmm.init_step(self._init, obs, self._work)
        elif self.prune_top is None:
            tr = self.transitions
            step = hmm.forward_step_parallel if self.parallel else hmm.forward_step
            shift = step(self._delta, tr.indptr, tr.indices, tr.log_weight, obs, self._work,
                         self._ring[row])
        else:
            n_active = hmm.select_top(self._delta, self.prune_top, self._active)
            shift = hmm.forward_step_pruned(self._delta, self._active, n_active, *self._out, obs,
                                            self._acc, self._work, self._ring[row])
        if shift == -np.inf:
            raise ValueError(f"frame {t}: no state has a finite score (every reachable state has "
                             "log_obs -inf); the frame was not added")
        self._delta, self._work = self._work, self._delta
        self._count = t + 1
        if t < self.lag:
            return []
        state = int(np.argmax(self._delta))
        if self.lag:
            state = int(hmm.backtrack(self._ring, row, self.lag, np.int64(state), self._path)[0])
        self._emitted = t - self.lag + 1
        return [(t - self.lag, state)]

    def flush(self) -> list[tuple[int, int]]:
        """End the stream: emit every frame not yet emitted (the last min(lag, T) frames),
        backtracking from the best final state. Later pushes need :meth:`reset` first."""
        if self._flushed or self._count == 0:
            self._flushed = self._count > 0
            return []
        self._flushed = True
        last = self._count - 1
        steps = last - self._emitted
        if steps < 0:
            return []
        first = self._emitted
        state = np.int64(np.argmax(self._delta))
        path = hmm.backtrack(self._ring, last % len(self._ring), steps, state, self._path)
        self._emitted = self._count
        return [(first + k, int(path[k])) for k in range(steps + 1)]


# ----------------------------------------------------------------------------- measurement

def _benchmark_templates(size: int, seed: int = 0, params: int = 8) -> np.ndarray:
    """(size, 68, 2) float32 synthetic pose classes with meaningful neighbourhoods.

    A random mean face moved by ``params`` latent pose parameters (standard normal,
    decaying scales 0.25 * 0.7^k) along orthonormal directions, plus a quadratic term
    along other directions (so the shape set is curved, not a flat subspace), plus
    0.002 i.i.d. noise per coordinate (nearest-neighbour distance ~0.008 RMS at 140k).
    Its kNN graph has about as many edges per state as the default model's templates
    (44 vs 47 at n = 32), so decode timings carry over; it is not a face model.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(2 * N_POINTS, 2 * params)))
    mean = rng.uniform(-0.4, 0.4, size=2 * N_POINTS)
    scale = 0.25 * 0.7 ** np.arange(params)
    out = np.empty((size, 2 * N_POINTS), dtype=np.float32)
    for start in range(0, size, 16_384):
        z = rng.normal(size=(min(16_384, size - start), params)) * scale
        flat = mean + z @ basis[:, :params].T + (1.2 * (z * z - scale ** 2)) @ basis[:, params:].T
        flat += rng.normal(size=flat.shape) * 0.002
        out[start:start + len(z)] = flat
    return out.reshape(size, N_POINTS, 2)


def _random_log_softmax(rng: np.random.Generator, size: int, scale: float = 3.0) -> np.ndarray:
    logits = rng.normal(size=size) * scale
    logits -= logits.max()
    return (logits - np.log(np.exp(logits).sum())).astype(np.float32)


def decode_benchmark(K: int, n: int, frames: int = 60, lag: int = 30, seed: int = 0,
                     prune_top: int | None = None, transitions: Transitions | None = None) -> dict:
    """Time the transition build and the per-frame fixed-lag decode at K states.

    Templates are synthetic (:func:`_benchmark_templates`) unless ``transitions`` is
    given (e.g. a model's stored graph; K and n are then taken from it and ``build_s``
    is None); observations are random log-softmax vectors (the step's cost does not
    depend on them). One untimed push first (Numba compile/cache load). Returns a dict
    with ``build_s`` (seconds for :func:`pose_transitions`), ``ms_per_frame`` (mean over
    ``frames`` pushes, flush excluded), ``ms_per_frame_median``, ``ms_per_frame_max``,
    ``parallel`` (whether the threaded step was used), ``flush_ms``, ``window_mb``
    (decoder window: back-pointer ring + score vectors, in 10^6 bytes),
    ``transitions_mb`` (CSR arrays), ``edges`` and the inputs.
    """
    for name, value, low in (("K", K, 1), ("n", n, 0), ("frames", frames, 1), ("lag", lag, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    build_s = None
    if transitions is None:
        templates = _benchmark_templates(int(K), seed)
        start = time.perf_counter()
        trans = pose_transitions(templates, int(n))
        build_s = time.perf_counter() - start
    else:
        trans = _check_transitions(transitions)
        K, n = trans.num_states, trans.n if trans.n is not None else n
    if prune_top is not None:
        trans.by_source()
    decoder = FixedLagDecoder(trans, int(lag), prune_top=prune_top)
    rng = np.random.default_rng(seed + 1)
    obs = [_random_log_softmax(rng, int(K)) for _ in range(int(frames))]
    decoder.push(obs[0])                                   # compile / load the cache
    decoder.push(obs[0])
    decoder.reset()
    times = []
    for frame in obs:
        tick = time.perf_counter()
        decoder.push(frame)
        times.append(time.perf_counter() - tick)
    tick = time.perf_counter()
    decoder.flush()
    flush_ms = 1e3 * (time.perf_counter() - tick)
    return {
        "K": int(K), "n": int(n), "frames": int(frames), "lag": int(lag), "prune_top": prune_top,
        "model": transitions is not None,
        "parallel": decoder.parallel and prune_top is None, "threads": numba.get_num_threads(),
        "build_s": build_s,
        "ms_per_frame": 1e3 * float(np.mean(times)),
        "ms_per_frame_median": 1e3 * float(np.median(times)),
        "ms_per_frame_max": 1e3 * float(np.max(times)),
        "flush_ms": flush_ms,
        "window_mb": decoder.memory_bytes / 1e6,
        "transitions_mb": trans.nbytes / 1e6,
        "edges": trans.num_edges,
    }
