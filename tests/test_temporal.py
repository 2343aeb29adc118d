"""The temporal stage: per-face fixed-lag HMM decoding and 3-frame smoothing."""
import dataclasses

import numpy as np
import pytest

from tracker.io.sources import Frame
from tracker.results import FaceResult, FrameResult
from tracker.temporal.hmm import pose_transitions
from tracker.temporal.stage import (
    REAPPEAR,
    HmmStage,
    SettledHolds,
    TemporalStage,
    ThreeFrameSmoother,
    decoded_landmarks,
)

K = 7
BOX = np.array([0.0, 0.0, 100.0, 100.0])


def templates() -> np.ndarray:
    """K poses on a line: class k is the base shape shifted right by 0.05 k (box units)."""
    base = np.random.default_rng(0).uniform(-0.4, 0.4, (68, 2))
    return np.stack([base + [0.05 * k, 0.0] for k in range(K)]).astype(np.float32)


def face(face_id: int, peak: int, sharpness: float = 6.0) -> FaceResult:
    """A face whose classifier favours class ``peak``."""
    logits = -sharpness * np.abs(np.arange(K) - peak).astype(np.float32)
    log_probs = logits - np.log(np.exp(logits).sum())
    order = np.argsort(-log_probs)[:3]
    probs = np.exp(log_probs[order]) / np.exp(log_probs[order]).sum()
    return FaceResult(face_id, np.zeros((68, 2)), 0.5, BOX, order, probs.astype(np.float32),
                      log_probs=log_probs.astype(np.float32))


def frame(index: int, *faces) -> FrameResult:
    return FrameResult(Frame(index, index / 25, np.zeros((4, 4, 3), np.uint8)), tuple(faces))


@pytest.fixture(scope="module")
def hmm_parts():
    t = templates()
    return t, pose_transitions(t, n=1)       # each class reaches only its neighbours in one step


def run(stage, frames):
    out, when = [], []
    for i, f in enumerate(frames):
        emitted = stage.push(f)
        out += emitted
        when += [i] * len(emitted)
    out += stage.flush()
    return out, when


def test_frames_leave_in_order_after_the_lag(hmm_parts):
    t, tr = hmm_parts
    stage = HmmStage(tr, t, tau=0.03, lag=3)
    frames = [frame(i + 1, face(0, 3)) for i in range(8)]
    out, when = run(stage, frames)
    assert [r.frame.index for r in out] == list(range(1, 9))
    assert when == [3, 4, 5, 6, 7]            # frame i leaves when frame i + 3 arrives; the rest at flush


def test_lag_zero_emits_at_once(hmm_parts):
    t, tr = hmm_parts
    stage = HmmStage(tr, t, tau=0.03, lag=0)
    assert [r.frame.index for r in stage.push(frame(1, face(0, 2)))] == [1]


def test_occluded_frames_keep_the_pose(hmm_parts):
    """Evidence jumps to a far class for two frames (an occluder); the path cannot follow
    without paying for several moves, so it stays, and the landmarks fall back to the template."""
    t, tr = hmm_parts
    peaks = [1, 1, 1, 1, 5, 5, 1, 1, 1]
    frames = [frame(i + 1, face(0, p, sharpness=2.0)) for i, p in enumerate(peaks)]
    out, _ = run(HmmStage(tr, t, tau=0.03, lag=4), frames)
    expected = decoded_landmarks(frames[0].faces[0], 1, t, 0.03)
    for r in out:
        np.testing.assert_allclose(r.faces[0].landmarks, expected, atol=1e-6)
        assert r.faces[0].pose_class == 1          # the decoded class sequence, for the regressors
    # without the HMM the occluded frames would have moved 0.2 box sides = 20 px
    raw = decoded_landmarks(frames[4].faces[0], 5, t, 0.03)
    assert np.abs(raw - expected)[:, 0].mean() == pytest.approx(20, abs=0.5)


