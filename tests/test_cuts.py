"""Shot changes: the cut detector, and what tracking does at a cut."""
import dataclasses

import numpy as np
import pytest
from clips import MULTI_SHOT_PIECES, multi_shot_frames, write_clip
from shared import SHARED_DATA, needs_shared
from test_temporal import face, frame, hmm_parts  # noqa: F401  (hmm_parts is a fixture)

from tracker.inference.cuts import changed_fraction, frame_summary, is_cut, mark_cuts
from tracker.io.sources import Frame
from tracker.temporal.stage import HmmStage, ThreeFrameSmoother

VIDEOS = SHARED_DATA / "videos"
STILL = SHARED_DATA / "300w-subset" / "helen-train" / "100032540_1.jpg"


def _frames(images):
    return [Frame(i + 1, i / 25, im) for i, im in enumerate(images)]


def _scene(seed):
    """A frame of 6 x 8 random grey blocks (the detector's cells)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8)).astype(np.uint8)
    return np.repeat(np.kron(blocks, np.ones((60, 80), np.uint8))[..., None], 3, axis=2)


def test_cut_detector_on_synthetic_frames():
    rng = np.random.default_rng(0)
    scene, other = _scene(0), _scene(1)
    noisy = np.clip(scene.astype(int) + rng.integers(-6, 7, scene.shape), 0, 255).astype(np.uint8)
    half = scene.copy()
    half[:, 320:] = 0                                  # a big occluder over half the view: not a cut
    a = frame_summary(scene)
    assert changed_fraction(a, frame_summary(noisy)) == 0
    assert 0.3 < changed_fraction(a, frame_summary(half)) <= 0.5
    assert not is_cut(a, frame_summary(half)) and not is_cut(a, frame_summary(noisy))
    assert is_cut(None, a) and is_cut(a, frame_summary(other))
    assert is_cut(a, frame_summary(scene[:300]))       # another size
    marked = list(mark_cuts(_frames([scene, noisy, half, other, other]), "auto"))
    assert [f.cut for f in marked] == [True, False, False, True, False]
    assert [f.cut for f in mark_cuts(_frames([scene, scene, other]), "every_frame")] == [True] * 3
    assert [f.cut for f in mark_cuts(_frames([scene, other, scene[:300]]), "never")] == [True, False, True]
    with pytest.raises(ValueError):
        list(mark_cuts(_frames([scene]), "sometimes"))


def test_hmm_paths_and_smoothing_stop_at_a_cut(hmm_parts):  # noqa: F811
    t, tr = hmm_parts
    cut_at = 3
    frames = [frame(i + 1, face(0, 1 if i < cut_at else 5, sharpness=2.0)) for i in range(6)]
    frames = [dataclasses.replace(r, frame=dataclasses.replace(r.frame, cut=i == cut_at)) for i, r in enumerate(frames)]
    stage = HmmStage(tr, t, tau=0.03, lag=4)
    out = [o for f in frames for o in stage.push(f)] + stage.flush()
    # Without the cut the path could not jump 4 classes in one step; with it each shot decodes alone.
    assert [r.faces[0].pose_class for r in out] == [1, 1, 1, 5, 5, 5]
    plain = [dataclasses.replace(r, frame=dataclasses.replace(r.frame, cut=False)) for r in frames]
    joined = HmmStage(tr, t, tau=0.03, lag=4)
    out2 = [o for f in plain for o in joined.push(f)] + joined.flush()
    assert [r.faces[0].pose_class for r in out2] != [1, 1, 1, 5, 5, 5]
    smoother = ThreeFrameSmoother()
    points = [dataclasses.replace(r, faces=(dataclasses.replace(r.faces[0], landmarks=np.full((68, 2), float(i))),))
              for i, r in enumerate(frames)]
    smoothed = [o for f in points for o in smoother.push(f)] + smoother.flush()
    assert [float(r.faces[0].landmarks[0, 0]) for r in smoothed] == [0.5, 1.0, 1.5, 3.5, 4.0, 4.5]


@pytest.fixture(scope="module")
def tracker():
    from tracker.api import Tracker
    return Tracker()


@pytest.mark.slow
@needs_shared(VIDEOS, STILL)
def test_multi_shot_clip_cuts_ids_and_failures(tracker, tmp_path):
    """The two shared clips in pieces, interleaved, with a still photo held for a second:
    cuts found at every piece's start, no id on two people, and failures no worse than the
    pieces tracked in their own clips (+0.5 points)."""
    from tracker.detection.identity import FaceIdentity
    from tracker.evaluation.metrics import failure_rate, nme
    frames, points, piece_of, origin = multi_shot_frames(VIDEOS, STILL)
    path = write_clip(tmp_path / "multi.mp4", frames, fps=24, codec="libx264", options={"crf": "18"})

    def tracked(source, n):
        out, ids, cuts = [None] * n, [[] for _ in range(n)], []
        with tracker.track(str(source)) as stream:
            for r in stream:
                out[r.index - 1] = r.faces[0].landmarks if r.faces else None
                ids[r.index - 1] = [f.face_id for f in r.faces]
                cuts += [r.index - 1] if r.frame.cut else []
        return out, ids, cuts

    def errors(pred, truth):
        return np.array([np.inf if p is None else float(nme(p, g)) for p, g in zip(pred, truth)])

    pred, ids, cuts = tracked(path, len(frames))
    starts = np.cumsum([0] + [end - start for _, start, end in MULTI_SHOT_PIECES])[:-1].tolist()
    assert cuts == starts
    alone = np.zeros(len(frames))
    for name in ("wolfganglanger", "pyfeat_single_face"):
        rows = [k for k, (clip, _) in enumerate(origin) if clip == name]
        own, _, _ = tracked(VIDEOS / name / "vid.mp4", max(origin[k][1] for k in rows) + 1)
        alone[rows] = errors([own[origin[k][1]] for k in rows], [points[k] for k in rows])
    rows = [k for k, (clip, _) in enumerate(origin) if clip == "still"]
    still = tracker.predict(frames[rows[0]])
    alone[rows] = errors([still[0].landmarks if still else None] * len(rows), [points[k] for k in rows])
    assert failure_rate(errors(pred, points)) <= failure_rate(alone) + 0.005
    people: dict[int, set] = {}
    for k, face_ids in enumerate(ids):
        for face_id in face_ids:
            people.setdefault(face_id, set()).add(origin[k][0])
    assert all(len(p) == 1 for p in people.values()), people
    if FaceIdentity.available():        # the same person comes back under the same id after a cut
        assert len({i for k in range(len(frames)) if origin[k][0] == "wolfganglanger" for i in ids[k]}) == 1


@pytest.mark.slow
def test_a_folder_of_video_frames_is_tracked_and_one_of_photos_is_not(tracker, sample_clip, tmp_path):
    """Frames of the bundled clip saved as images: one shot, one id. Unrelated photos of one
    size (the clip's frames interleaved with a generated face-free background): a cut at
    each image, so nothing is followed from one into the next."""
    import cv2

    from tracker.io.sources import VideoSource
    frames = [f.image for _, f in zip(range(12), VideoSource(sample_clip / "vid.mp4"))]
    video_dir, photo_dir = tmp_path / "frames", tmp_path / "photos"
    video_dir.mkdir()
    photo_dir.mkdir()
    for i, image in enumerate(frames):
        cv2.imwrite(str(video_dir / f"{i:04d}.jpg"), image)
        cv2.imwrite(str(photo_dir / f"{i:04d}.jpg"), image if i % 2 == 0 else _scene(i))
    with tracker.track(str(video_dir)) as stream:
        results = list(stream)
    assert [r.frame.cut for r in results] == [True] + [False] * 11
    assert {f.face_id for r in results for f in r.faces} == {0}
    assert not any(f.detected for r in results[1:] for f in r.faces)      # followed, not re-detected
    with tracker.track(str(photo_dir)) as stream:
        results = list(stream)
    assert all(r.frame.cut for r in results)
    assert [len(r.faces) for r in results] == [1, 0] * 6
    assert all(f.detected for r in results for f in r.faces)
