"""Frame sources: iterators of :class:`Frame` (index from 1, timestamp, BGR image).

Files apply back-pressure and lose nothing; a webcam is live and hands out only the
newest frame (:class:`WebcamSource`); any iterable of NumPy images is a source too
(:class:`ArraySource`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from tracker.errors import FacetrackError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(FacetrackError):
    """An input that cannot be read."""


@dataclass(frozen=True)
class Frame:
    index: int                 # 1-based
    timestamp: float           # seconds
    image: np.ndarray          # HxWx3 uint8 BGR
    name: str = ""             # file name for image inputs
    cut: bool = False          # starts a new shot (set by tracker.inference.cuts.mark_cuts on the decode thread)
    cells: object = None       # its tracker.inference.cuts.FrameSummary, when mark_cuts made one (what changed where)

    @cached_property
    def gray(self) -> np.ndarray:
        """The image in grey levels, made once (optical flow reads it for every carried face,
        in the engine and in the regressors' stage)."""
        return cv2.cvtColor(self.image, cv2.COLOR_BGR2GRAY)


def list_images(path) -> list[Path]:
    """The images of a folder in sorted order, or a single image file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise SourceError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise SourceError(f"{path}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
    return [path]


def as_bgr_image(image, what: str = "image") -> np.ndarray:
    """``image`` as a contiguous HxWx3 uint8 BGR array: grey (HxW, HxWx1) and BGRA
    inputs are converted; anything else is a :class:`SourceError` naming ``what``."""
    if not isinstance(image, np.ndarray):
        raise SourceError(f"{what}: expected a NumPy image array, got {type(image).__name__}")
    channels = image.shape[2] if image.ndim == 3 else 1 if image.ndim == 2 else 0
    if image.dtype != np.uint8 or channels not in (1, 3, 4) or min(image.shape[:2], default=0) < 1:
        raise SourceError(f"{what}: expected a uint8 image of shape (H, W, 3) in BGR order, "
                          f"got a {image.dtype} array of shape {image.shape}")
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def read_image(path) -> np.ndarray:
    """A BGR uint8 image; grayscale and alpha inputs become 3-channel."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: unreadable or corrupt image")
    return image


class ImageSource:
    """Images of a folder (sorted) or one image file; timestamps are 0."""

    live = False
    fps = 25.0                 # frame rate given to an overlay video made from images
    time_base = None

    def __init__(self, path):
        self.path = Path(path)
        self.files = list_images(path)
        self.unreadable: list[str] = []

    @property
    def frame_count(self) -> int:
        return len(self.files)

    @property
    def damage(self) -> str:
        """Images that could not be read and were skipped, in words ('' when none)."""
        n = len(self.unreadable)
        return f"{n} unreadable image{'s' * (n > 1)} skipped ({', '.join(self.unreadable[:3])}" \
               f"{', ...' if n > 3 else ''})" if n else ""

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        """Frames in file order; an unreadable image is skipped (its index stays unused)."""
        for i, path in enumerate(self.files, start=1):
            try:
                image = read_image(path)
            except SourceError:
                self.unreadable.append(path.name)
                continue
            yield Frame(index=i, timestamp=0.0, image=image, name=path.name)
        if len(self.unreadable) == len(self.files):
            raise SourceError(f"{self.path}: no readable image ({self.damage})")


