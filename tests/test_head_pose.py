"""Head pose of shapes, pose classes and class distributions (tracker.distribution.head_pose)."""
from __future__ import annotations

import numpy as np
import pytest

from tracker.classifier.model import load_model
from tracker.distribution import head_pose as hp
from tracker.geometry.shapes import MIRROR, NOSE_TIP
from tracker.inference.landmarker import mirror_canonical


def mirrored(shapes: np.ndarray) -> np.ndarray:
    return mirror_canonical(np.asarray(shapes, dtype=np.float64))


@pytest.fixture(scope="module")
def model_poses():
    model = load_model()
    return model.templates, hp.class_poses(model.templates)


def test_face3d_asset_is_a_symmetric_face_with_the_nose_in_front():
    X = hp.load_face3d()
    assert X.shape == (68, 3)
    assert np.allclose(X[MIRROR] * [-1, 1, 1], X, atol=0.01)       # left-right symmetric
    assert 80 < np.linalg.norm(X[45] - X[36]) < 100                  # mm between the outer eye corners
    eyes = X[[36, 39, 42, 45], 2].mean()
    assert X[NOSE_TIP, 2] < eyes - 15                                # nose tip toward the camera (-z)
    assert X[[0, 16], 2].mean() > eyes + 10                          # jaw at the ears behind the eyes
    assert X[8, 1] > X[[36, 45], 1].mean() > X[[19, 24], 1].mean()   # chin below eyes below brows


def test_rotation_matrix_convention():
    nose = np.array([0.0, 0.0, -1.0])                                # rest pose: nose toward the camera
    assert (hp.rotation_matrix(30, 0, 0) @ nose)[0] < 0              # +yaw: nose to the image left
    assert (hp.rotation_matrix(0, 30, 0) @ nose)[1] > 0              # +pitch: nose down
    assert (hp.rotation_matrix(0, 0, 30) @ [1.0, 0, 0])[1] > 0       # +roll: +x turns toward +y
    R = hp.rotation_matrix(20, -10, 5)
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
    assert np.allclose(R, hp.rotation_matrix(0, -10, 0) @ hp.rotation_matrix(20, 0, 0) @ hp.rotation_matrix(0, 0, 5))
    angles = np.array([[35.0, -20.0, 12.0], [-60.0, 15.0, -25.0]])
    assert np.allclose(hp.angles_of_rotation(hp.rotation_matrix(*angles.T)), angles)


@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (2.5, 300.0), (0.004, 0.1)])   # mm, pixels, canonical
def test_known_rotations_are_recovered(scale, offset):
    X = hp.load_face3d()
    rng = np.random.default_rng(1)
    truth = rng.uniform([-70, -40, -45], [70, 40, 45], size=(60, 3))
    shapes = np.stack([hp.project(X, *a) for a in truth]) * scale + offset
    shapes += rng.normal(0, 0.3 * scale, shapes.shape)               # a little annotation noise
    assert np.abs(hp.pose_of_shapes(shapes) - truth).max() < 2.0
    one = hp.pose_of_shapes(shapes[0])
    assert one.shape == (3,) and np.abs(one - truth[0]).max() < 2.0


def test_pnp_method_agrees_when_far_away():
    X = hp.load_face3d()
    truth = np.array([[20.0, -10.0, 5.0], [-15.0, 10.0, -8.0]])
    shapes = np.stack([hp.project(X, *a) for a in truth]) * 2.0 + 200
    assert np.abs(hp.pose_of_shapes(shapes, method="pnp", focal=1000.0) - truth).max() < 1.0
    with pytest.raises(ValueError):
        hp.pose_of_shapes(shapes, method="nope")


def test_mirrored_shape_gives_opposite_yaw_and_roll_same_pitch():
    X = hp.load_face3d()
    shape = hp.project(X, 32, 14, -9) * 0.004
    pose, flipped = hp.pose_of_shapes(np.stack([shape, mirrored(shape)]))
    assert np.allclose(flipped, pose * [-1, 1, -1], atol=0.5)
    assert abs(pose[0] - 32) < 1 and abs(pose[1] - 14) < 1 and abs(pose[2] + 9) < 1


