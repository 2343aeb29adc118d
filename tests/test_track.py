"""bin/track end to end on generated clips: tracking, sinks, and every bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from clips import damage, moving_face_frames, noisy, sample_face, shifted, write_clip

from tracker.cli.track import main as track_main
from tracker.evaluation.metrics import nme
from tracker.io.landmark_csv import read_landmark_csv

REPO = Path(__file__).resolve().parents[1]
FAST = ["--no-progress", "--set", "tracking.upsample=0", "--device", "cpu"]


def track(*args) -> int:
    return track_main([str(a) for a in args] + FAST)


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    """A lossless clip of a real face moving right 3 px per frame, and the true points."""
    frames, truth = moving_face_frames(24, step=3.0)
    path = write_clip(tmp_path_factory.mktemp("clips") / "moving.mkv", frames)
    return path, truth


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_follows_a_moving_face(moving, tmp_path):
    path, truth = moving
    assert track(path, "--csv", tmp_path / "o.csv", "--jsonl", tmp_path / "o.jsonl") == 0
    rows = read_landmark_csv(tmp_path / "o.csv")
    assert [r.frame for r in rows] == list(range(1, 25))
    assert all(r.success for r in rows) and {r.face_id for r in rows} == {0}
    errors = nme(np.stack([r.points for r in rows]), np.stack(truth))
    assert errors.max() < 0.06, errors
    # the estimate moves with the face: centroid slope ~3 px per frame
    slope = np.polyfit(np.arange(24), [r.points[:, 0].mean() for r in rows], 1)[0]
    assert 2.5 < slope < 3.5
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(lines) == 24 and len(lines[3]["faces"][0]["landmarks"]) == 68
    assert all(f["faces"][0]["pose_class"] >= 0 and not f["faces"][0]["held"] for f in lines)   # HMM decoded
    # tracking by alignment: the detector started the face on frame 1 only
    assert [f["faces"][0]["detected"] for f in lines] == [True] + [False] * 23


def test_overlay_keeps_resolution_and_timing(moving, tmp_path):
    path, _ = moving
    assert track(path, "-o", tmp_path / "o.mp4", "--csv", tmp_path / "o.csv") == 0
    with av.open(str(path)) as a, av.open(str(tmp_path / "o.mp4")) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        assert (sa.width, sa.height) == (sb.width, sb.height)
        ta = [float(f.pts * f.time_base) for f in a.decode(sa)]
        tb = [float(f.pts * f.time_base) for f in b.decode(sb)]
    np.testing.assert_allclose(tb, ta, atol=1e-3)


@pytest.mark.slow
def test_batch_and_latency_modes_agree(moving, tmp_path):
    path, truth = moving
    assert track(path, "--csv", tmp_path / "b.csv", "--set", "tracking.batch_size=16") == 0
    assert track(path, "--csv", tmp_path / "l.csv", "--set", "tracking.latency=true") == 0
    b = np.stack([r.points for r in read_landmark_csv(tmp_path / "b.csv")])
    lat = np.stack([r.points for r in read_landmark_csv(tmp_path / "l.csv")])
    assert nme(b, np.stack(truth)).mean() < 0.04 and nme(lat, np.stack(truth)).mean() < 0.04
    assert nme(b, lat).mean() < 0.02


@pytest.mark.slow
def test_two_faces_keep_their_ids_and_a_lost_face_comes_back(tmp_path):
    face, _ = sample_face(0.5)
    blank = np.zeros_like(face)
    frames = []
    for i in range(30):
        right = blank if 12 <= i < 16 else shifted(face, 2 * i - 40)
        frames.append(np.concatenate([shifted(face, -i - 20), right], axis=1))
    path = write_clip(tmp_path / "two.mkv", frames)
    assert track(path, "--csv", tmp_path / "o.csv", "--set", "tracking.redetect_every=4", "--no-temporal") == 0
    rows = read_landmark_csv(tmp_path / "o.csv")
    by_frame = {}
    for r in rows:
        by_frame.setdefault(r.frame, []).append(r)
    width = face.shape[1]
    left_ids = {r.face_id for r in rows if r.success and r.points[:, 0].mean() < width}
    right_ids = {r.face_id for r in rows if r.success and r.points[:, 0].mean() >= width}
    assert len(left_ids) == 1 and len(right_ids) == 1 and left_ids != right_ids
    assert all(len(by_frame[i]) == 1 for i in range(14, 17))      # right face hidden: lost
    assert all(len(by_frame[i]) == 2 for i in (1, 10, 25, 30))      # back with the same id
    # With the HMM on (the default) a face the detector cannot see either is held, not dropped:
    # still reported, under its id, with the classifier's low confidence.
    assert track(path, "--csv", tmp_path / "h.csv", "--set", "tracking.redetect_every=4") == 0
    held = [r for r in read_landmark_csv(tmp_path / "h.csv") if 14 <= r.frame <= 16 and r.face_id in right_ids]
    from tracker.config import TrackingConfig
    assert len(held) == 3 and all(r.confidence < TrackingConfig().lost_confidence for r in held)


def test_image_folder_and_overlay_of_mixed_sizes(tmp_path):
    import cv2
    face, _ = sample_face(0.5)
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), face)
    cv2.imwrite(str(folder / "b.png"), np.zeros((50, 70, 3), np.uint8))
    cv2.imwrite(str(folder / "c.jpg"), cv2.resize(face, None, fx=1.5, fy=1.5))
    assert track(folder, "--csv", tmp_path / "o.csv", "-o", tmp_path / "o.mp4") == 0
    rows = read_landmark_csv(tmp_path / "o.csv")
    assert [(r.extras["file"], r.success) for r in rows] == [("a.png", True), ("b.png", False), ("c.jpg", True)]
    with av.open(str(tmp_path / "o.mp4")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (face.shape[1], face.shape[0])


# ------------------------------------------------------------------ bad input and faults

def test_no_argument_prints_usage(capsys):
    assert track_main([]) == 2
    assert "usage: facetrack track" in capsys.readouterr().err


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, moving):
    folder = tmp_path_factory.mktemp("damaged")
    frames, _ = moving_face_frames(24, step=2.0)
    clean = write_clip(folder / "clean.mkv", noisy(frames))
    avi = write_clip(folder / "clean.avi", noisy(frames))
    mp4 = write_clip(folder / "clean.mp4", noisy(frames), codec="libx264", options={"crf": "0"},
                     container_options={"movflags": "faststart"})
    face, _ = sample_face(0.5)
    return {
        "truncated.mkv": damage(clean, folder / "truncated.mkv", 0.6),
        "truncated.mp4": damage(mp4, folder / "truncated.mp4", 0.6),
        "corrupt.avi": damage(avi, folder / "corrupt.avi", 0.5, length=4000),
        "gray.mkv": write_clip(folder / "gray.mkv", [f[..., 1] for f in frames[:6]], pix_fmt="gray"),
        "odd.mkv": write_clip(folder / "odd.mkv", [f[:179, :319] for f in frames[:6]], pix_fmt="yuv444p"),
        "zero.mkv": write_clip(folder / "zero.mkv", []),
    }


@pytest.mark.parametrize("name,frames_min,frames_max", [("truncated.mkv", 8, 20), ("truncated.mp4", 8, 20),
                                                        ("corrupt.avi", 18, 23)])
def test_damaged_video_keeps_every_readable_frame(damaged, tmp_path, capsys, name, frames_min, frames_max):
    code = track(damaged[name], "--csv", tmp_path / "o.csv", "-o", tmp_path / "o.mp4")
    err = one_line_error(capsys)
    assert code == 5 and "warning" in err and ("truncated" in err or "corrupt" in err), err
    rows = read_landmark_csv(tmp_path / "o.csv")
    frames = [r.frame for r in rows]
    assert frames_min <= len(frames) <= frames_max and frames == sorted(frames)
    if name.startswith("corrupt"):
        assert frames[0] == 1 and frames[-1] >= 23          # frames after the damage were processed too
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(frames)


@pytest.mark.parametrize("name", ["gray.mkv", "odd.mkv"])
def test_gray_and_odd_sized_videos(damaged, tmp_path, name):
    assert track(damaged[name], "--csv", tmp_path / "o.csv", "-o", tmp_path / "o.mp4") == 0
    rows = read_landmark_csv(tmp_path / "o.csv")
    assert len(rows) == 6 and all(r.success for r in rows)
    with av.open(str(damaged[name])) as a, av.open(str(tmp_path / "o.mp4")) as b:
        assert (a.streams.video[0].width, a.streams.video[0].height) == \
               (b.streams.video[0].width, b.streams.video[0].height)


@pytest.mark.parametrize("setup,args,code,message", [
    (None, ["{tmp}/missing.mp4", "--csv", "{tmp}/o.csv"], 3, "no such file"),
    ("empty_dir", ["{tmp}/empty", "--csv", "{tmp}/o.csv"], 3, "folder has no images"),
    ("text_mp4", ["{tmp}/text.mp4", "--csv", "{tmp}/o.csv"], 3, "not a readable video"),
    ("zero", ["{zero}", "--csv", "{tmp}/o.csv"], 3, "no video frames"),
    (None, ["7", "--csv", "{tmp}/o.csv"], 3, "camera 7 cannot be opened"),
    (None, ["{moving}", "--csv", "{tmp}/no/such/dir/o.csv"], 4, "does not exist"),
    (None, ["{moving}", "-o", "{tmp}/o.txt"], 4, "unsupported output type"),
    (None, ["{moving}", "-o", "{tmp}"], 4, "is a folder"),
    (None, ["{moving}"], 2, "choose at least one output"),
    (None, ["{moving}", "--csv", "-", "--jsonl", "-"], 2, "cannot both use standard output"),
    (None, ["{moving}", "--csv", "{moving}"], 2, "would overwrite the input"),
    (None, ["{moving}", "--csv", "{tmp}/o.csv", "--set", "tracking.batch_sise=2"], 3, "did you mean 'batch_size'"),
    (None, ["{moving}", "--csv", "{tmp}/o.csv", "--set", "temporal.prune_top=-5"], 3, "must be at least 0, got -5"),
    (None, ["{moving}", "--csv", "{tmp}/o.csv", "--set", "tracking.detector=foo"], 3, "expected auto or detectors from blazeface"),
])
def test_bad_input_one_line_and_exit_code(moving, damaged, tmp_path, capsys, monkeypatch, setup, args, code, message):
    if setup == "empty_dir":
        (tmp_path / "empty").mkdir()
    if setup == "text_mp4":
        (tmp_path / "text.mp4").write_text("not a video\n")
    argv = [a.format(tmp=tmp_path, moving=moving[0], zero=damaged["zero.mkv"]) for a in args]
    assert track(*argv) == code
    assert message in one_line_error(capsys)


def test_show_without_a_display(moving, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check applies to Linux")
    assert track(moving[0], "--show") == 2
    assert "needs a display" in one_line_error(capsys)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_interrupt_leaves_valid_outputs(tmp_path, sig, code, word):
    frames, _ = moving_face_frames(400, step=0.5, scale=0.4)
    clip = write_clip(tmp_path / "long.mkv", frames)
    csv_path, video = tmp_path / "o.csv", tmp_path / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "tracker.cli", "track", str(clip), "--csv", str(csv_path), "-o", str(video), *FAST],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) > 20:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and word in err and "Traceback" not in err, err
    done = int(err.split("after frame ")[1].split(";")[0])
    frames = sorted({r.frame for r in read_landmark_csv(csv_path)})
    assert 20 <= done < 400 and frames == list(range(1, done + 1))     # the signal waits for the frame being written
    with av.open(str(video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == done


def test_launcher_gives_no_traceback(tmp_path):
    result = subprocess.run([str(REPO / "bin" / "track"), str(tmp_path / "nothing.mp4"), "--csv", str(tmp_path / "o.csv")],
                            capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == 3 and result.stderr.strip() == f"facetrack track: error: {tmp_path / 'nothing.mp4'}: no such file"


def test_show_window_quits_on_q(moving, tmp_path, monkeypatch):
    """The live window (cv2 calls faked: no display here) stops the run cleanly on 'q'."""
    from tracker.io import sinks
    monkeypatch.setenv("DISPLAY", ":0")
    shown, keys = [], iter([-1, -1, ord("q")])
    monkeypatch.setattr(sinks.cv2, "imshow", lambda title, image: shown.append(image.shape))
    monkeypatch.setattr(sinks.cv2, "waitKey", lambda ms: next(keys, -1))
    monkeypatch.setattr(sinks.cv2, "destroyWindow", lambda title: None)
    assert track(moving[0], "--show", "--csv", tmp_path / "o.csv") == 0
    assert len(shown) == 3 and [r.frame for r in read_landmark_csv(tmp_path / "o.csv")] == [1, 2, 3]


def test_in_process_run_gives_the_signal_handlers_back(moving, tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert track(moving[0], "--csv", tmp_path / "o.csv") == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.slow
def test_a_small_newcomer_is_found_within_a_second_while_a_face_is_tracked(tmp_path):
    """A 46 px face (landmark box side) appears at frame 20 beside a tracked 130 px one:
    the periodic scan (every 24 frames, the frame scaled 1.3x) finds it within 24 frames."""
    from clips import background, paste_face
    image, points = sample_face(1.0)
    frames = []
    for i in range(60):
        frame = background(640, 360, seed=3)
        paste_face(frame, image, points, 130, (200, 190))
        if i >= 20:
            paste_face(frame, image, points, 46, (500, 120))
        frames.append(frame)
    path = write_clip(tmp_path / "newcomer.mkv", frames, fps=24)
    assert track(path, "--csv", tmp_path / "o.csv", "--no-temporal") == 0
    rows = [r for r in read_landmark_csv(tmp_path / "o.csv") if r.success]
    big = {r.face_id for r in rows if r.points[:, 0].mean() < 350}
    small = sorted(r.frame for r in rows if r.points[:, 0].mean() > 400)
    assert len(big) == 1 and small and 21 <= small[0] <= 21 + 24
    assert all(f in small for f in range(small[0], 61))           # followed from then on