def test_a_face_that_leaves_is_finished_and_others_go_on(hmm_parts):
    t, tr = hmm_parts
    frames = [frame(1, face(0, 2), face(1, 4)), frame(2, face(0, 2), face(1, 4)), frame(3, face(0, 2)),
              frame(4, face(0, 2)), frame(5, face(0, 2), face(7, 1))]
    out, _ = run(HmmStage(tr, t, tau=0.03, lag=2), frames)
    assert [r.frame.index for r in out] == [1, 2, 3, 4, 5]
    assert [[f.face_id for f in r.faces] for r in out] == [[0, 1], [0, 1], [0], [0], [0, 7]]
    np.testing.assert_allclose(out[1].faces[1].landmarks, decoded_landmarks(frames[1].faces[1], 4, t, 0.03))


def test_face_without_distribution_passes_through(hmm_parts):
    t, tr = hmm_parts
    f = FaceResult(3, np.ones((68, 2)), 0.4, BOX, np.array([0]), np.array([1.0], np.float32))
    out, _ = run(HmmStage(tr, t, tau=0.03, lag=2), [frame(1, f)])
    assert out[0].faces[0] is f


def test_three_frame_smoothing_averages_the_same_face():
    def at(index, *points):
        return frame(index, *[FaceResult(i, np.full((68, 2), p), 0.5, BOX, np.array([0]), np.array([1.0]))
                              for i, p in enumerate(points)])
    frames = [at(1, 0.0, 10.0), at(2, 3.0, 10.0), at(3, 6.0), at(4, 9.0, 40.0)]
    out, _ = run(ThreeFrameSmoother(), frames)
    got = [[float(f.landmarks[0, 0]) for f in r.faces] for r in out]
    assert got == [[1.5, 10.0], [3.0, 10.0], [6.0], [7.5, 40.0]]


def test_temporal_stage_chains_and_flushes(hmm_parts):
    t, tr = hmm_parts
    stage = TemporalStage(HmmStage(tr, t, tau=0.03, lag=2), ThreeFrameSmoother())
    out, when = run(stage, [frame(i + 1, face(0, 3)) for i in range(6)])
    assert [r.frame.index for r in out] == [1, 2, 3, 4, 5, 6] and when == [3, 4, 5]


def held(face_id: int) -> FaceResult:
    return dataclasses.replace(face(face_id, 3), held=True)


def test_held_frames_wait_for_the_face_to_come_back():
    # Face 0 is held on frames 2-3 and seen again on 4: kept. Face 1 is held on 3-4, then stays away: dropped.
    frames = [frame(1, face(0, 3), face(1, 3)), frame(2, held(0), face(1, 3)), frame(3, held(0), held(1)),
              frame(4, face(0, 3), held(1))] + [frame(i, face(0, 3)) for i in range(5, 6 + REAPPEAR)]
    out, when = run(SettledHolds(), frames)
    assert [r.frame.index for r in out] == list(range(1, 6 + REAPPEAR))
    assert when[:2] == [0, 3]                   # frame 1 at once, frame 2 once face 0 is back
    assert when[2:5] == [4 + REAPPEAR] * 3      # frames 3-5 once face 1 stayed away REAPPEAR frames
    kept = [[(f.face_id, f.held) for f in r.faces] for r in out[:4]]
    assert kept == [[(0, False), (1, False)], [(0, True), (1, False)], [(0, True)], [(0, False)]]


def test_a_face_back_after_a_short_gap_keeps_its_held_frames():
    frames = [frame(1, face(0, 3)), frame(2, held(0)), frame(3), frame(4), frame(5, face(0, 3))]
    out, when = run(SettledHolds(), frames)
    assert [[f.face_id for f in r.faces] for r in out] == [[0], [0], [], [], [0]] and when == [0, 4, 4, 4, 4]


def test_a_held_face_the_detector_still_sees_is_kept():
    # Face 0 held on 2-4; the detector found it on 3 (its estimate unconvincing); then gone.
    seen = dataclasses.replace(held(0), detected=True)
    out, _ = run(SettledHolds(), [frame(1, face(0, 3)), frame(2, held(0)), frame(3, seen), frame(4, held(0)),
                                  frame(5)])
    assert [[f.face_id for f in r.faces] for r in out] == [[0], [0], [0], [], []]
