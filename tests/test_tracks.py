"""The registry of live and lost tracks (tracker/inference/tracks.py): ids by place, duplicates,
forgetting, and each track's box and velocity (no model needed)."""
from types import SimpleNamespace

import numpy as np
import pytest

from tracker.inference.tracks import IDENTITY_MEMORY, Track, Tracks, found_again, untracked
from tracker.results import FaceResult


def box(x, y=100.0, side=100.0) -> np.ndarray:
    return np.array([x, y, x + side, y + side], float)


def track(face_id, x, frame=0, **fields) -> Track:
    return Track(face_id, box(x), np.zeros(4), frame, **fields)


def face(face_id, x, y=100.0, side=100.0) -> FaceResult:
    """A face whose landmarks' square box is ``box(x, y, side)``."""
    corners = np.array([[x, y], [x + side, y + side]], float)
    landmarks = np.concatenate([corners, np.repeat(corners.mean(0, keepdims=True), 66, 0)])
    return FaceResult(face_id, landmarks, 0.9, box(x, y, side), np.zeros(1, int), np.ones(1))


def test_a_face_found_where_one_was_lost_gets_its_id_back():
    tracks = Tracks()
    first = tracks.id_for(box(100))
    assert first == 0 and tracks.id_for(box(400)) == 1
    tracks.start(track(first, 100), follow=True)
    tracks.lose(tracks.live[0])
    assert tracks.id_for(box(105)) == first                 # at its place: the same id
    assert tracks.lost == []                                # given once
    assert tracks.id_for(box(108)) == 2                     # not twice


def test_a_face_elsewhere_gets_a_new_id():
    tracks = Tracks()
    tracks.start(track(tracks.id_for(box(100)), 100), follow=False)   # unconvincing: its id waits among the lost
    assert tracks.live == [] and len(tracks.lost) == 1
    assert tracks.id_for(box(300)) == 1 and len(tracks.lost) == 1


def test_no_id_is_given_by_place_across_a_cut():
    tracks = Tracks()
    tracks.start(track(tracks.id_for(box(100)), 100), follow=True)
    tracks.end_shot()
    assert tracks.live == [] and tracks.shot == 1 and [t.face_id for t in tracks.lost] == [0]
    assert tracks.id_for(box(100)) == 1                     # same place, new shot: a new id


def test_of_two_tracks_on_one_face_the_older_id_stays():
    tracks = Tracks()
    for face_id, x in ((0, 100), (1, 110), (2, 400)):
        tracks.start(track(face_id, x), follow=True)
    kept = tracks.drop_duplicates([face(1, 110), face(2, 400), face(0, 100)])
    assert [f.face_id for f in kept] == [0, 2]
    assert [t.face_id for t in tracks.live] == [0, 2] and tracks.lost == []


def test_faces_overlapping_a_little_are_both_kept():
    tracks = Tracks()
    kept = tracks.drop_duplicates([face(0, 100), face(1, 160)])     # IoU 0.25
    assert [f.face_id for f in kept] == [0, 1]


@pytest.mark.parametrize("descriptor, memory", [(None, 1), (np.zeros(128), IDENTITY_MEMORY)])
def test_a_lost_face_is_forgotten_after_forget_after_frames(descriptor, memory):
    tracks = Tracks()
    tracks.lost.append(track(0, 100, frame=10, descriptor=descriptor))
    tracks.forget(10 + 30 * memory, forget_after=30)
    assert len(tracks.lost) == 1
    tracks.forget(11 + 30 * memory, forget_after=30)
    assert tracks.lost == []


def test_a_recognised_face_leaves_the_lost():
    tracks = Tracks()
    a, b = track(0, 100), track(1, 300)
    tracks.lost += [a, b]
    tracks.recall(a)
    assert tracks.lost == [b]


def test_the_velocity_follows_the_centre_and_predicts_the_next_boxes():
    t = track(0, 100)
    t.move(np.array([110.0, 100.0, 210.0, 200.0]), frame=1)
    np.testing.assert_array_equal(t.velocity, [10, 0, 10, 0])       # the first step sets it
    t.move(np.array([116.0, 96.0, 220.0, 200.0]), frame=2)           # grew by 4: only the centre moves it
    np.testing.assert_array_equal(t.velocity, 0.5 * np.array([10, 0, 10, 0]) + 0.5 * np.array([8, -2, 8, -2]))
    assert t.followed == 2 and t.last_frame == 2
    tracks = Tracks()
    tracks.start(t, follow=True)
    assert tracks.steady(0.5)
    predicted = tracks.predicted_boxes(3)
    assert predicted.shape == (3, 1, 4)
    np.testing.assert_allclose(predicted[:, 0], [t.box + k * t.velocity for k in (1, 2, 3)])


def test_tracks_are_steady_after_two_followed_frames_of_every_track_all_sure_enough():
    tracks = Tracks()
    assert not tracks.steady(0.5)
    a, b = track(0, 100, followed=2), track(1, 300, followed=1)
    tracks.start(a, follow=True)
    tracks.start(b, follow=True)
    assert not tracks.steady(0.5)
    b.move(box(302), frame=3)
    assert tracks.steady(0.5)
    b.face = SimpleNamespace(confidence=0.4)     # about to be lost: frames go one at a time
    assert not tracks.steady(0.5) and tracks.steady(0.3)


def test_a_held_face_stays_in_its_box():
    t = track(0, 100)
    t.move(box(110), frame=1)
    t.hold([111, 100, 211, 200], frame=2)
    np.testing.assert_array_equal(t.box, [111, 100, 211, 200])
    assert not t.velocity.any() and t.last_frame == 2


def test_detections_on_tracked_faces_and_faces_in_doubt():
    tracked = [face(0, 100)]
    assert [b[0] for b in untracked([box(105), box(400)], tracked)] == [400]
    doubt = [(track(3, 400), face(3, 400)), (track(4, 700), face(4, 700))]
    assert found_again([box(100), box(410)], doubt) == {3: 1}
    # one detection on two faces in doubt goes to the first
    assert found_again([box(400)], [(track(3, 400), face(3, 400)), (track(5, 405), face(5, 405))]) == {3: 0}
