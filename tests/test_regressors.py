"""The cascaded regressors (tracker/regressors/cascade.py, kernels/ert.py) against slow references and
on synthetic problems with known answers."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from kernels.ert import forest_sum, group_sums, shape_features, split_sums, stage_step
from tests import naive_ert
from tracker.classifier.model import DEFAULT_MODEL, ModelError, load_model, regressors_path, save_regressors
from tracker.config import CascadeConfig
from tracker.detection.box_refinement import BoxRefiner
from tracker.geometry.alignment import alignment_matrix, rotate, similarity_params, unrotate
from tracker.inference.landmarker import Landmarker
from tracker.regressors.cascade import ShapeCascade, TreeStage, quantised
from tracker.training.cascade import fit_stage, fit_tree


def synthetic_shape(points: int = 68) -> np.ndarray:
    """A face-like layout in the canonical frame: an outline and an inner grid."""
    outline = points // 2
    angle = np.linspace(0, 2 * np.pi, outline, endpoint=False)
    ring = np.stack([0.45 * np.cos(angle), 0.5 * np.sin(angle)], axis=1)
    inner = np.random.default_rng(0).uniform(-0.3, 0.3, (points - outline, 2))
    return np.concatenate([ring, inner])


def blob_image(points: np.ndarray, size: int) -> np.ndarray:
    """Dark blurred dots at ``points`` on a bright ground."""
    image = np.full((size, size), 200, np.float32)
    for x, y in points:
        cv2.circle(image, (int(round(x)), int(round(y))), 2, 40.0, -1)
    return cv2.GaussianBlur(image, (0, 0), 2.0)


def random_problem(rng, n_images=3, n_samples=40, points=12, size=48):
    images = rng.normal(0, 1, (n_images, size, size)).astype(np.float32)
    image_of = rng.integers(0, n_images, n_samples)
    shapes = rng.uniform(5, size - 5, (n_samples, points, 2)).astype(np.float32)
    mean = rng.uniform(5, size - 5, (points, 2))
    mean_c = np.ascontiguousarray(mean - mean.mean(0), np.float32)
    anchors = rng.integers(0, points, 30)
    offsets = rng.normal(0, 4, (30, 2)).astype(np.float32)
    return images, image_of, shapes, mean_c, anchors, offsets


def test_shape_features_match_reference():
    rng = np.random.default_rng(1)
    images, image_of, shapes, mean_c, anchors, offsets = random_problem(rng)
    out = shape_features(images, image_of, shapes, mean_c, anchors, offsets, np.zeros((len(shapes), 30), np.float32))
    ref = naive_ert.shape_features(images, image_of, shapes, mean_c, anchors, offsets)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_stage_step_matches_reference():
    rng = np.random.default_rng(11)
    images, image_of, shapes, mean_c, anchors, offsets = random_problem(rng)
    split_u, split_v = rng.integers(0, 30, (9, 7)), rng.integers(0, 30, (9, 7))
    split_t = rng.normal(0, 0.3, (9, 7)).astype(np.float32)
    leaves = rng.normal(0, 2, (9, 8, 24)).astype(np.float32)
    out = stage_step(images, image_of, shapes, mean_c, anchors, offsets, split_u, split_v, split_t, leaves, 1.0,
                     np.empty_like(shapes))
    ref = naive_ert.stage_step(images, image_of, shapes, mean_c, anchors, offsets, split_u, split_v, split_t, leaves)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3)
    assert np.abs(out - shapes).mean() > 0.5        # the stage moved the shapes
    again = shapes.copy()
    stage_step(images, image_of, again, mean_c, anchors, offsets, split_u, split_v, split_t, leaves, 1.0, again)
    np.testing.assert_array_equal(again, out)       # in place gives the same
    # int16 leaves with their scale: the reference on the same quantised values, and
    # within the rounding of the float leaves
    q, scale = quantised(leaves)
    assert q.dtype == np.int16 and np.abs(q.astype(np.float32) * scale - leaves).max() <= scale / 2 + 1e-6
    out_q = stage_step(images, image_of, shapes, mean_c, anchors, offsets, split_u, split_v, split_t, q, scale,
                       np.empty_like(shapes))
    ref_q = naive_ert.stage_step(images, image_of, shapes, mean_c, anchors, offsets, split_u, split_v, split_t, q,
                                 scale)
    np.testing.assert_allclose(out_q, ref_q, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out_q, out, atol=9 * scale * 4)      # 9 trees, half a step each, turned and scaled


def test_similarity_params_match_least_squares_and_recover_a_known_transform():
    rng = np.random.default_rng(2)
    mean_c = rng.normal(0, 10, (20, 2))
    mean_c -= mean_c.mean(0)
    a, b = 1.3 * np.cos(0.4), 1.3 * np.sin(0.4)
    shape = rotate(mean_c[None], np.array([a]), np.array([b]))[0] + [50, 60]
    got = similarity_params(mean_c, shape[None])
    assert np.allclose([got[0][0], got[1][0]], [a, b])
    noisy = shape + rng.normal(0, 1, shape.shape)
    ref = naive_ert.similarity(mean_c, noisy)
    got = similarity_params(mean_c, noisy[None])
    assert np.allclose([got[0][0], got[1][0]], ref)
    vec = rng.normal(size=(1, 5, 2))
    assert np.allclose(unrotate(rotate(vec, np.array([a]), np.array([b])), np.array([a]), np.array([b])), vec)


def test_split_sums_match_reference():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(200, 16)).astype(np.float32)
    residuals = rng.normal(size=(200, 6)).astype(np.float32)
    node = rng.integers(0, 4, 200)
    order = np.argsort(node, kind="stable")
    starts = np.searchsorted(node[order], np.arange(4))
    ends = np.searchsorted(node[order], np.arange(4), side="right")
    cand_node = np.repeat(np.arange(4), 5)
    u, v = rng.integers(0, 16, 20), rng.integers(0, 16, 20)
    t = rng.normal(0, 0.5, 20).astype(np.float32)
    sums, counts = split_sums(features, residuals, order, starts, ends, cand_node, u, v, t,
                              np.zeros((20, 6)), np.zeros(20, np.int64))
    members = [np.flatnonzero(node == n) for n in cand_node]
    ref_sums, ref_counts = naive_ert.split_sums(features, residuals, members, u, v, t)
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-5, atol=1e-5)
    assert (counts == ref_counts).all() and counts.sum() > 0


def test_forest_sum_and_group_sums_match_reference():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(50, 10)).astype(np.float32)
    split_u, split_v = rng.integers(0, 10, (7, 7)), rng.integers(0, 10, (7, 7))
    split_t = rng.normal(0, 0.3, (7, 7)).astype(np.float32)
    leaves = rng.normal(size=(7, 8, 4)).astype(np.float32)
    out = forest_sum(features, split_u, split_v, split_t, leaves, np.zeros((50, 4), np.float32))
    np.testing.assert_allclose(out, naive_ert.forest_sum(features, split_u, split_v, split_t, leaves), rtol=1e-5, atol=1e-5)
    group = rng.integers(0, 5, 50)
    sums, counts = group_sums(features, group, 6)
    assert counts[5] == 0 and counts.sum() == 50
    np.testing.assert_allclose(sums[2], features[group == 2].sum(0), rtol=1e-5, atol=1e-5)


def test_a_tree_finds_the_split_that_separates_the_residuals():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(400, 6)).astype(np.float32)
    sign = np.where(features[:, 2] - features[:, 4] > 0.1, 1.0, -1.0)
    residuals = np.stack([sign, -sign], axis=1).astype(np.float32)
    positions = rng.normal(size=(6, 2))
    u, v, t, leaves, leaf = fit_tree(features, residuals, 1, 200, positions, 1e6, 1.0, rng)
    assert {u[0], v[0]} == {2, 4}
    predicted = leaves[leaf]
    assert np.mean(np.sign(predicted[:, 0]) == sign) > 0.95


def test_one_stage_reduces_the_error_of_a_synthetic_perturbation():
    """Blobs at the true points; starts are the truth shifted by up to 4 px: one stage of
    trees, fitted on some images, brings the others' starts closer to their truth."""
    rng = np.random.default_rng(6)
    size, face = 64, 40
    mean_px = synthetic_shape(16) * face + (size - 1) / 2
    truths = mean_px[None] + rng.uniform(-4, 4, (300, 1, 2))
    truths = truths + rng.normal(0, 0.3, truths.shape)
    crops = np.stack([blob_image(t, size) for t in truths])
    crops = (crops - crops.mean()) / crops.std()
    starts = np.repeat(mean_px[None], len(truths), axis=0).astype(np.float32)
    image_of = np.arange(len(truths))
    cfg = CascadeConfig(trees=60, depth=3, shrinkage=0.2, feature_pool=200, face_size=face, crop_size=size)
    train, test = slice(0, 220), slice(220, 300)
    stage = fit_stage(crops[train], image_of[:220], starts[train], truths[train].astype(np.float32),
                      mean_px, cfg, rng)
    mean_c = np.ascontiguousarray(mean_px - mean_px.mean(0), np.float32)
    moved = stage.update(np.ascontiguousarray(crops[test]), np.arange(80), starts[test], mean_c)
    before = np.linalg.norm(starts[test] - truths[test], axis=-1).mean()
    after = np.linalg.norm(moved - truths[test], axis=-1).mean()
    assert after < 0.6 * before, (before, after)


