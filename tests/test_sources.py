import av
import cv2
import numpy as np
import pytest

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
