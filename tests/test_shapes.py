import numpy as np
import pytest

from tracker.geometry import alignment, boxes, shapes


def test_mirror_is_an_involution_and_pairs_eye_corners():
    assert sorted(shapes.MIRROR) == list(range(68))
    assert (shapes.MIRROR[shapes.MIRROR] == np.arange(68)).all()
    assert shapes.MIRROR[36] == 45 and shapes.MIRROR[30] == 30 and shapes.MIRROR[0] == 16
    assert shapes.MIRROR[48] == 54 and shapes.MIRROR[62] == 62 and shapes.MIRROR[66] == 66


def test_groups_cover_every_point_once():
    covered = sorted(i for g in shapes.GROUPS.values() for i in g)
    assert covered == list(range(68))


def test_flip_twice_is_identity_and_keeps_left_right(face):
    flipped = shapes.flip_horizontal(face, 640)
    np.testing.assert_allclose(shapes.flip_horizontal(flipped, 640), face)
    # The right eye's outer corner (36) is left of the left eye's (45) in both images.
    assert face[36, 0] < face[45, 0]
    assert flipped[36, 0] < flipped[45, 0]
    assert flipped[30, 0] == pytest.approx(639 - face[30, 0])


def test_normalisers_on_a_hand_made_face():
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(0, 60, 68)
    pts[:, 1] = np.linspace(0, 80, 68)
    assert shapes.box_diagonal(pts) == pytest.approx(100.0)
    pts[36] = (10, 40)
    pts[45] = (50, 40)
    assert shapes.interocular(pts) == pytest.approx(40.0)


def test_canonical_round_trip(face):
    box = boxes.landmark_box(face)
    canon = shapes.to_canonical(face, box)
    assert canon.min() >= -0.5 - 1e-9 and canon.max() <= 0.5 + 1e-9
    np.testing.assert_allclose(shapes.from_canonical(canon, box), face, atol=1e-9)


def test_square_box_keeps_centre_and_long_side():
    np.testing.assert_allclose(boxes.square_box(np.array([0, 0, 10, 4])), [0, -3, 10, 7])


def test_similarity_align_recovers_rotation_scale_shift(face):
    a = np.deg2rad(20)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = 1.7 * face @ rot.T + np.array([5.0, -3.0])
    np.testing.assert_allclose(alignment.similarity_align(face, moved), moved, atol=1e-8)
