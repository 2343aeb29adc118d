import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tracker.distribution.poses import Membership
from tracker.training import losses

# Three examples over K = 7 classes; row b lists M_b.
SETS = [[0, 3], [6], [1, 2, 4, 5]]
K = 7


def batch_csr(sets, as_numpy=False):
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])])
    indices = np.concatenate([np.asarray(s, dtype=np.int64) for s in sets])
    if as_numpy:
        return indptr, indices.astype(np.int32)
    return torch.from_numpy(indptr), torch.from_numpy(indices)


def dense_mask(sets, k=K):
    mask = torch.zeros(len(sets), k)
    for b, s in enumerate(sets):
        mask[b, s] = 1.0
    return mask


def random_scores(seed=0, shape=(3, K), scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).requires_grad_()


def test_softmax_loss_matches_dense_one_hot():
    scores = random_scores()
    target = torch.tensor([3, 6, 1])
    one_hot = F.one_hot(target, K).double()
    dense = -(one_hot * torch.log_softmax(scores, 1)).sum(1).mean()
    torch.testing.assert_close(losses.softmax_loss(scores, target), dense)
    torch.testing.assert_close(losses.softmax_loss(scores, target.numpy()), dense)


@pytest.mark.parametrize("as_numpy", [False, True])
def test_soft_target_loss_matches_dense_q(as_numpy):
    scores = random_scores(1)
    q = dense_mask(SETS).double()
    q /= q.sum(1, keepdim=True)
    dense = -(q * torch.log_softmax(scores, 1)).sum(1).mean()
    torch.testing.assert_close(losses.soft_target_loss(scores, *batch_csr(SETS, as_numpy)), dense)


@pytest.mark.parametrize("as_numpy", [False, True])
def test_multilabel_loss_matches_dense_c(as_numpy):
    scores = random_scores(2)
    c = 2 * dense_mask(SETS).double() - 1                     # +1 on M_b, -1 elsewhere
    dense = torch.log1p(torch.exp(-c * scores)).sum(1).mean()
    got = losses.multilabel_loss(scores, *batch_csr(SETS, as_numpy))
    torch.testing.assert_close(got, dense)


def test_multilabel_gradient_matches_dense_binary_cross_entropy():
    scores = random_scores(3)
    target = dense_mask(SETS).double()
    bce = F.binary_cross_entropy_with_logits(scores, target, reduction="sum") / len(SETS)
    (want,) = torch.autograd.grad(bce, scores)
    (got,) = torch.autograd.grad(losses.multilabel_loss(scores, *batch_csr(SETS)), scores)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got, (torch.sigmoid(scores) - target).detach() / len(SETS))


def positive_gradient(loss_fn, n_pos, k=256):
    """Gradient on a positive class for one example with |M| = n_pos and zero scores."""
    scores = torch.zeros(1, k, dtype=torch.float64, requires_grad=True)
    indptr, indices = torch.tensor([0, n_pos]), torch.arange(n_pos)
    (grad,) = torch.autograd.grad(loss_fn(scores, indptr, indices), scores)
    assert torch.allclose(grad[0, :n_pos], grad[0, 0])       # all positives alike
    return grad[0, 0].item(), grad[0, n_pos:]


def test_soft_target_gradient_is_p_minus_q():
    scores = random_scores(4)
    indptr, indices = batch_csr(SETS)
    (grad,) = torch.autograd.grad(losses.soft_target_loss(scores, indptr, indices), scores)
    q = dense_mask(SETS).double()
    q /= q.sum(1, keepdim=True)
    p = torch.softmax(scores.detach(), 1)
    torch.testing.assert_close(grad, (p - q) / len(SETS))


def test_soft_target_positive_signal_vanishes_but_multilabel_does_not():
    k, sizes = 256, [1, 4, 16, 64, 128]
    soft = [positive_gradient(losses.soft_target_loss, m, k)[0] for m in sizes]
    multi = [positive_gradient(losses.multilabel_loss, m, k)[0] for m in sizes]
    # Zero scores: p_k = 1/K, so the soft-target positive gradient is 1/K - 1/|M|.
    np.testing.assert_allclose(soft, [1 / k - 1 / m for m in sizes], rtol=1e-12)
    assert all(abs(a) > abs(b) for a, b in zip(soft, soft[1:]))
    assert abs(soft[-1]) < 0.01 * abs(soft[0])
    # Multilabel: sigmoid(0) - 1 = -0.5 whatever |M| is; negatives get sigmoid(0) = 0.5.
    np.testing.assert_allclose(multi, -0.5, rtol=1e-12)
    _, negatives = positive_gradient(losses.multilabel_loss, 16, k)
    torch.testing.assert_close(negatives, torch.full_like(negatives, 0.5))


@pytest.mark.parametrize("name", ["soft_target", "multilabel"])
def test_large_scores_stay_finite(name):
    scores = torch.tensor([[100.0, -100.0, 100.0, -100.0, 0.0, 50.0, -50.0]] * 3,
                          requires_grad=True)
    loss = losses.loss_from_name(name)(scores, *batch_csr(SETS))
    (grad,) = torch.autograd.grad(loss, scores)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    target = dense_mask(SETS)
    if name == "multilabel":
        c = 2 * target.double() - 1
        dense = F.softplus(-c * scores.detach().double()).sum(1).mean()
        assert loss.item() == pytest.approx(dense.item(), rel=1e-5)
        assert loss.item() > 199                               # a positive at -100 costs ~100
    softmax = losses.softmax_loss(scores, torch.tensor([1, 0, 4]))
    lse = 100 + np.log(2)                                      # two scores of +100
    want = ((lse + 100) + (lse - 100) + lse) / 3
    assert torch.isfinite(softmax) and softmax.item() == pytest.approx(want, rel=1e-6)


def test_half_precision_scores_are_promoted():
    scores = random_scores(5).detach().half()
    loss = losses.multilabel_loss(scores, *batch_csr(SETS))
    assert loss.dtype == torch.float32
    ref = losses.multilabel_loss(scores.double(), *batch_csr(SETS))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_membership_subset_feeds_the_losses():
    member = Membership(*batch_csr([[5], [0, 3], [6], [1, 2, 4, 5]], as_numpy=True))
    batch = member.subset([1, 2, 3])
    scores = random_scores(6)
    want = losses.multilabel_loss(scores, *batch_csr(SETS))
    torch.testing.assert_close(losses.multilabel_loss(scores, batch.indptr, batch.indices), want)


def test_multilabel_allows_an_empty_row_but_soft_target_refuses():
    scores = random_scores(7)
    sets = [[0], [], [2]]
    c = 2 * dense_mask(sets).double() - 1
    dense = F.softplus(-c * scores).sum(1).mean()
    torch.testing.assert_close(losses.multilabel_loss(scores, *batch_csr(sets)), dense)
    with pytest.raises(ValueError, match="non-empty"):
        losses.soft_target_loss(scores, *batch_csr(sets))


def test_batch_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="rows"):
        losses.multilabel_loss(random_scores(8, shape=(2, K)), *batch_csr(SETS))


def test_registry():
    assert set(losses.LOSSES) == {"softmax", "soft_target", "multilabel"}
    assert losses.loss_from_name("multilabel") is losses.multilabel_loss
    with pytest.raises(ValueError, match="unknown loss"):
        losses.loss_from_name("hinge")
