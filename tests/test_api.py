"""The public Python API (tracker.Tracker, tracker.read_landmarks), used the way the
README uses it: on a generated clip, on an array iterator, and the README's own example."""
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from clips import moving_face_frames, write_clip

import tracker
from tracker.cli.track import main as track_main
from tracker.config import ConfigError
from tracker.evaluation.metrics import nme
from tracker.io.annotations import write_pts
from tracker.io.landmark_csv import LandmarkCsvWriter
from tracker.io.sources import SourceError, VideoSource

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def t():
    with tracker.Tracker(device="cpu", upsample=0) as t:
        yield t


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    frames, truth = moving_face_frames(24, step=3.0)
    return write_clip(tmp_path_factory.mktemp("api") / "moving.mkv", frames), truth


def decode_threads() -> list[str]:
    return [th.name for th in threading.enumerate() if th.name == "decode"]


@pytest.mark.slow
def test_readme_example_runs_as_written():
    """The ```python block of the README's "Python API" section, run as a user would."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "frame 200 at 8.3" in out and "frame 400 at 16.6" in out
    error = float(re.search(r"pseudo-labels: ([\d.]+) px", out).group(1))
    assert 0 < error < 15                                     # the tracker follows the sample's face
    assert re.search(r"faces in the last frame: \[\(0, 0\.\d+\)\]", out)
    assert "50 frames from OpenCV, the last at 2.04 s" in out


@pytest.mark.slow
def test_track_a_generated_clip(t, moving, tmp_path):
    path, truth = moving
    results = list(t.track(path))
    assert [r.index for r in results] == list(range(1, 25))
    assert [r.timestamp for r in results] == pytest.approx([i / 24 for i in range(24)], abs=1e-3)   # pts (mkv: ms)
    assert all(r.image.shape == (180, 320, 3) for r in results)
    faces = [r.faces[0] for r in results]
    assert all(len(r.faces) == 1 for r in results) and {f.face_id for f in faces} == {0}
    assert all(f.landmarks.shape == (68, 2) and 0 <= f.confidence <= 1 for f in faces)
    assert [f.detected for f in faces] == [True] + [False] * 23
    assert all(f.pose_class >= 0 and f.log_probs is None for f in faces)    # decoded, distribution dropped
    assert nme(np.stack([f.landmarks for f in faces]), np.stack(truth)).max() < 0.06
    # the command is a shell over the same objects: its CSV holds these landmarks
    assert track_main([str(path), "--csv", str(tmp_path / "o.csv"), "--no-progress", "--device", "cpu",
                       "--set", "tracking.upsample=0"]) == 0
    table = tracker.read_landmarks(tmp_path / "o.csv")
    np.testing.assert_allclose(table.landmarks, np.stack([f.landmarks for f in faces]), atol=0.006)
    np.testing.assert_allclose(table.confidence, [f.confidence for f in faces], atol=6e-5)


@pytest.mark.slow
def test_track_an_array_iterator(t, moving):
    path, _ = moving
    decoded = [f.image for f in VideoSource(path)]
    from_file = [r.faces[0].landmarks for r in t.track(path)]
    stream = t.track((image for image in decoded), fps=10)       # a generator: no length, read once
    results = list(stream)
    assert [r.index for r in results] == list(range(1, 25))
    assert [r.timestamp for r in results] == pytest.approx([i / 10 for i in range(24)])
    np.testing.assert_array_equal(np.stack([r.faces[0].landmarks for r in results]), np.stack(from_file))
    # grey frames are taken too (made 3-channel), and give a face
    grey = [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) for image in decoded[:4]]
    assert all(len(r.faces) == 1 for r in t.track(grey))


@pytest.mark.parametrize("bad,message", [
    (np.zeros((4, 5, 3), np.float32), "frame 2: expected a uint8 image of shape (H, W, 3)"),
    (np.zeros((4, 5, 2), np.uint8), "frame 2: expected a uint8 image of shape (H, W, 3)"),
    ("not an image", "frame 2: expected a NumPy image array, got str"),
])
def test_bad_frames_fail_with_one_clear_message(t, bad, message):
    good = np.zeros((64, 64, 3), np.uint8)
    stream = t.track([good, bad, good])
    with pytest.raises(SourceError) as err:
        list(stream)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not decode_threads()


@pytest.mark.parametrize("source,message", [(3.5, "cannot read frames from a float"),
                                            ("/no/such/video.mp4", "no such file")])
def test_bad_sources_fail_when_opened(t, source, message):
    with pytest.raises(tracker.FacetrackError, match=message):
        t.track(source)


def test_closing_releases_the_decoder(moving):
    path, _ = moving
    with tracker.Tracker(device="cpu", upsample=0, queue_size=2, overlap="off") as t:   # the decoder waits
        stream = t.track(path)
        for result in stream:
            if result.index == 3:
                break
        assert decode_threads()                        # still open after the break ...
        never_read = t.track(path)
    assert not decode_threads()                         # ... released when the tracker closed
    assert stream.source._closed and never_read.source._closed


def test_an_interrupt_in_the_loop_releases_the_decoder(t, moving):
    waiting = tracker.Tracker(t.model, "cpu", upsample=0, queue_size=2, overlap="off")   # the decoder waits
    with pytest.raises(KeyboardInterrupt):
        with waiting.track(moving[0]) as stream:
            for result in stream:
                if result.index == 2:
                    assert decode_threads()
                    raise KeyboardInterrupt
    assert not decode_threads() and stream.source._closed


def engine_threads() -> list[str]:
    return [th.name for th in threading.enumerate() if th.name == "engine"]


@pytest.mark.slow
def test_the_engine_a_batch_ahead_gives_the_same_results(t, moving):
    path, _ = moving
    with tracker.Tracker(t.model, "cpu", upsample=0, overlap="off") as one_thread:
        assert t.overlap and not one_thread.overlap             # auto: on
        plain = list(one_thread.track(path))
    with tracker.Tracker(t.model, "cpu", upsample=0, overlap="on") as ahead:    # 3 batches of 8
        overlapped = list(ahead.track(path))
        assert [r.index for r in overlapped] == [r.index for r in plain]
        for a, b in zip(overlapped, plain):
            np.testing.assert_array_equal(a.faces[0].landmarks, b.faces[0].landmarks)
        with ahead.track(path) as stream:                       # stopped early: both threads end
            for result in stream:
                if result.index == 6:
                    assert engine_threads()
                    break
    assert not engine_threads() and not decode_threads()


def test_an_error_in_the_engine_a_batch_ahead_reaches_the_caller(t, moving, monkeypatch):
    with tracker.Tracker(t.model, "cpu", upsample=0, overlap="on", batch_size=4) as ahead:
        stream = ahead.track(moving[0])
        calls = []

        def failing(frames):
            calls.append(len(frames))
            if len(calls) == 2:
                raise tracker.FacetrackError("engine failed")
            return original(frames)
        original = stream.engine.process
        monkeypatch.setattr(stream.engine, "process", failing)
        with pytest.raises(tracker.FacetrackError, match="engine failed"), stream:
            list(stream)
    assert not engine_threads() and not decode_threads()


@pytest.mark.parametrize("temporal", [False, True])
def test_the_regressors_run_after_the_engine_whatever_the_temporal_setting(t, moving, monkeypatch, temporal):
    """The engine reports the classifier's own estimates (it never calls the regressors); the
    stage after it moves each face, from the decoded class when the HMM ran, else the
    classifier's best."""
    from tracker.inference.pipeline import track_frames
    path, _ = moving
    with tracker.Tracker(t.model, "cpu", upsample=0, temporal=temporal, classify_every=1) as tr:
        regress, calls = tr.landmarker.regress, []

        def counted(image, points, classes):
            calls.append(len(points))
            return regress(image, points, classes)
        monkeypatch.setattr(tr.landmarker, "regress", counted)
        engine = tr.new_engine()
        try:
            raw = list(track_frames(VideoSource(path), engine, tr.batch_size))
        finally:
            engine.close()
        assert not calls and len(raw) == 24
        with tr.track(path) as stream:
            results = list(stream)
        assert calls == [1] * 24 and stream.times.counts["regress"] == 24
    if temporal:
        assert all(r.faces[0].pose_class >= 0 for r in results)
        return
    for got, own in zip(results, raw):
        face = own.faces[0]
        moved = regress(own.image, face.landmarks[None], face.classes[:1])[0]
        np.testing.assert_array_equal(got.faces[0].landmarks, moved)
        assert np.abs(moved - face.landmarks).max() > 0.1