def test_features_of_a_crop_and_its_shifted_copy_agree_up_to_the_shift():
    """Through the whole path (alignment, warp, standardising, features): an image moved
    by whole pixels, with its shape moved alike, reads the same pixel values."""
    rng = np.random.default_rng(7)
    image = cv2.GaussianBlur(rng.integers(0, 255, (200, 220)).astype(np.uint8), (0, 0), 1.5)
    shape = synthetic_shape() * 70 + [100, 95]
    cascade = ShapeCascade(synthetic_shape(), face_size=60, crop_size=96,
                           class_cluster=np.zeros(1, np.int64), cascades=[[]])
    dx, dy = 7, -5
    shifted = np.zeros_like(image)
    shifted[max(dy, 0):200 + min(dy, 0), max(dx, 0):220 + min(dx, 0)] = \
        image[max(-dy, 0):200 - max(dy, 0), max(-dx, 0):220 - max(dx, 0)]
    crops_a, m_a = cascade.face_crops(image, shape[None])
    crops_b, m_b = cascade.face_crops(shifted, (shape + [dx, dy])[None])
    anchors = rng.integers(0, 68, 100)
    offsets = rng.normal(0, 8, (100, 2)).astype(np.float32)
    stage = TreeStage(anchors, offsets, np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64),
                      np.zeros((1, 1), np.float32), np.zeros((1, 2, 136), np.float32))
    from tracker.geometry.crop import transform_points
    in_a = transform_points(shape[None], m_a)[0].astype(np.float32)
    in_b = transform_points((shape + [dx, dy])[None], m_b)[0].astype(np.float32)
    np.testing.assert_allclose(in_a, in_b, atol=1e-3)
    fa = stage.features(crops_a, np.zeros(1, np.int64), in_a[None], cascade.mean_centered)
    fb = stage.features(crops_b, np.zeros(1, np.int64), in_b[None], cascade.mean_centered)
    np.testing.assert_allclose(fa, fb, atol=1e-3)
    other = stage.features(crops_a, np.zeros(1, np.int64), (in_a + 3)[None], cascade.mean_centered)
    assert np.abs(other - fa).mean() > 0.05          # the check can fail: the features do move


