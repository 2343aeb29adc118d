"""The detector's schedule (tracker/inference/scans.py): when a scan is due, the newcomer scan
on its worker thread, quiet frames skipped, the region around faces in doubt, and the
identity check at cuts. A fake detector stands in for dlib (no model needed)."""
from types import SimpleNamespace

import numpy as np
import pytest

from tracker.config import TrackingConfig
from tracker.detection.identity import SAME_PERSON
from tracker.inference.cuts import frame_summary
from tracker.inference.scans import LARGE_FACE, QUIET_SKIPS, SCAN_DELAY, CutIdentities, Scans, around
from tracker.inference.tracks import Track
from tracker.io.sources import Frame
from tracker.timing import StageTimes

H, W = 360, 640


class FakeDetector:
    """Landmarker.face_boxes with fixed boxes; remembers each call."""

    def __init__(self, boxes=((300, 100, 400, 200),)):
        self.boxes = np.array(boxes, float).reshape(-1, 4)
        self.calls = []

    def face_boxes(self, image, upsample=None, fallback=False, scale=1.0):
        self.calls.append(SimpleNamespace(shape=image.shape[:2], upsample=upsample, fallback=fallback, scale=scale))
        return self.boxes.copy()


def frame(index=1, brightness=0, cut=False, name="", patch=None) -> Frame:
    """A grey frame with its cut summary; ``patch`` (x0, y0, x1, y1) painted white."""
    image = np.full((H, W, 3), 100 + brightness, np.uint8)
    if patch is not None:
        x0, y0, x1, y1 = patch
        image[y0:y1, x0:x1] = 255
    return Frame(index, 0.0, image, name=name, cut=cut, cells=frame_summary(image))


def doubt(x, side=60.0):
    b = np.array([x, 100, x + side, 100 + side], float)
    return Track(0, b, np.zeros(4), 0), SimpleNamespace(box=b)


@pytest.fixture
def scans():
    s = Scans(FakeDetector(), TrackingConfig(redetect_every=10, scan_upsample=0, scan_scale=1.3), StageTimes())
    yield s
    s.close()


def test_the_periodic_scan_is_due_every_redetect_every_frames(scans):
    assert scans.due(1)                                   # never scanned
    scans.detect(frame(), (), seen=5)                     # a whole-frame scan
    assert not scans.due(14) and scans.due(15)
    assert scans.frames_to_next(5) == 10 and scans.frames_to_next(12) == 3 and scans.frames_to_next(20) == 1
    assert not Scans(FakeDetector(), TrackingConfig(redetect_every=0)).due(10 ** 6)    # 0: never


