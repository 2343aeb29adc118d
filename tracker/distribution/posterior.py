"""The softmax distribution over pose classes and what we read from it (eq. 3).

Landmarks are the posterior-weighted mean of the top-k class templates; the mixture
p(y) = sum_k p_k N(y; mu_k, sigma_k^2 I) gives per-landmark spread.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Posterior:
    """Top-k of the class distribution for a batch of crops."""

    classes: np.ndarray     # (N, k) int64, most probable first
    probs: np.ndarray       # (N, k) float32, renormalised over the k kept classes
    mass: np.ndarray        # (N,) probability mass the k classes held before renormalising
    log_probs: np.ndarray | None = None   # (N, K) float32 log-softmax over all classes, when asked for

    @property
    def best(self) -> np.ndarray:
        return self.classes[:, 0]


def top_k_posterior(scores, k: int, keep_log_probs: bool = False) -> Posterior:
    """Softmax over all K classes, keeping the k most probable (and all log-probabilities if
    asked); ``scores`` (N, K) a torch tensor (on any device) or a NumPy array."""
    if isinstance(scores, np.ndarray):
        return _top_k_numpy(scores, k, keep_log_probs)
    import torch
    log_probs = torch.log_softmax(scores.float(), dim=1)
    top = torch.topk(log_probs, min(k, log_probs.shape[1]), dim=1)
    values = top.values.exp()
    mass = values.sum(dim=1)
    return Posterior(classes=top.indices.cpu().numpy(),
                     probs=(values / mass[:, None]).cpu().numpy(),
                     mass=mass.cpu().numpy(),
                     log_probs=log_probs.cpu().numpy() if keep_log_probs else None)


def _top_k_numpy(scores: np.ndarray, k: int, keep_log_probs: bool) -> Posterior:
    scores = np.asarray(scores, np.float32)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True, dtype=np.float64)).astype(np.float32)
    k = min(k, scores.shape[1])
    part = np.argpartition(-log_probs, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(log_probs, part, axis=1), axis=1, kind="stable")
    classes = np.take_along_axis(part, order, axis=1).astype(np.int64)
    values = np.exp(np.take_along_axis(log_probs, classes, axis=1))
    mass = values.sum(axis=1)
    return Posterior(classes=classes, probs=(values / mass[:, None]).astype(np.float32), mass=mass.astype(np.float32),
                     log_probs=log_probs if keep_log_probs else None)


def expected_shape(post: Posterior, templates: np.ndarray) -> np.ndarray:
    """Posterior-weighted mean of the top-k templates: (N, 68, 2) canonical shapes."""
    return np.einsum("nk,nkpd->npd", post.probs, templates[post.classes])


def landmark_spread(post: Posterior, templates: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Per-landmark standard deviation of the mixture (N, 68), canonical units."""
    mean = expected_shape(post, templates)
    diff = templates[post.classes] - mean[:, None]               # (N, k, 68, 2)
    var = (post.probs[..., None] * ((diff ** 2).sum(-1) + 2 * widths[post.classes][..., None] ** 2)).sum(1)
    return np.sqrt(var / 2)
