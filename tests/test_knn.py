"""Exact k-nearest-neighbour search over pose templates (kernels/knn.py, through
tracker.distribution.poses.knn_graph), against brute force."""
import numpy as np
from naive_knn import brute_knn, structured_shapes

from tracker.distribution import poses


def brute_knn_with_self(templates, n):
    """Self first, then the n nearest by RMS distance (ties by smaller id)."""
    flat = templates.reshape(len(templates), -1)
    d = np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1) / 68)
    np.fill_diagonal(d, -1)                                 # self sorts first
    order = np.argsort(d, axis=1, kind="stable")[:, : n + 1]
    return order, np.take_along_axis(np.maximum(d, 0), order, axis=1)


def test_knn_graph_matches_brute_force():
    templates = structured_shapes(np.random.default_rng(6), 150)
    indptr, indices, dist = poses.knn_graph(templates, 5, chunk=40)
    np.testing.assert_array_equal(indptr, np.arange(151) * 6)
    assert indices.dtype == np.int64 and dist.dtype == np.float32
    order, ref = brute_knn_with_self(templates, 5)
    np.testing.assert_array_equal(indices.reshape(150, 6), order)
    np.testing.assert_allclose(dist.reshape(150, 6), ref, rtol=1e-5, atol=1e-7)


def test_knn_graph_caps_n_and_keeps_self_first_with_duplicates():
    templates = structured_shapes(np.random.default_rng(7), 6)
    templates[4] = templates[1]                             # exact duplicate
    indptr, indices, dist = poses.knn_graph(templates, 10)
    rows = indices.reshape(6, 6)
    np.testing.assert_array_equal(rows[:, 0], np.arange(6))
    for k, row in enumerate(rows):
        assert sorted(row) == list(range(6))
    assert rows[1, 1] == 4 and rows[4, 1] == 1 and dist.reshape(6, 6)[1, 1] == 0
    np.testing.assert_array_equal(poses.knn_graph(templates[:1], 3)[1], [0])


def test_knn_graph_is_exact_with_ties_and_duplicates():
    rng = np.random.default_rng(91)
    templates = structured_shapes(rng, 300)
    templates[10] = templates[20]                                  # exact duplicates
    templates[11] = templates[20]
    for n in (1, 8, 299):
        _, nbr, dist = poses.knn_graph(templates, n)
        nbr, dist = nbr.reshape(300, n + 1), dist.reshape(300, n + 1)
        ref, ref_d = brute_knn(templates.reshape(300, -1), n)
        np.testing.assert_array_equal(nbr[:, 0], np.arange(300))
        np.testing.assert_array_equal(nbr[:, 1:], ref)
        np.testing.assert_allclose(dist[:, 1:], ref_d, rtol=1e-6)
        assert dist[20, 1] == 0 and nbr[20, 1] == 10
