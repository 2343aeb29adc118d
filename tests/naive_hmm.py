"""Slow, obvious NumPy references for the HMM kernels (dense K x K, float64)."""
from __future__ import annotations

import numpy as np


def dense_viterbi(log_trans: np.ndarray, log_obs: np.ndarray, log_init: np.ndarray | None = None,
                  prune_top: int | None = None) -> tuple[np.ndarray, float]:
    """Textbook Viterbi. log_trans[i, j] = log P(i -> j) (-inf: no edge).

    Returns (path int64, best score); ties go to the smaller state id (np.argmax).
    ``prune_top`` = M: before each transition only the M best finite scores survive
    (ties at the cut: smaller ids), the rest become -inf (beam search).
    """
    log_trans = np.asarray(log_trans, dtype=np.float64)
    log_obs = np.asarray(log_obs, dtype=np.float64)
    frames, size = log_obs.shape
    if log_init is None:
        log_init = np.full(size, -np.log(size))
    delta = np.asarray(log_init, dtype=np.float64) + log_obs[0]
    back = np.zeros((frames, size), dtype=np.int64)
    for t in range(1, frames):
        if prune_top is not None:
            keep = np.lexsort((np.arange(size), -delta))[:prune_top]   # by score, then id
            pruned = np.full(size, -np.inf)
            pruned[keep] = delta[keep]
            delta = pruned
        cand = delta[:, None] + log_trans          # [i, j]: come from i, go to j
        back[t] = np.argmax(cand, axis=0)
        delta = cand[back[t], np.arange(size)] + log_obs[t]
    path = np.empty(frames, dtype=np.int64)
    path[-1] = np.argmax(delta)
    for t in range(frames - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path, float(delta.max())


def path_score(log_trans: np.ndarray, log_obs: np.ndarray, path: np.ndarray,
               log_init: np.ndarray | None = None) -> float:
    """Log score of one given path, in float64."""
    log_obs = np.asarray(log_obs, dtype=np.float64)
    size = log_obs.shape[1]
    init = np.full(size, -np.log(size)) if log_init is None else np.asarray(log_init, np.float64)
    score = init[path[0]] + log_obs[0, path[0]]
    for t in range(1, len(path)):
        score += log_trans[path[t - 1], path[t]] + log_obs[t, path[t]]
    return float(score)


def fixed_lag_reference(log_trans: np.ndarray, log_obs: np.ndarray, lag: int) -> list[tuple[int, int]]:
    """Fixed-lag decoding by brute force: frame t - lag takes the state of the full
    Viterbi path of frames 0..t; the last frames come from the full path at the end."""
    frames = len(log_obs)
    out = []
    for t in range(lag, frames):
        path, _ = dense_viterbi(log_trans, log_obs[:t + 1])
        out.append((t - lag, int(path[t - lag])))
    path, _ = dense_viterbi(log_trans, log_obs)
    out.extend((f, int(path[f])) for f in range(max(0, frames - lag), frames))
    return out
