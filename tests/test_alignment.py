"""Similarity transforms (tracker/geometry/alignment.py): one least-squares solver behind the
regressors' alignment and the evaluation's Procrustes, and the one random shape jitter."""
import numpy as np
import pytest

from tracker.evaluation import metrics
from tracker.geometry.alignment import alignment_matrix, similarity_align, similarity_jitter
from tracker.geometry.crop import transform_points


def complex_procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The evaluation's former alignment, kept as the reference: 2-D Procrustes in complex numbers."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    sc = (source - mu_s) @ np.array([1, 1j])
    tc = (target - mu_t) @ np.array([1, 1j])
    a = np.vdot(sc, tc) / max(np.vdot(sc, sc).real, 1e-12)
    out = a * sc
    return np.stack([out.real, out.imag], axis=1) + mu_t


def moved_faces(face: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` copies of the face turned, scaled, shifted and each point moved a little."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-0.6, 0.6, n)
    scale = np.exp(rng.uniform(-0.5, 0.5, n))
    rot = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)], -2)
    out = np.einsum("nij,pj->npi", rot * scale[:, None, None], face - face.mean(0)) + rng.uniform(0, 500, (n, 1, 2))
    return out + rng.normal(0, 3, out.shape)


def test_similarity_align_is_the_complex_procrustes_and_the_alignment_matrix(face):
    shapes = moved_faces(face, 20, 0)
    for source, target in zip(shapes, shapes[::-1]):
        got = similarity_align(source, target)
        np.testing.assert_allclose(got, complex_procrustes(source, target), rtol=0, atol=1e-9)
        np.testing.assert_allclose(got, transform_points(source, alignment_matrix(source, target)), rtol=0, atol=1e-9)


def test_the_hard_subset_measure_keeps_its_values(face, monkeypatch):
    """The metric's deviations with the one solver equal those of the former complex form (1e-12)."""
    shapes = moved_faces(face, 60, 1)
    got = metrics.shape_deviation(shapes)
    monkeypatch.setattr(metrics, "similarity_align", complex_procrustes)
    want = metrics.shape_deviation(shapes)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(np.sort(np.argsort(-got)[:6]), metrics.hard_subset(shapes, 0.1))


def test_similarity_jitter_in_a_shared_frame_is_the_template_banks_formula(face):
    """frame=(0, 1): c' = R(a) c / s - d with the draws in the order angle, log scale, shift."""
    shapes = np.stack([(face - face.mean(0)) / 400, (face[::-1] - face.mean(0)) / 380])
    got = similarity_jitter(shapes, np.random.default_rng(3), 12.0, 0.08, 0.08, frame=(0.0, 1.0))
    rng = np.random.default_rng(3)
    angle = np.deg2rad(rng.uniform(-12, 12, 2))
    s = np.exp(rng.uniform(-0.08, 0.08, 2))
    d = rng.uniform(-0.08, 0.08, (2, 2))
    for i in range(2):
        rot = np.array([[np.cos(angle[i]), -np.sin(angle[i])], [np.sin(angle[i]), np.cos(angle[i])]])
        np.testing.assert_allclose(got[i], shapes[i] @ rot.T / s[i] - d[i], rtol=0, atol=1e-15)


def test_similarity_jitter_about_each_shape_keeps_its_size_within_bounds(face):
    shapes = np.repeat(face[None], 200, axis=0)
    moved = similarity_jitter(shapes, np.random.default_rng(4), 6.0, 0.06, 0.05)
    side = np.ptp(face, axis=0).max()
    shift = (moved.mean(1) - face.mean(0)) / side
    assert np.abs(shift).max() <= 0.05 and np.abs(shift).max() > 0.04      # about the centroid: only the shift moves it
    size = np.linalg.norm(moved - moved.mean(1, keepdims=True), axis=-1).mean(1)
    ratio = np.log(size / np.linalg.norm(face - face.mean(0), axis=-1).mean())
    assert np.abs(ratio).max() == pytest.approx(0.06, abs=0.01)