def test_finish_returns_the_frames_still_held(t, moving):
    path, _ = moving
    with t.track(path) as stream:
        first = [r.index for _, r in zip(range(5), stream)]
        held = [r.index for r in stream.finish()]
    assert first == [1, 2, 3, 4, 5]
    assert held and held == list(range(6, 6 + len(held)))      # every frame decided so far, none lost
    assert stream.finish() == []


def test_predict_one_image(t, moving, tmp_path):
    image = next(iter(VideoSource(moving[0]))).image
    faces = t.predict(image)
    assert len(faces) == 1 and faces[0].face_id == 0 and faces[0].detected
    assert faces[0].landmarks.shape == (68, 2) and faces[0].log_probs is None
    cv2.imwrite(str(tmp_path / "face.png"), image)
    np.testing.assert_allclose(t.predict(tmp_path / "face.png")[0].landmarks, faces[0].landmarks)
    assert t.predict(np.zeros((120, 160, 3), np.uint8)) == []
    with pytest.raises(SourceError, match="unreadable or corrupt"):
        t.predict(tmp_path / "missing.png")


def test_settings_are_checked_before_the_model_loads():
    with pytest.raises(ConfigError, match="unknown setting 'bach_size' \\(did you mean 'batch_size'\\?\\)"):
        tracker.Tracker(bach_size=2)
    with pytest.raises(ConfigError, match="tracking.batch_size"):
        tracker.Tracker(batch_size=0)
    with pytest.raises(ConfigError, match="temporal.enabled: expected true or false"):
        tracker.Tracker(temporal="off")