def test_cascade_round_trips_and_moves_shapes_the_way_its_stages_say():
    rng = np.random.default_rng(8)
    mean = synthetic_shape()
    leaves = np.zeros((1, 2, 136), np.float32)
    leaves[0, :, 0::2] = 1.5                       # every point 1.5 mean-frame px right
    stage = TreeStage(np.zeros(4, np.int64), np.zeros((4, 2), np.float32), np.zeros((1, 1), np.int64),
                      np.ones((1, 1), np.int64), np.zeros((1, 1), np.float32), leaves)
    cascade = ShapeCascade(mean, 80, 128, np.zeros(3, np.int64), [[stage]])
    image = rng.integers(0, 255, (240, 240, 3)).astype(np.uint8)
    start = mean * 120 + [120, 118]               # 1.5x the crop's face size: 1 crop px = 1.5 image px
    out = cascade.apply(image, start[None], np.array([2]))
    np.testing.assert_allclose(out[0] - start, np.tile([2.25, 0.0], (68, 1)), atol=1e-3)
    back = ShapeCascade.from_dict(cascade.to_dict())
    np.testing.assert_allclose(back.apply(image, start[None], np.array([0])), out, atol=1e-2)
    assert np.allclose(ShapeCascade(mean, 80, 128, np.zeros(1, np.int64), [[]]).apply(image, start[None], [0]), start)
    matrix = alignment_matrix(start, cascade.mean_px)
    assert np.isclose(np.hypot(*matrix[:, 0]), 80 / 120)