class ArraySource:
    """Frames from any iterable of NumPy images (BGR, as OpenCV gives them) or of
    :class:`Frame`; arrays carry no time, so frame i gets the timestamp (i - 1) / fps."""

    live = False
    time_base = None
    damage = ""

    def __init__(self, frames, fps: float = 30.0):
        if not fps or fps <= 0:
            raise SourceError(f"fps must be positive, got {fps!r}")
        self.frames = frames
        self.fps = float(fps)

    @property
    def frame_count(self) -> int:
        return len(self.frames) if hasattr(self.frames, "__len__") else 0

    def __iter__(self) -> Iterator[Frame]:
        for i, item in enumerate(self.frames, start=1):
            if isinstance(item, Frame):
                yield item
            else:
                yield Frame(index=i, timestamp=(i - 1) / self.fps, image=as_bgr_image(item, f"frame {i}"))


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class VideoSource:
    """Frames of a video file decoded with PyAV; timestamps from pts.

    Frames come in their displayed orientation: a rotation flag (the display matrix that
    phones write, e.g. a portrait video stored on its side) is applied to each image, so
    frame sizes, landmarks and overlays are those of the upright picture a player shows.

    A corrupt packet is skipped and decoding goes on (its frame number stays unused, so
    later frames keep their numbers); ``skipped`` counts them and
    ``truncated`` tells that the file ended in the middle of the stream.
    """

    live = False

    def __init__(self, path, threads: int = 0):
        """``threads``: FFmpeg decoding threads (0: FFmpeg's choice, one per core)."""
        import av
        _quiet_ffmpeg()
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        try:
            self._container = av.open(str(self.path))
        except av.error.EOFError:
            raise SourceError(f"{self.path}: no video frames (the file ends before the first one)") from None
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.path}: not a readable video ({exc.__class__.__name__})") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path}: has no video stream")
        self._stream = self._container.streams.video[0]
        if threads == 1:
            self._stream.codec_context.thread_count = 1
        else:
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = max(0, threads)
        self._read_header()
        self.skipped = 0
        self.truncated = False
        self._closed = False
        self._matrix: bytes | None = None         # the last display matrix seen, and what it asks for
        self._turn = None

    def close(self) -> None:
        """Release the file (iteration does so when it ends; safe to call twice)."""
        if not self._closed:
            self._closed = True
            self._container.close()

    def _read_header(self) -> None:
        """What the header says, read once while the file is open: PyAV frees the stream
        with the container, and reading it after close crashed the process (a segfault on
        the decode thread at the end of a clip, about 1 run in 40)."""
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self.frame_count = int(stream.frames or 0)
        self.time_base: Fraction | None = stream.time_base
        self._start_time = stream.start_time or 0
        self._expected_duration = self._header_duration()

    @property
    def damage(self) -> str:
        """What was wrong with the file, in words ('' when nothing)."""
        parts = []
        if self.skipped:
            parts.append(f"{self.skipped} corrupt packet{'s' * (self.skipped > 1)} skipped")
        if self.truncated:
            parts.append("the file ends early (truncated)")
        return "; ".join(parts)

    def _timestamp(self, frame, index: int) -> float:
        if frame.pts is None or frame.time_base is None:
            return (index - 1) / self.fps
        return float((frame.pts - self._start_time) * frame.time_base)

    def __iter__(self) -> Iterator[Frame]:
        import av
        index, last_timestamp = 0, 0.0
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.skipped += 1
                    index += 1          # that packet's frame is lost; later frames keep their numbers
                    continue
                for frame in decoded:
                    index += 1
                    last_timestamp = self._timestamp(frame, index)
                    yield Frame(index=index, timestamp=last_timestamp, image=self._upright(frame))
        except av.error.FFmpegError as exc:
            if index == self.skipped:
                raise SourceError(f"{self.path}: cannot decode ({exc.__class__.__name__})") from None
            self.truncated = True       # keep what was decoded
        finally:
            self.close()
        if index == self.skipped:
            raise SourceError(f"{self.path}: no video frames" + (f" ({self.damage})" if self.damage else ""))
        if not self.skipped and self._ends_early(index, last_timestamp):
            self.truncated = True

    @property
    def turned(self) -> bool:
        """Whether the latest frame was turned to its displayed orientation (a rotation flag)."""
        return self._turn is not None

    def _upright(self, frame) -> np.ndarray:
        """The frame as BGR in its displayed orientation. The display matrix rides on each
        frame (a frame without one keeps the last seen); turning costs one cv2 call, and
        nothing when the matrix is the identity or absent."""
        matrix = frame.side_data.get(_DISPLAY_MATRIX)
        if matrix is not None:
            raw = bytes(matrix)
            if raw != self._matrix:
                self._matrix, self._turn = raw, display_turn(raw)
        image = frame.to_ndarray(format="bgr24")
        return image if self._turn is None else self._turn(image)

    def _header_duration(self) -> float | None:
        """The video stream's duration from the container header, in seconds, if it says."""
        stream = self._stream
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        text = (stream.metadata or {}).get("DURATION")          # Matroska keeps it per stream
        if text:
            try:
                h, m, sec = text.split(":")
                return int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                return None
        if len(self._container.streams) == 1 and self._container.duration:
            return self._container.duration / 1_000_000
        return None

    def _ends_early(self, decoded: int, last_timestamp: float) -> bool:
        """Fewer frames than the header promises, or the last one well before the stated end."""
        if self.frame_count and decoded < self.frame_count:
            return True
        expected = self._expected_duration
        return bool(expected) and last_timestamp + 2.5 / self.fps < expected


try:
    from av.sidedata.sidedata import Type as _SideDataType
    _DISPLAY_MATRIX = _SideDataType.DISPLAYMATRIX
except (ImportError, AttributeError):          # pragma: no cover - PyAV without frame side data types
    _DISPLAY_MATRIX = "DISPLAYMATRIX"