def test_settings_reach_the_config(t):
    other = tracker.Tracker(t.model, "cpu", lag=3, temporal=False, top_k=7)
    assert other.config.temporal.lag == 3 and not other.config.temporal.enabled
    assert other.config.tracking.top_k == 7 and other.landmarker.top_k == 7
    assert other.model is t.model                          # a loaded model is reused, not reloaded


# ----------------------------------------------------------------------------- read_landmarks

def test_read_landmarks_of_our_csv(tmp_path, face):
    with LandmarkCsvWriter(tmp_path / "o.csv", extra_columns=("file",)) as csv:
        csv.write_frame(1, 0.0, [(0, 0.9, face), (1, 0.5, face + 10)], {"file": "1.png"})
        csv.write_frame(2, 0.04, [], {"file": "2.png"})
        csv.write_frame(3, 0.08, [(1, 0.7, face + 20)], {"file": "3.png"})
    table = tracker.read_landmarks(tmp_path / "o.csv")
    assert len(table) == 4
    np.testing.assert_array_equal(table.frame, [1, 1, 2, 3])
    np.testing.assert_array_equal(table.face_id, [0, 1, -1, 1])
    np.testing.assert_array_equal(table.success, [True, True, False, True])
    np.testing.assert_allclose(table.timestamp, [0, 0, 0.04, 0.08])
    np.testing.assert_allclose(table.confidence, [0.9, 0.5, 0, 0.7])
    assert table.landmarks.shape == (4, 68, 2) and np.isnan(table.landmarks[2]).all()
    np.testing.assert_allclose(table.landmarks[3], face + 20, atol=0.005)
    assert list(table.file) == ["1.png", "1.png", "2.png", "3.png"]
    one = table.face(1)
    np.testing.assert_array_equal(one.frame, [1, 3])
    np.testing.assert_allclose(one.landmarks[1], face + 20, atol=0.005)


def test_read_landmarks_of_pts_files_and_300vw(tmp_path, face, sample_clip):
    (tmp_path / "pts").mkdir()
    write_pts(tmp_path / "pts" / "b.pts", face + 1)
    write_pts(tmp_path / "pts" / "a.pts", face)
    table = tracker.read_landmarks(tmp_path / "pts")
    assert list(table.file) == ["a.pts", "b.pts"] and list(table.frame) == [1, 2]
    np.testing.assert_allclose(table.landmarks[1], face + 1, atol=1e-4)
    assert table.success.all() and np.isnan(table.confidence).all()
    assert len(tracker.read_landmarks(tmp_path / "pts" / "b.pts")) == 1
    video = tracker.read_landmarks(sample_clip)
    assert len(video) == 472 and list(video.frame[:3]) == [1, 2, 3] and set(video.file) == {""}


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such file or folder"),
    (lambda p: p.write_text("frame,face\n1,2\n"), "missing column"),
    (lambda p: p.mkdir(), "no .pts files"),
])
def test_read_landmarks_bad_files(tmp_path, make, message):
    bad = tmp_path / "bad"
    make(bad)
    with pytest.raises(tracker.FacetrackError, match=message):
        tracker.read_landmarks(bad)


def test_import_is_light():
    """``import tracker`` and ``facetrack --help`` do not load torch (start-up time)."""
    code = ("import sys, tracker; from tracker.cli import main; main(['--help']); "
            "print('torch' in sys.modules, tracker.__version__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(f"False {tracker.__version__}"), proc.stdout
