"""Where results go: landmark CSV, overlay video, JSON lines, a live window.

Every sink is a context manager with ``write(result)``; overlay sinks also take the
drawn image. Writers open lazily on the first frame (sizes come from the data) and
close cleanly on any exit, so what was written before a failure or Ctrl-C is a valid
file: CSV rows are flushed per frame, the video encoder is drained and the container
finalised.
"""
from __future__ import annotations

import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from tracker.distribution.uncertainty import POSE_COLUMNS, spread_columns
from tracker.errors import FacetrackError, OutputError, UsageError
from tracker.io.landmark_csv import LandmarkCsvWriter

VIDEO_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "libx264",
                ".m4v": "libx264", ".webm": "libvpx-vp9"}


class SinkError(OutputError):
    """An output that cannot be written."""


class StopRequested(Exception):
    """The user closed the live window (q or Esc)."""


def check_writable(path, suffixes: tuple[str, ...] | None = None) -> Path:
    """Fail early, before any work, if ``path`` cannot be created."""
    path = Path(path)
    if path.is_dir():
        raise SinkError(f"cannot write {path}: is a folder")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise SinkError(f"{path}: unsupported output type {path.suffix or '(none)'!r} "
                        f"(use one of {', '.join(suffixes)})")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SinkError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SinkError(f"cannot write {path}: permission denied")
    return path


def uncertainty_columns(spread: bool) -> tuple[str, ...]:
    """The extra columns each face's uncertainty fills: head pose, then spread when asked."""
    return POSE_COLUMNS + (spread_columns() if spread else ())


def uncertainty_cells(face, spread: bool) -> dict[str, str]:
    """Column -> text of a face's uncertainty (empty when the face has none)."""
    u = face.uncertainty
    if u is None:
        return {}
    values = u.pose_values() | (u.spread_values() if spread else {})
    return {name: f"{v:.2f}" for name, v in values.items()}


class CsvSink:
    """Rows of the landmark CSV; a frame without faces gets one ``success=0`` row.

    After the OpenFace columns come each face's head pose (``yaw,yaw_std,pitch,pitch_std,
    roll,roll_std``, degrees) and, with ``spread``, its landmark spread ``s_0..s_67``
    (pixels); then ``extra_columns`` (``file`` for image folders)."""

    def __init__(self, path, extra_columns: tuple[str, ...] = (), spread: bool = False):
        self.path = path
        self.spread = spread
        self._writer = LandmarkCsvWriter(path, uncertainty_columns(spread) + tuple(extra_columns))

    def __enter__(self) -> "CsvSink":
        try:
            self._writer.__enter__()
        except FacetrackError as exc:
            raise SinkError(str(exc)) from None
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def write(self, result) -> None:
        frame = result.frame
        faces = [(f.face_id, f.confidence, f.landmarks, uncertainty_cells(f, self.spread)) for f in result.faces]
        try:
            self._writer.write_frame(frame.index, frame.timestamp, faces, {"file": frame.name})
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from None


def face_json(face, spread: bool = False) -> dict:
    """One face as a JSON-able dict (head pose keys as the CSV's; ``spread``: a list of 68)."""
    out = {"face_id": face.face_id, "confidence": round(face.confidence, 4), "detected": face.detected,
           "held": face.held, "pose_class": face.pose_class, "landmarks": np.round(face.landmarks, 2).tolist()}
    u = face.uncertainty
    if u is not None:
        out |= {name: round(v, 2) for name, v in u.pose_values().items()}
        if spread:
            out["spread"] = np.round(u.spread, 2).tolist()
    return out


def frame_json(result, spread: bool = False) -> dict:
    """One frame as a JSON-able dict."""
    frame = result.frame
    return {"frame": frame.index, "timestamp": round(frame.timestamp, 4),
            **({"file": frame.name} if frame.name else {}),
            "faces": [face_json(f, spread) for f in result.faces]}


class JsonlSink:
    """One JSON object per frame on a text stream (stdout by default), flushed per line."""

    def __init__(self, stream=None, spread: bool = False):
        self.stream = stream or sys.stdout
        self.spread = spread

    def __enter__(self) -> "JsonlSink":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, result) -> None:
        self.stream.write(json.dumps(frame_json(result, self.spread), separators=(",", ":")) + "\n")
        self.stream.flush()


def _letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit width x height, centred on black (for image folders of mixed sizes)."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    out[y0:y0 + new_h, x0:x0 + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return out


class VideoSink:
    """Overlay video with the input's resolution and frame timing (pts from the input's timestamps).

    H.264 (yuv420p) in .mp4/.mov/.mkv/.avi, VP9 in .webm. Odd frame sizes, which 4:2:0
    cannot hold, are encoded in yuv444p so the resolution stays exact.
    """

    def __init__(self, path, fps: float = 30.0, time_base: Fraction | None = None, crf: int = 20):
        self.path = check_writable(path, tuple(VIDEO_CODECS))
        self.fps = fps if fps and fps > 0 else 30.0
        self.time_base = time_base or Fraction(1, 1000)
        self.crf = crf
        self._container = None
        self._stream = None
        self._size = None
        self._last_pts = None
        self.frames = 0

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, width: int, height: int) -> None:
        import av
        codec = VIDEO_CODECS[self.path.suffix.lower()]
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from None
        stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(100000))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        stream.codec_context.time_base = self.time_base
        stream.options = {"crf": str(self.crf)} | ({"preset": "veryfast"} if codec == "libx264" else {})
        self._stream, self._size = stream, (width, height)

    def write(self, result, image: np.ndarray) -> None:
        import av
        if self._container is None:
            self._open(image.shape[1], image.shape[0])
        width, height = self._size
        if image.shape[:2] != (height, width):
            image = _letterbox(image, width, height)
        pts = round(result.frame.timestamp / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:       # images (no timing) or repeated pts
            pts = self._last_pts + max(1, round(1 / (self.fps * self.time_base)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts, frame.time_base = pts, self.time_base
        self._last_pts = pts
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from None
        self.frames += 1

    def close(self) -> None:
        """Drain the encoder and finalise the container (safe to call twice)."""
        import av
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            for packet in self._stream.encode(None):
                container.mux(packet)
        except (av.error.FFmpegError, OSError):
            pass
        finally:
            container.close()


def display_available() -> bool:
    """Whether a window can open (on Linux an X11 or Wayland display must be set)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink:
    """A live window showing the overlay; q or Esc raises :class:`StopRequested`."""

    def __init__(self, title: str = "facetrack"):
        if not display_available():
            raise UsageError("--show needs a display, and none is set (DISPLAY / WAYLAND_DISPLAY)")
        self.title = title
        self._open = False

    def __enter__(self) -> "WindowSink":
        return self

    def __exit__(self, *exc) -> None:
        if self._open:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._open = False

    def write(self, result, image: np.ndarray) -> None:
        cv2.imshow(self.title, image)
        self._open = True
        if (cv2.waitKey(1) & 0xFF) in (ord("q"), 27):
            raise StopRequested()
