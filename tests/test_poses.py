import numpy as np
import pytest
from naive_knn import structured_shapes

from tracker.distribution import poses


def dense_rms(a, b):
    """(len(a), len(b)) RMS distances, computed the slow obvious way."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / 68)


def reference_sets(shapes, templates, tau):
    d = dense_rms(shapes, templates)
    return [np.union1d(np.flatnonzero(row <= tau), [row.argmin()]) for row in d]


def unit_direction(rng):
    """A random displacement with RMS length exactly 1 (float64)."""
    u = rng.normal(size=(68, 2))
    return u / np.sqrt((u ** 2).sum() / 68)


@pytest.mark.parametrize("tau", [0.0, 0.01, 0.03, 0.05, 0.08])
def test_membership_matches_brute_force(tau):
    rng = np.random.default_rng(0)
    shapes, templates = structured_shapes(rng, 120), structured_shapes(rng, 90)
    member = poses.membership_sets(shapes, templates, tau, chunk=32)
    expected = reference_sets(shapes, templates, tau)
    assert len(member) == 120
    assert member.indptr.dtype == np.int64 and member.indptr[0] == 0
    for i, ref in enumerate(expected):
        np.testing.assert_array_equal(member.row(i), ref)
    np.testing.assert_array_equal(member.sizes(), [len(r) for r in expected])
    if tau == 0.08:
        assert np.median(member.sizes()) > 5      # the sweep really covers large sets
    if tau == 0.0:
        assert (member.sizes() == 1).all()


def test_nearest_is_included_even_beyond_tau():
    rng = np.random.default_rng(1)
    shapes, templates = structured_shapes(rng, 50), structured_shapes(rng, 40)
    d = dense_rms(shapes, templates)
    assert d.min() > 0.005
    member = poses.membership_sets(shapes, templates, 0.001)
    np.testing.assert_array_equal(member.indices, d.argmin(axis=1))
    np.testing.assert_array_equal(member.sizes(), np.ones(50))
    idx, dist = poses.nearest_template(shapes, templates)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, d.argmin(axis=1))
    np.testing.assert_allclose(dist, d.min(axis=1), rtol=1e-12)


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(2)
    shapes, templates = structured_shapes(rng, 200), structured_shapes(rng, 150)
    whole = poses.membership_sets(shapes, templates, 0.04, chunk=10_000)
    pieces = poses.membership_sets(shapes, templates, 0.04, chunk=7)
    np.testing.assert_array_equal(whole.indptr, pieces.indptr)
    np.testing.assert_array_equal(whole.indices, pieces.indices)
    assert whole.sizes().max() > 3


def test_threshold_is_inclusive_and_exact_at_the_boundary():
    rng = np.random.default_rng(3)
    y = structured_shapes(rng, 1)[0]
    tau = 0.03
    inside = [y + tau * (1 - 1e-9) * unit_direction(rng) for _ in range(5)]
    outside = [y + tau * (1 + 1e-9) * unit_direction(rng) for _ in range(5)]
    far = [y + 3.0, y + 3.0]                               # pull faiss's float32 frame off y
    templates = np.stack(inside + outside + [y, y] + far)  # two exact copies of y too
    queries = np.repeat(y[None], 25, axis=0)               # enough rows for faiss's BLAS path
    member = poses.membership_sets(queries, templates, tau)
    np.testing.assert_array_equal(member.indices, np.tile([0, 1, 2, 3, 4, 10, 11], 25))
    exact = poses.membership_sets(queries, templates, 0.0)
    np.testing.assert_array_equal(exact.indices, np.tile([10, 11], 25))


def test_membership_subset_row_and_len():
    member = poses.Membership(np.array([0, 2, 2, 5, 6]), np.array([1, 4, 0, 2, 3, 7], dtype=np.int32))
    assert len(member) == 4
    np.testing.assert_array_equal(member.sizes(), [2, 0, 3, 1])
    sub = member.subset([3, 0, 2, 0])
    np.testing.assert_array_equal(sub.indptr, [0, 1, 3, 6, 8])
    np.testing.assert_array_equal(sub.indices, [7, 1, 4, 0, 2, 3, 1, 4])
    np.testing.assert_array_equal(sub.row(2), member.row(2))
    empty = member.subset([])
    assert len(empty) == 0 and len(empty.indices) == 0
    with pytest.raises(ValueError):
        poses.Membership(np.array([0, 3]), np.array([1, 2]))


def three_blobs(rng, per_blob=60):
    centers = np.stack([np.full((68, 2), c) for c in (-0.3, 0.0, 0.3)])
    centers[1, :, 0] += np.linspace(-0.2, 0.2, 68)
    labels = np.repeat(np.arange(3), per_blob)
    shapes = centers[labels] + rng.normal(size=(len(labels), 68, 2)) * 0.01
    return centers, rng.permutation(shapes)


def test_kmeans_finds_obvious_clusters_and_is_deterministic():
    rng = np.random.default_rng(4)
    centers, shapes = three_blobs(rng)
    first = poses.kmeans_templates(shapes, 3, seed=7)
    again = poses.kmeans_templates(shapes, 3, seed=7)
    assert first.shape == (3, 68, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    d = dense_rms(centers, first)
    assert sorted(d.argmin(axis=1)) == [0, 1, 2]               # one template per blob
    assert d.min(axis=1).max() < 0.005                          # blob mean, up to noise


def test_kmeans_rejects_bad_k():
    shapes = np.zeros((4, 68, 2))
    with pytest.raises(ValueError, match="k must be"):
        poses.kmeans_templates(shapes, 5)
    with pytest.raises(ValueError, match="k must be"):
        poses.kmeans_templates(shapes, 0)


def test_class_widths_on_a_hand_made_example():
    ones_x = np.zeros((68, 2))
    ones_x[:, 0] = 1.0                                     # RMS length 1
    templates = np.stack([np.zeros((68, 2)), ones_x, 5 * ones_x, 9 * ones_x])
    shapes = np.stack([0.02 * ones_x, -0.04 * ones_x, 1.1 * ones_x, 5 * ones_x])
    member = poses.Membership(np.array([0, 1, 3, 4, 5]), np.array([0, 0, 1, 1, 2]))
    widths = poses.class_widths(templates, shapes, member, min_width=1e-3)
    assert widths.dtype == np.float32
    sigma0 = np.sqrt((0.02 ** 2 + 0.04 ** 2) / 2)             # shapes 0 and 1
    sigma1 = np.sqrt((1.04 ** 2 + 0.1 ** 2) / 2)              # shapes 1 and 2
    sigma2 = 1e-3                                             # exact member: floored
    np.testing.assert_allclose(widths[:3], [sigma0, sigma1, sigma2], rtol=1e-6)
    assert widths[3] == pytest.approx(np.median([sigma0, sigma1, 0.0]), rel=1e-6)


def test_choose_tau_picks_the_blend_optimum():
    ux, uy = np.zeros((68, 2)), np.zeros((68, 2))
    ux[:, 0], uy[:, 1] = 1.0, 1.0                           # orthogonal, RMS length 1
    vals, templates = [], []
    for offset in (-0.2, 0.0, 0.2):                         # three far-apart copies
        y = np.full((68, 2), offset) + np.linspace(0, 0.1, 136).reshape(68, 2)
        vals.append(y)
        templates += [y + 0.01 * ux, y - 0.02 * ux, y + 0.04 * uy]
    best, table = poses.choose_tau(np.stack(templates), np.stack(vals), [0.05, 0.005, 0.025])
    assert best == 0.025
    assert [row.tau for row in table] == [0.005, 0.025, 0.05]
    np.testing.assert_allclose([row.mean_error for row in table],
                               [0.01, 0.005, np.hypot(0.01, 0.04) / 3], rtol=1e-6)
    assert [row.median_size for row in table] == [1, 2, 3]


def test_exemplar_indices_beyond_65535_do_not_overflow():
    rng = np.random.default_rng(8)
    shapes = rng.normal(size=(70_000, 68, 2)).astype(np.float32)
    templates = shapes.copy()                              # K = M: one class per shape
    queries = np.arange(69_990, 70_000)
    member = poses.membership_sets(shapes[queries], templates, 1e-4)
    np.testing.assert_array_equal(member.indices, queries)
    np.testing.assert_array_equal(member.subset([9, 0]).indices, [69_999, 69_990])
    idx, dist = poses.nearest_template(shapes[queries], templates)
    np.testing.assert_array_equal(idx, queries)
    np.testing.assert_array_equal(dist, 0)
