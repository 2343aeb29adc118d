import av
import cv2
import numpy as np
import pytest
from clips import write_clip

from tracker.io.sources import ImageSource, SourceError, VideoSource, open_source


def write_video(path, frames: int = 12, size=(96, 64), fps: int = 24):
    """A small lossless-ish video with a moving bright square; returns the frames written."""
    written = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[10:30, 5 + 4 * i:25 + 4 * i] = 255
            written.append(img)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return written


def test_video_frames_and_pts_timestamps(tmp_path):
    path = tmp_path / "v.mp4"
    written = write_video(path, frames=12, fps=24)
    frames = list(VideoSource(path))
    assert [f.index for f in frames] == list(range(1, 13))
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(12) / 24, atol=1e-6)
    assert frames[0].image.shape == (64, 96, 3)
    assert np.abs(frames[5].image.astype(int) - written[5]).mean() < 8


class _Freed:
    """Stands in for a PyAV stream once its container is closed: any use is an error."""

    def __getattr__(self, name):
        raise AssertionError(f"stream.{name} read after the container was closed (freed memory)")


def test_nothing_reads_the_stream_after_close(tmp_path):
    # PyAV frees a stream with its container; reading one then segfaulted the decode thread
    # now and then at the end of a clip. The header's facts are read once while it is open.
    path = tmp_path / "v.mp4"
    write_video(path, frames=12, fps=24)
    source = VideoSource(path)

    class Container:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def close(self):
            self.real.close()
            source._stream = _Freed()

    source._container = Container(source._container)
    assert len(list(source)) == 12 and not source.truncated
    assert source.fps == 24 and source.frame_count == 12 and source.time_base is not None


def test_bundled_sample_video(sample_clip):
    source = VideoSource(sample_clip / "vid.mp4")
    assert source.fps == pytest.approx(23.976, abs=1e-3) and source.frame_count == 472


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("this is not a video"), "not a readable video"),
    (lambda p: p.write_bytes(b""), "not a readable video"),
])
def test_bad_videos(tmp_path, make, message):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(SourceError, match=message):
        list(VideoSource(path))


def test_image_folder_sorted_with_names(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        if name.endswith("txt"):
            (tmp_path / name).write_text("x")
        else:
            cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), 7, np.uint8))
    frames = list(open_source(tmp_path))
    assert [f.name for f in frames] == ["a.jpg", "b.png"] and [f.index for f in frames] == [1, 2]


def test_empty_folder_and_corrupt_image(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        ImageSource(tmp_path)
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(SourceError, match="no readable image"):
        list(ImageSource(tmp_path))


def test_unreadable_image_is_skipped_and_reported(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((8, 8, 3), 7, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((8, 8, 3), 9, np.uint8))
    source = ImageSource(tmp_path)
    assert [(f.index, f.name) for f in source] == [(1, "a.png"), (3, "c.png")]
    assert source.damage == "1 unreadable image skipped (b.jpg)"


class FakeCamera:
    """Stands in for cv2.VideoCapture: numbered frames every ``period`` seconds, then failure."""

    def __init__(self, index, frames=30, period=0.005):
        import time
        self.index, self.left, self.period, self.sleep = index, frames, period, time.sleep
        self.count = 0

    def isOpened(self):
        return self.index == 0

    def get(self, prop):
        return 30.0

    def read(self):
        self.sleep(self.period)
        if self.left == 0:
            return False, None
        self.left -= 1
        self.count += 1
        return True, np.full((4, 4, 3), self.count % 256, np.uint8)

    def release(self):
        pass


def test_webcam_hands_out_only_the_newest_frame(monkeypatch):
    import time

    from tracker.io import sources
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda index: FakeCamera(index, frames=60))
    source = open_source("0")
    assert source.live
    seen, indices = [], []
    for frame in source:
        seen.append(int(frame.image[0, 0, 0]))
        indices.append(frame.index)
        time.sleep(0.03)                          # a slow consumer: the camera runs ahead
    assert len(seen) < 30 and seen == sorted(set(seen)) and seen[-1] >= 55     # stale frames were dropped
    assert indices == list(range(1, len(seen) + 1))                             # output frames numbered 1..n


@pytest.mark.slow
def test_unopenable_and_stalled_cameras(monkeypatch):
    from tracker.io import sources
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda index: FakeCamera(index))
    with pytest.raises(SourceError, match="camera 3 cannot be opened"):
        open_source("3")
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda index: FakeCamera(index, frames=0))
    with pytest.raises(SourceError, match="sends no frames"):
        open_source("0")
    stalled = FakeCamera(0, frames=2)
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda index: stalled)
    source = open_source("0")
    stalled.period, stalled.left = 0.2, 10 ** 6                       # alive, but frames stop coming
    monkeypatch.setattr(sources.WebcamSource, "stall_timeout", 0.1)
    stalled.sleep = lambda s: __import__("time").sleep(5)
    with pytest.raises(SourceError, match="stopped sending frames"):
        list(source)


