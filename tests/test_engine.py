"""The scan scheduler's choice of when the detector runs for faces in doubt (no model needed)."""
from types import SimpleNamespace

import numpy as np
import pytest

from tracker.config import TrackingConfig
from tracker.inference.scans import Scans, share_outside
from tracker.inference.tracks import Track
from tracker.io.sources import Frame

FRAME = Frame(1, 0.0, np.zeros((360, 640, 3), np.uint8))


def test_share_outside_the_frame():
    assert share_outside([100, 100, 200, 200], FRAME.image.shape) == 0.0
    assert share_outside([-50, 100, 50, 200], FRAME.image.shape) == pytest.approx(0.5)
    assert share_outside([590, 310, 690, 410], FRAME.image.shape) == pytest.approx(0.75)
    assert share_outside([700, 0, 800, 100], FRAME.image.shape) == pytest.approx(1.0)


def held_only(boxes_and_lows, every=4, cut=False):
    scans = Scans(None, TrackingConfig(held_scan_every=every))
    uncertain = [(Track(i, np.array(b, float), np.zeros(4), 0, low=low), SimpleNamespace(box=np.array(b, float)))
                 for i, (b, low) in enumerate(boxes_and_lows)]
    frame = Frame(1, 0.0, FRAME.image, cut=cut)
    return scans.held_only(frame, uncertain, tracking=True)


def test_the_detector_looks_for_a_face_in_doubt_inside_the_frame_every_nth_frame_of_holding():
    inside = [100, 100, 200, 200]
    assert not held_only([(inside, 0)])            # the frame its confidence fell: look
    assert held_only([(inside, 1)]) and held_only([(inside, 3)])
    assert not held_only([(inside, 4)])            # due
    assert not held_only([(inside, 1)], every=1)   # every frame
    assert not held_only([(inside, 1)], cut=True)


def test_a_face_leaving_the_frame_is_not_looked_for():
    leaving = [-50, 100, 50, 200]                  # half outside
    assert held_only([(leaving, 0)]) and held_only([(leaving, 4)])
    assert held_only([(leaving, 4)], every=1)
    assert not held_only([(leaving, 4), ([100, 100, 200, 200], 4)])   # another face in doubt is due
    assert not held_only([(leaving, 0)], cut=True)


def test_scans_with_no_face_followed_upsample_every_nth_frame_or_while_faces_are_small():
    scans = Scans(None, TrackingConfig())
    assert scans.upsample_due(1)
    frame = Frame(10, 0.0, FRAME.image)
    scans._mark_scanned(frame, 10, upsampled=True, boxes=[np.array([100, 100, 200, 200])])   # a large face
    assert [scans.upsample_due(s) for s in range(11, 15)] == [False, False, False, True]
    scans._mark_scanned(frame, 20, upsampled=True, boxes=[np.array([100, 100, 130, 130])])   # 30 px of 640
    assert all(scans.upsample_due(s) for s in range(21, 24))       # the small face keeps them on
    scans._mark_scanned(frame, 21, upsampled=False)                  # a cheaper scan changes nothing
    assert scans.upsample_due(22)
    scans._mark_scanned(frame, 23, upsampled=True, boxes=[])        # the small face gone
    assert scans.upsample_due(24) and not scans.upsample_due(25)