class ShiftingCascade:
    """Stands in for a ShapeCascade: moves every landmark 3 px right, and counts its calls."""

    def __init__(self):
        self.calls = 0

    def apply(self, image, points, classes):
        self.calls += 1
        assert len(classes) == len(points)
        return np.asarray(points) + [3.0, 0.0]


@pytest.fixture(scope="module")
def frames():
    from clips import moving_face_frames
    frames, _ = moving_face_frames(12)
    return list(frames)


@pytest.mark.parametrize("temporal", [False, True])
def test_regressors_move_what_tracking_outputs_and_nothing_else(frames, temporal):
    """With or without the temporal stage, the regressors' step shows in every output (after
    the HMM and smoothing), while crops, classes and confidences stay the classifier's."""
    import tracker
    plain = tracker.Tracker(device="cpu", temporal=temporal, regressors="off", box_refinement=False, classify_every=1)
    with plain.track(frames) as stream:
        expected = [f for f in stream]
    refined = tracker.Tracker(plain.model, device="cpu", temporal=temporal, classify_every=1)
    refined.landmarker.cascade = fake = ShiftingCascade()
    refined.landmarker.box_refiner = None          # same crops as the plain run
    with refined.track(frames) as stream:
        got = [f for f in stream]
    assert fake.calls >= len(frames)
    assert [len(f.faces) for f in got] == [len(f.faces) for f in expected] and got[0].faces
    for a, b in zip(got, expected):
        for fa, fb in zip(a.faces, b.faces):
            np.testing.assert_allclose(fa.landmarks, fb.landmarks + [3.0, 0.0], atol=1e-6)
            np.testing.assert_allclose(fa.box, fb.box)
            assert fa.confidence == fb.confidence and fa.pose_class == fb.pose_class


def test_predict_applies_the_regressors_unless_refine_is_off(frames):
    import tracker
    t = tracker.Tracker(device="cpu")
    t.landmarker.cascade = ShiftingCascade()
    t.landmarker.box_refiner = None
    moved = t.predict(frames[0])
    t.landmarker.cascade = None
    plain = t.predict(frames[0])
    assert len(moved) == len(plain) == 1
    np.testing.assert_allclose(moved[0].landmarks, plain[0].landmarks + [3.0, 0.0], atol=1e-6)
    off = tracker.Tracker(t.model, device="cpu", regressors="off", box_refinement=False)
    assert off.landmarker.cascade is None and off.landmarker.box_refiner is None


def test_regressor_file_round_trips_beside_a_model(tmp_path):
    model_path = tmp_path / "m.pt"
    shutil.copy(DEFAULT_MODEL, model_path)
    cascade = ShapeCascade(synthetic_shape(), 80, 128, np.zeros(3, np.int64), [[]])
    save_regressors(model_path, cascade, BoxRefiner.identity(256))
    model = load_model(model_path)
    assert isinstance(model.cascade, ShapeCascade) and isinstance(model.box_refiner, BoxRefiner)
    regressors_path(model_path).write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="not a facetrack regressor file"):
        load_model(model_path)


def test_stills_regressors_are_their_own_file_read_only_when_asked_for(tmp_path):
    """predict's cascade (NAME.stills.regressors.pt) is read on first use, never by load_model,
    and a model without one falls back to the video cascade."""
    model_path = tmp_path / "m.pt"
    shutil.copy(DEFAULT_MODEL, model_path)
    video = ShapeCascade(synthetic_shape(), 80, 128, np.zeros(3, np.int64), [[]])
    stills = ShapeCascade(synthetic_shape(), 90, 144, np.zeros(3, np.int64), [[]])
    save_regressors(model_path, video, BoxRefiner.identity(256))
    assert Landmarker(load_model(model_path), regressors="stills").cascade.face_size == 80   # no stills file yet
    assert save_regressors(model_path, stills, role="stills") == tmp_path / "m.stills.regressors.pt"
    model = load_model(model_path)
    assert model._stills is None                                          # not read at load
    assert Landmarker(model).cascade.face_size == 80
    assert Landmarker(model, regressors="stills").cascade.face_size == 90
    assert Landmarker(model, regressors="off").cascade is None
    regressors_path(model_path, "stills").write_bytes(b"not a torch file")
    model = load_model(model_path)                                        # the video path never reads it
    assert Landmarker(model).cascade.face_size == 80
    with pytest.raises(ModelError, match="not a facetrack regressor file"):
        Landmarker(model, regressors="stills")
    with pytest.raises(ModelError, match="unknown regressors 'photo'"):
        Landmarker(model, regressors="photo")