def test_abandoning_a_frame_threaded_decoder_does_not_hang(sample_clip):
    """Closing a half-read video whose decoder runs FFmpeg frame threads, over and over.

    With FFmpeg's log routed through a Python callback (any av.logging level but None),
    this deadlocked on the first few rounds: the close holds the GIL and waits for the
    decoding threads, one of which waits for the GIL to log. Run in a subprocess so that a
    hang fails the test instead of stalling the suite.
    """
    import subprocess
    import sys
    script = (
        "import gc, itertools, sys\n"
        "from tracker.io.sources import VideoSource\n"
        "for k in range(40):\n"
        "    frames = iter(VideoSource(sys.argv[1], threads=0))\n"
        "    for _ in itertools.islice(frames, 5 + k % 7):\n"
        "        pass\n"
        "    del frames\n"
        "    gc.collect()\n"
        "print('done')\n")
    try:
        out = subprocess.run([sys.executable, "-c", script, str(sample_clip / "vid.mp4")], capture_output=True,
                             text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("closing a frame-threaded decoder hung")
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr[-500:]


def upright_picture(height: int = 48, width: int = 80) -> np.ndarray:
    """A picture with no symmetry: a bright square in the top-left corner and a grey bar
    lower down, right of centre."""
    image = np.full((height, width, 3), 20, np.uint8)
    image[2:18, 2:18] = 255
    image[30:42, 44:72] = 128
    return image


def stored_on_its_side(upright: np.ndarray, rotation: int, hflip: bool = False) -> np.ndarray:
    """What a camera stores so that a player, turning it ``rotation`` degrees counter-clockwise
    and then mirroring it when ``hflip``, shows ``upright``."""
    return np.ascontiguousarray(np.rot90(upright[:, ::-1] if hflip else upright, k=-rotation // 90))


@pytest.mark.parametrize("name,codec", [("r.mp4", "libx264"), ("r.mkv", "ffv1")])
@pytest.mark.parametrize("rotation,hflip", [(90, False), (-90, False), (270, False), (180, False),
                                            (0, True), (90, True), (-90, True)])
def test_rotation_flag_gives_frames_as_displayed(tmp_path, name, codec, rotation, hflip):
    # Phones store a portrait video on its side with a display matrix ("rotate" flag); we
    # track what a player shows, so the source turns each frame upright.
    upright = upright_picture()
    stored = stored_on_its_side(upright, rotation, hflip)
    assert stored.shape != upright.shape or rotation % 360 in (0, 180)
    path = write_clip(tmp_path / name, [stored] * 5, fps=24, codec=codec, rotation=rotation, hflip=hflip)
    first = next(av.open(str(path)).decode(video=0))
    assert (first.height, first.width) == stored.shape[:2]                 # really stored as turned
    assert round(first.rotation) % 360 == rotation % 360 or hflip          # and flagged so
    source = VideoSource(path)
    frames = list(source)
    assert [f.index for f in frames] == [1, 2, 3, 4, 5] and source.frame_count in (0, 5)
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(5) / 24, atol=1e-3)   # mkv: ms
    for frame in frames:
        assert frame.image.shape == upright.shape and frame.image.flags.c_contiguous
        assert np.abs(frame.image.astype(int) - upright).mean() < 4
        assert frame.image[2:18, 2:18].mean() > 200 and frame.image[30:42, 44:72].mean() == pytest.approx(128, abs=10)


@pytest.mark.parametrize("rotation", [None, 0, 45])
def test_frames_without_a_quarter_turn_flag_are_as_stored(tmp_path, rotation):
    # No flag, a flag of 0, and an angle we do not follow (not a quarter turn): as stored.
    stored = stored_on_its_side(upright_picture(), 90)
    path = write_clip(tmp_path / "r.mkv", [stored] * 3, codec="ffv1", rotation=rotation)
    frames = list(VideoSource(path))
    assert len(frames) == 3
    for frame in frames:
        assert frame.image.shape == stored.shape and np.abs(frame.image.astype(int) - stored).mean() < 4


def test_rotated_phone_video_is_upright(shared_data):
    # The shared selfie-rotated clip: stored 480 x 640 with rotation -90, shown 640 x 480.
    path = shared_data / "videos" / "selfie-rotated" / "vid.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    first = next(iter(VideoSource(path)))
    assert first.image.shape == (480, 640, 3)