# A display matrix's 2 x 2 part (a, b, c, d), as signs, and how it turns a stored image
# into the displayed one: the stored pixel (x, y) is shown at (a x + c y, b x + d y) (plus
# a shift). PyAV's frame.rotation reads the same matrix as a counter-clockwise angle: 90 and
# -90 (270) are quarter turns, 180 a half turn; the mirrored forms have no angle of their own
# (frame.rotation calls a plain left-right mirror -180), hence the matrix here.
_TURNS = {
    (1, 0, 0, 1): None,                                                        # upright
    (0, -1, 1, 0): lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),  # rotation 90
    (0, 1, -1, 0): lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),         # rotation -90 (270)
    (-1, 0, 0, -1): lambda im: cv2.rotate(im, cv2.ROTATE_180),                 # rotation 180
    (-1, 0, 0, 1): lambda im: cv2.flip(im, 1),                                 # mirrored left-right
    (1, 0, 0, -1): lambda im: cv2.flip(im, 0),                                 # mirrored top-bottom
    (0, 1, 1, 0): cv2.transpose,                                               # -90, then mirrored
    (0, -1, -1, 0): lambda im: cv2.flip(cv2.transpose(im), -1),                # 90, then mirrored
}


def display_turn(matrix: bytes):
    """What to do to a stored frame to show it as a player does, from its display matrix
    (FFmpeg's 3 x 3 int32 matrix, 16.16 fixed point): a function of the BGR image, or None
    for none. Only quarter turns and mirrors are followed; any other angle leaves the frame
    as stored."""
    m = np.frombuffer(matrix, dtype=np.int32)
    if m.size < 5:
        return None
    part = np.array([m[0], m[1], m[3], m[4]], dtype=np.float64)
    big = np.abs(part).max()
    if big == 0:
        return None
    signs = np.where(np.abs(part) > 0.02 * big, np.sign(part), 0).astype(int)
    return _TURNS.get(tuple(int(v) for v in signs))


def _quiet_ffmpeg() -> None:
    """FFmpeg's own log lines would break our one-line errors; we report problems ourselves.

    Level None (PyAV's default) drops FFmpeg's messages without calling into Python. Any
    level routes them through a Python callback that takes the GIL from FFmpeg's decoding
    threads, and closing a frame-threaded decoder while holding the GIL then deadlocks
    (seen: a test hung in avcodec_free_context with a decoding thread waiting for the GIL).
    """
    import av.logging
    av.logging.set_level(None)


class WebcamSource:
    """A camera read by OpenCV on a grabber thread; iteration yields the newest frame.

    Frames that arrive while the consumer is busy are dropped (live: latency over
    completeness). Timestamps are seconds since the first frame.
    """

    live = True
    time_base = None
    damage = ""
    frame_count = 0
    stall_timeout = 10.0

    def __init__(self, index: int, open_timeout: float = 5.0):
        _quiet_opencv()
        self.index = int(index)
        self._capture = cv2.VideoCapture(self.index)
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"camera {self.index} cannot be opened (no such device, or in use)")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        self._cond = threading.Condition()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._stop = threading.Event()
        self._failed = False
        self._thread = threading.Thread(target=self._grab, name="webcam", daemon=True)
        self._thread.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._latest is not None or self._failed, open_timeout):
                self.close()
                raise SourceError(f"camera {self.index} opened but sent no frame within {open_timeout:.0f} s")
        if self._latest is None:
            self.close()
            raise SourceError(f"camera {self.index} opened but sends no frames")

    def _grab(self) -> None:
        start, count = None, 0
        while not self._stop.is_set():
            ok, image = self._capture.read()
            now = time.monotonic()
            with self._cond:
                if not ok or image is None:
                    self._failed = True
                    self._cond.notify_all()
                    return
                start = now if start is None else start
                count += 1
                self._latest = (count, now - start, image)
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        seen, index = 0, 0
        try:
            while True:
                with self._cond:
                    fresh = self._cond.wait_for(lambda: (self._latest and self._latest[0] > seen)
                                                or self._failed or self._stop.is_set(), self.stall_timeout)
                    if not fresh:
                        raise SourceError(f"camera {self.index} stopped sending frames "
                                          f"(nothing for {self.stall_timeout:.0f} s)")
                    if self._latest is None or self._latest[0] <= seen:
                        return
                    seen, timestamp, image = self._latest
                index += 1
                yield Frame(index=index, timestamp=timestamp, image=image)
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._capture.release()


def _quiet_opencv() -> None:
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass


def is_camera(spec) -> bool:
    """A webcam index: an int, or a digit string when no file of that name exists."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return True
    return isinstance(spec, str) and spec.isdigit() and not Path(spec).exists()


def open_source(spec, decode_threads: int = 0, fps: float = 30.0):
    """A webcam (an index, or a digit string), an image folder, an image file, a video
    file, or any other iterable of images (see :class:`ArraySource`, which uses ``fps``)."""
    if is_camera(spec):
        return WebcamSource(int(spec))
    if not isinstance(spec, (str, Path)):
        if not hasattr(spec, "__iter__"):
            raise SourceError(f"cannot read frames from a {type(spec).__name__}: give a path, a camera index "
                              f"or an iterable of images")
        return spec if hasattr(spec, "live") else ArraySource(spec, fps)
    path = Path(spec)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    return VideoSource(path, threads=decode_threads)