def test_one_linear_stage_reduces_the_error_of_a_synthetic_perturbation():
    """The paper's linear stage (ridge on RootSIFT at the landmarks), same problem as above."""
    from tracker.training.cascade import fit_linear_stage
    rng = np.random.default_rng(9)
    size, face = 64, 40
    mean_px = synthetic_shape(16) * face + (size - 1) / 2
    truths = (mean_px[None] + rng.uniform(-4, 4, (300, 1, 2))).astype(np.float32)
    crops = np.stack([blob_image(t, size) for t in truths])
    crops = ((crops - crops.mean()) / crops.std()).astype(np.float32)
    starts = np.repeat(mean_px[None], len(truths), axis=0).astype(np.float32)
    cfg = CascadeConfig(kind="linear", face_size=face, crop_size=size, descriptor_size=4.0, ridge=10.0)
    stage = fit_linear_stage(crops[:220], np.arange(220), starts[:220], truths[:220], mean_px, cfg)
    mean_c = np.ascontiguousarray(mean_px - mean_px.mean(0), np.float32)
    moved = stage.update(crops[220:], np.arange(80), starts[220:], mean_c)
    before = np.linalg.norm(starts[220:] - truths[220:], axis=-1).mean()
    after = np.linalg.norm(moved - truths[220:], axis=-1).mean()
    assert after < 0.6 * before, (before, after)
    back = ShapeCascade.from_dict(ShapeCascade(synthetic_shape(16), face, size, np.zeros(1, np.int64),
                                               [[stage]]).to_dict()).cascades[0][0]
    np.testing.assert_allclose(back.update(crops[220:], np.arange(80), starts[220:], mean_c), moved, atol=0.05)


def test_sample_clusters_are_the_clusters_of_the_membership_sets():
    """Eq. 6's sets (the classes within tau, else the nearest class) mapped to their clusters."""
    from tracker.distribution.poses import rms_distance
    from tracker.training.cascade import sample_clusters
    rng = np.random.default_rng(2)
    templates = rng.normal(0, 0.1, (40, 68, 2)).astype(np.float32)
    class_cluster = rng.integers(0, 4, 40)
    truths = np.concatenate([templates[:12] + rng.normal(0, 0.005, (12, 68, 2)), rng.normal(0, 0.3, (3, 68, 2))])
    tau = float(np.median(rms_distance(templates[:, None], templates[None])))
    got = sample_clusters(truths, templates, class_cluster, tau)
    for truth, clusters in zip(truths, got):
        d = rms_distance(templates, truth)
        want = np.unique(class_cluster[d <= tau]) if (d <= tau).any() else class_cluster[[np.argmin(d)]]
        np.testing.assert_array_equal(clusters, want)
    assert sum((rms_distance(templates, t) > tau).all() for t in truths) >= 1       # some beyond tau
    assert all(len(c) == 1 and c[0] == 0 for c in sample_clusters(truths, templates, np.zeros(40, np.int64), tau))


def test_a_regressor_file_under_its_old_name_is_still_read(tmp_path):
    """NAME.refine.pt (the name before issue 27) is read where NAME.regressors.pt is absent;
    a new save writes NAME.regressors.pt, which is read from then on."""
    model_path = tmp_path / "m.pt"
    shutil.copy(DEFAULT_MODEL, model_path)
    written = save_regressors(model_path, ShapeCascade(synthetic_shape(), 80, 128, np.zeros(3, np.int64), [[]]))
    assert written.name == "m.regressors.pt"
    written.rename(tmp_path / "m.refine.pt")
    assert regressors_path(model_path).name == "m.refine.pt"
    assert load_model(model_path).cascade.face_size == 80
    save_regressors(model_path, ShapeCascade(synthetic_shape(), 90, 144, np.zeros(3, np.int64), [[]]))
    assert regressors_path(model_path).name == "m.regressors.pt"
    assert load_model(model_path).cascade.face_size == 90