def test_a_newcomer_scan_runs_on_the_worker_and_its_boxes_come_a_fixed_delay_later(scans):
    delay = min(SCAN_DELAY, 10 // 2)
    assert scans.newcomers(frame(), seen=3, track_boxes=[]) is None        # due: started
    assert scans.frames_to_next(3) == delay
    for seen in range(4, 3 + delay):
        assert scans.newcomers(frame(seen), seen, []) is None
    boxes = scans.newcomers(frame(3 + delay), 3 + delay, [])
    np.testing.assert_array_equal(boxes, [[300, 100, 400, 200]])
    call, = scans.landmarker.calls                        # one scan, at the cheaper setting
    assert (call.upsample, call.scale, call.fallback) == (0, 1.3, False)
    assert scans.times.counts["detect"] == 1 and scans.times.counts["detect_wait"] == 1
    assert not scans.due(3 + 9) and scans.due(3 + 10)    # counted from the frame it started on


def test_a_dropped_newcomer_scan_gives_nothing(scans):
    scans.newcomers(frame(), seen=3, track_boxes=[])
    scans.drop_pending()
    assert all(scans.newcomers(frame(s), s, []) is None for s in range(4, 12))


def test_quiet_frames_skip_at_most_quiet_skips_scans_in_a_row(scans):
    face = [250, 100, 350, 200]
    scans.detect(frame(), (), seen=0)                     # the scan the quiet frames are compared with
    started = []
    for k in range(1, QUIET_SKIPS + 2):
        seen = 10 * k
        # the face moves (a change inside its box), nothing else does
        scans.newcomers(frame(seen, patch=(260 + k, 120, 340, 190)), seen, [face])
        started.append(scans.in_progress)
        scans.drop_pending()
    assert started == [False] * QUIET_SKIPS + [True]
    assert len(scans.landmarker.calls) == 2               # the first whole-frame scan, then the forced one


def test_a_change_outside_the_faces_is_scanned(scans):
    scans.detect(frame(), (), seen=0)
    scans.newcomers(frame(10, patch=(0, 0, 160, 120)), 10, [[250, 100, 350, 200]])     # someone came in
    assert scans.in_progress


def test_the_region_around_faces_in_doubt_or_none_when_too_big():
    assert around((H, W), [[300, 100, 360, 160]]) == (240, 40, 420, 220)      # grown by a side each way
    assert around((H, W), [[10, 10, 70, 70]]) == (0, 0, 130, 130)            # clipped to the frame
    assert around((H, W), [[300, 100, 360, 160], [400, 100, 460, 160]]) == (240, 40, 520, 220)
    assert around((H, W), [[200, 50, 400, 250]]) is None                      # over half the frame
    assert around((H, W), [[-60, 10, -50, 20]]) is None                        # nothing left in the frame


def test_a_face_in_doubt_is_looked_for_around_it(scans):
    small, large = doubt(300), doubt(200, side=LARGE_FACE)
    boxes = scans.detect(frame(), [small], seen=7)
    x0, y0 = 240, 40
    np.testing.assert_array_equal(boxes, [[300 + x0, 100 + y0, 400 + x0, 200 + y0]])   # back in frame pixels
    call = scans.landmarker.calls[-1]
    assert call.shape == (220 - 40, 420 - 240) and call.upsample is None
    assert scans.due(7)                                   # a region is no periodic scan
    scans.detect(frame(), [large], seen=8)
    assert scans.landmarker.calls[-1].upsample == 0       # large: no upsampling
    scans.detect(frame(cut=True, name="a.jpg"), [small], seen=9)
    assert scans.landmarker.calls[-1].shape == (H, W) and scans.landmarker.calls[-1].fallback
    assert not scans.due(9)


class FakeIdentity:
    """Descriptors: the mean x of the landmarks over 1000 (so faces far apart are different people)."""

    def descriptor(self, image, landmarks):
        return np.array([np.mean(landmarks[:, 0]) / 1000.0])


def estimate(x, y=100):
    corners = np.array([[x, y], [x + 100, y + 100]], float)
    return SimpleNamespace(landmarks=np.concatenate([corners, np.repeat(corners.mean(0, keepdims=True), 66, 0)]))


def test_faces_at_a_cut_get_the_ids_of_the_same_people_from_earlier_shots():
    identities = CutIdentities(FakeIdentity(), StageTimes())
    people = [Track(7, np.array([100, 100, 200, 200.0]), np.zeros(4), 0, landmarks=estimate(100).landmarks),
              Track(8, np.array([3000, 100, 3100, 200.0]), np.zeros(4), 0, landmarks=estimate(3000).landmarks)]
    identities.describe(people, np.zeros((H, W, 3), np.uint8))
    assert all(t.descriptor is not None for t in people)
    # face 0 is person 7 moved a little; face 1 is nobody seen (over SAME_PERSON from both)
    far = 100 + 1000 * SAME_PERSON + 10
    matched, descriptors = identities.match(np.zeros((H, W, 3), np.uint8), [estimate(140), estimate(far)], people)
    assert {i: t.face_id for i, t in matched.items()} == {0: 7} and set(descriptors) == {0, 1}
    # two faces like one person: the one at its place gets the id, though the other is nearer
    matched, _ = identities.match(None, [estimate(100, y=300), estimate(150)], people[:1])
    assert {i: t.face_id for i, t in matched.items()} == {1: 7}
    matched, _ = identities.match(None, [estimate(100, y=300), estimate(400)], people[:1])
    assert {i: t.face_id for i, t in matched.items()} == {0: 7}     # neither there: the nearest
    assert identities.times.counts["identity"] == 4


def test_with_nothing_followed_the_whole_frame_is_scanned_every_empty_scan_every_frames():
    s = Scans(FakeDetector(), TrackingConfig(empty_scan_every=3))
    assert not s.idle(frame(), (), tracking=False, seen=1)          # never scanned: look
    s.detect(frame(), (), seen=1)
    assert s.idle(frame(), (), tracking=False, seen=2) and s.idle(frame(), (), tracking=False, seen=3)
    assert not s.idle(frame(), (), tracking=False, seen=4)          # three frames on
    assert not s.idle(frame(cut=True), (), tracking=False, seen=2)  # a cut always looks
    assert not s.idle(frame(), [doubt(100)], tracking=False, seen=2)  # so does a face in doubt
    assert not s.idle(frame(), (), tracking=True, seen=2)           # while following: the periodic scan decides
    assert not Scans(FakeDetector(), TrackingConfig()).idle(frame(), (), tracking=False, seen=2)   # default 1


def test_the_engine_skips_the_detector_on_idle_frames():
    """Frames with no face: the detector runs on frames 1, 4, 7 at empty_scan_every 3."""
    from tracker.inference.engine import Engine
    detector = FakeDetector(boxes=np.zeros((0, 4)))
    landmarker = SimpleNamespace(face_boxes=detector.face_boxes, passes=1)
    engine = Engine(landmarker, TrackingConfig(empty_scan_every=3))
    try:
        results = [engine.process([frame(i)])[0] for i in range(1, 9)]
    finally:
        engine.close()
    assert len(detector.calls) == 3 and all(not r.faces for r in results)


def test_a_face_that_comes_in_is_found_within_ten_frames():
    """While one face is followed, a second of 60 px that appears on frame 19 is in the
    results within 10 frames (the periodic scan every redetect_every = 4 frames, its result
    used 2 frames later; every 16 frames it took 16), and stays."""
    from clips import background, paste_face, sample_face

    from tracker.api import Tracker
    face, points = sample_face(1.0)
    frames = []
    for i in range(40):
        frame = background(640, 480, seed=3)
        paste_face(frame, face, points, side=150, centre=(170 + i, 240))
        if i >= 18:
            paste_face(frame, face, points, side=60, centre=(500, 200))
        frames.append(frame)
    with Tracker(device="cpu").track(frames) as stream:
        right = [any(f.landmarks[:, 0].mean() > 400 for f in r.faces) for r in stream]
    assert not any(right[:18])
    first = right.index(True)
    assert first <= 18 + 10 and all(right[first:])


def test_with_more_faces_than_max_faces_the_largest_are_followed():
    from tracker.inference.tracks import largest_first
    boxes = [np.array([0, 0, 50, 50]), np.array([100, 0, 250, 150]), np.array([300, 0, 400, 100])]
    assert largest_first(boxes, 3) == boxes                                     # room for all: as found
    assert [b[2] - b[0] for b in largest_first(boxes, 2)] == [150, 100]
    assert largest_first(boxes, 0) == []
