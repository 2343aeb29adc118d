"""The simulated annotator (Table 3) and clicks carried through the HMM."""
import dataclasses
import shutil

import numpy as np
import pytest
from clips import write_clip
from conftest import REPO

from tracker.api import Tracker
from tracker.distribution.clicks import Click
from tracker.evaluation.metrics import point_errors
from tracker.evaluation.simulate import (
    Case,
    carried_through_hmm,
    format_table,
    matched_face,
    simulate,
    strategy_landmarks,
    track_raw,
)
from tracker.io.annotations import read_pts
from tracker.io.sources import VideoSource
from tracker.results import FrameResult

pytestmark = pytest.mark.slow        # every test here takes seconds

FRAMES = 16
SAMPLE = REPO / "tracker" / "assets" / "sample"


@pytest.fixture(scope="module")
def tracker():
    return Tracker(temporal=True, threads=1, classify_every=1)      # as facetrack annotate


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """The bundled sample's first frames as a 300VW-style folder (lossless video)."""
    folder = tmp_path_factory.mktemp("seq")
    source = VideoSource(SAMPLE / "vid.mp4")
    frames = [f.image for _, f in zip(range(FRAMES), source)]
    source.close()
    write_clip(folder / "vid.mkv", frames)
    (folder / "annot").mkdir()
    for i in range(1, FRAMES + 1):
        shutil.copy(SAMPLE / "annot" / f"{i:06d}.pts", folder / "annot")
    return folder


def test_best_single_click_is_no_worse_than_any_single_click_and_clicks_are_kept(tracker, sequence):
    raw = track_raw(tracker, sequence / "vid.mkv")
    frame = next(f for f in VideoSource(sequence / "vid.mkv"))
    gt = read_pts(sequence / "annot" / "000001.pts")
    face = matched_face(raw[0], gt)
    case = Case(1, gt, frame.image, face.box, face.log_probs)
    rows, _ = strategy_landmarks(tracker.landmarker, case, clicks=2, tol=4.0)
    assert set(rows) == {"none", "nose", "suggested_1", "suggested_2", "best"}
    np.testing.assert_allclose(rows["nose"][30], gt[30])
    assert point_errors(rows["best"], gt) <= min(point_errors(rows[k], gt) for k in ("nose", "suggested_1")) + 1e-9


def test_replaying_without_clicks_is_the_tracker_and_a_click_reaches_the_neighbours(tracker, sequence):
    video = sequence / "vid.mkv"
    raw = track_raw(tracker, video)
    replay = carried_through_hmm(tracker, raw, video, {})
    with tracker.track(video) as stream:
        direct = list(stream)
    assert [r.frame.index for r in replay] == [r.frame.index for r in direct]
    for a, b in zip(replay, direct):
        np.testing.assert_allclose([f.landmarks for f in a.faces], [f.landmarks for f in b.faces], atol=1e-6)

    # Frames 6-7 and 9-10 occluded (held faces with no pose evidence), frame 8 clicked 25 px off
    # the tracker's chin: frame 8 takes the click exactly, and through the HMM alone (nobody
    # clicks them) the occluded frames 7 and 9 follow it. Without the click they do not.
    k, point = 8, replay[7].faces[0].landmarks[8] + (0.0, -25.0)
    occluded = [FrameResult(r.frame, tuple(dataclasses.replace(f, held=True, log_probs=np.zeros_like(f.log_probs))
                                           for f in r.faces)) if r.frame.index in (6, 7, 9, 10) else r for r in raw]
    face_id = raw[7].faces[0].face_id
    plain = carried_through_hmm(tracker, occluded, video, {})
    clicked = carried_through_hmm(tracker, occluded, video, {k: {face_id: [Click(8, *point, tolerance=3.0)]}})
    np.testing.assert_allclose(clicked[7].faces[0].landmarks[8], point)
    for i in (6, 8):
        before = np.linalg.norm(plain[i].faces[0].landmarks[8] - point)
        after = np.linalg.norm(clicked[i].faces[0].landmarks[8] - point)
        assert after < before - 2.0, (i + 1, before, after)


def test_the_sequence_table(tracker, sequence):
    rows = simulate(tracker, sequence / "vid.mkv", sequence, clicks=1, every=(5,))
    assert list(rows) == ["tracked", "none", "nose", "suggested_1", "best", "every_5", "clicked_only_5"]
    assert all(r["n"] == FRAMES and r["missing"] == 0 for r in rows.values())
    assert rows["best"]["nme_diag"] <= min(rows["nose"]["nme_diag"], rows["suggested_1"]["nme_diag"])
    assert "suggested_1" in format_table(rows)
