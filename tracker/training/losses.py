"""Training losses over K pose classes (paper Sec. 3.1-3.3, eqs. 4-9).

Every loss takes logits ``scores`` (B, K) and returns the batch mean of the
per-example loss. Positive sets M_i come as a batch CSR ``(indptr, indices)``
(torch tensors or numpy arrays): row b lists the member classes of example b, as
produced by :meth:`tracker.distribution.poses.Membership.subset`. No dense B x K target is built.
Half-precision scores are promoted to float32.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _as_long(values, device: torch.device) -> Tensor:
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values))
    return torch.as_tensor(values).to(device=device, dtype=torch.long)


def _promote(scores: Tensor) -> Tensor:
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, K), got shape {tuple(scores.shape)}")
    return scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores


def batch_rows(indptr, indices, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(row of each entry, class of each entry, |M_b| per row) as long tensors on ``device``."""
    ptr = _as_long(indptr, device)
    cols = _as_long(indices, device)[ptr[0]:ptr[-1]]
    counts = ptr.diff()
    rows = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    return rows, cols, counts


def positive_score_sums(scores: Tensor, indptr, indices) -> tuple[Tensor, Tensor]:
    """Per-row sum of s_k over k in M_b, and |M_b|; differentiable in ``scores``."""
    rows, cols, counts = batch_rows(indptr, indices, scores.device)
    if len(counts) != scores.shape[0]:
        raise ValueError(f"CSR has {len(counts)} rows for a batch of {scores.shape[0]}")
    return entry_score_sums(scores, rows, cols), counts


def entry_score_sums(scores: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Per-row sum of ``scores[rows, cols]`` (the membership entries as row and class lists)."""
    return scores.new_zeros(scores.shape[0]).index_add(0, rows, scores[rows, cols])


def softmax_loss(scores: Tensor, target) -> Tensor:
    """Eq. 5: cross-entropy against the single ground-truth class ``target`` (B,)."""
    scores = _promote(scores)
    return F.cross_entropy(scores, _as_long(target, scores.device))


def soft_target_loss(scores: Tensor, indptr, indices) -> Tensor:
    """Eq. 7: cross-entropy with q uniform over M_b: logsumexp(s) - mean_{k in M_b} s_k."""
    scores = _promote(scores)
    sums, counts = positive_score_sums(scores, indptr, indices)
    if len(counts) and int(counts.min()) < 1:
        raise ValueError("soft_target_loss needs a non-empty membership set in every row")
    return (torch.logsumexp(scores, dim=1) - sums / counts).mean()


def multilabel_loss(scores: Tensor, indptr, indices) -> Tensor:
    """Eqs. 8-9: K binary logistic losses, sum_k log(1 + exp(-c_k s_k)), c_k = +1 on M_b.

    Computed as sum_k softplus(s_k) - sum_{k in M_b} s_k, since
    softplus(-s) = softplus(s) - s. (Eq. 8 in the paper carries a sign slip; this is
    the positive quantity that is minimised.)
    """
    scores = _promote(scores)
    sums, _ = positive_score_sums(scores, indptr, indices)
    return multilabel_from_sums(scores, sums)


def multilabel_from_sums(scores: Tensor, positive_sums: Tensor) -> Tensor:
    """Eq. 8's batch mean from the scores and each row's sum of its members' scores."""
    return (F.softplus(scores).sum(dim=1) - positive_sums).mean()


LOSSES: dict[str, Callable[..., Tensor]] = {
    "softmax": softmax_loss,
    "soft_target": soft_target_loss,
    "multilabel": multilabel_loss,
}


def loss_from_name(name: str) -> Callable[..., Tensor]:
    """The loss function registered as ``name`` in :data:`LOSSES`."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}") from None