def test_nose_shifted_to_the_image_left_gives_positive_yaw():
    X = hp.load_face3d()
    frontal = hp.project(X, 0, 0, 0)
    assert np.abs(hp.pose_of_shapes(frontal)).max() < 0.5
    left = frontal.copy()
    left[27:36, 0] -= 12.0                                           # the nose moves left (mm)
    assert hp.pose_of_shapes(left)[0] > 4
    right = frontal.copy()
    right[27:36, 0] += 12.0
    assert hp.pose_of_shapes(right)[0] < -4
    down = frontal.copy()
    down[27:36, 1] += 12.0                                           # the nose moves down: looking down
    assert hp.pose_of_shapes(down)[1] > 4
    # a face turned by +30 degrees really has its nose left of the eyes' midpoint
    turned = hp.project(X, 30, 0, 0)
    assert turned[NOSE_TIP, 0] < turned[[36, 45], 0].mean() - 10


def test_pose_moments_two_classes():
    poses = np.array([[10.0, 0.0, -4.0], [40.0, 6.0, 4.0], [-20.0, 1.0, 0.0]])
    mean, std = hp.pose_moments(np.array([0, 1]), np.array([0.75, 0.25]), poses)
    assert mean.shape == std.shape == (3,)
    assert np.allclose(mean, [17.5, 1.5, -2.0])
    # two values a apart with weights w, 1 - w: std = a sqrt(w (1 - w))
    assert np.allclose(std, np.array([30.0, 6.0, 8.0]) * np.sqrt(0.75 * 0.25))
    classes = np.array([[0, 1], [2, 2], [1, 0]])
    probs = np.array([[0.75, 0.25], [0.3, 0.7], [1.5, 4.5]])         # the last one renormalised
    mean, std = hp.pose_moments(classes, probs, poses)
    assert mean.shape == std.shape == (3, 3)
    assert np.allclose(mean[0], [17.5, 1.5, -2.0])
    assert np.allclose(mean[1], poses[2]) and np.allclose(std[1], 0)
    assert np.allclose(mean[2], 0.25 * poses[1] + 0.75 * poses[0])
    with pytest.raises(ValueError):
        hp.pose_moments(classes, probs[:, :1], poses)


def test_class_poses_of_the_packaged_model(model_poses):
    templates, poses = model_poses
    assert poses.shape == (len(templates), 3) and np.isfinite(poses).all()
    assert hp.class_poses(templates) is poses                        # cached
    yaw, pitch, roll = poses.T
    assert (yaw > 30).mean() > 0.02 and (yaw < -30).mean() > 0.02    # turned classes both ways
    assert abs(np.median(yaw)) < 3 and abs(np.median(roll)) < 3
    assert np.abs(pitch).max() < 80 and np.abs(roll).max() < 80
    # the most left-right symmetric templates are frontal
    asym = np.sqrt(((templates - mirrored(templates)) ** 2).sum(-1).mean(-1))
    frontal = np.argsort(asym)[:20]
    assert np.abs(yaw[frontal]).mean() < 4 and np.abs(yaw[frontal]).max() < 10
    assert np.abs(roll[frontal]).max() < 5
    # mirror consistency: a mirrored template's pose is the template's with yaw and roll negated
    pick = np.random.default_rng(0).choice(len(templates), 300, replace=False)
    flipped = hp.pose_of_shapes(mirrored(templates[pick]))
    assert np.abs(flipped - poses[pick] * [-1, 1, -1]).max() < 0.1
    # and the set of classes is itself about symmetric in yaw
    assert abs(np.percentile(yaw, 95) + np.percentile(yaw, 5)) < 3


def test_class_poses_of_other_models_are_fitted_in_chunks_and_kept_in_the_user_cache(monkeypatch, tmp_path, face):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rng = np.random.default_rng(5)
    templates = (face - face.mean(0)) / np.ptp(face, axis=0).max()
    templates = (templates[None] + rng.normal(0, 0.01, (50, 68, 2))).astype(np.float32)
    whole = hp.pose_of_shapes(templates).astype(np.float32)
    monkeypatch.setattr(hp, "POSE_CHUNK", 16)                   # 4 chunks
    monkeypatch.setattr(hp, "_CLASS_POSES", {})
    poses = hp.class_poses(templates)
    np.testing.assert_allclose(poses, whole, atol=1e-4)
    cached = list((tmp_path / "facetrack" / "class_poses").glob("*.npy"))
    assert len(cached) == 1 and not list(cached[0].parent.glob("*.part*"))
    monkeypatch.setattr(hp, "_CLASS_POSES", {})
    monkeypatch.setattr(hp, "pose_of_shapes", lambda *a, **k: pytest.fail("fitted again instead of read"))
    np.testing.assert_array_equal(hp.class_poses(templates), poses)
