"""Frame sources: iterators of :class:`Frame` (index from 1, timestamp, BGR image)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import FacetrackError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(FacetrackError):
    """An input that cannot be read."""


@dataclass(frozen=True)
class Frame:
    index: int                 # 1-based
    timestamp: float           # seconds
    image: np.ndarray          # HxWx3 uint8 BGR
    name: str = ""             # file name for image inputs


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


def read_image(path) -> np.ndarray:
    """A BGR uint8 image; grayscale and alpha inputs become 3-channel."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: unreadable or corrupt image")
    return image


class ImageSource:
    """Images of a folder (sorted) or one image file; timestamps are 0."""

    def __init__(self, path):
        self.files = list_images(path)

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.files, start=1):
            yield Frame(index=i, timestamp=0.0, image=read_image(path), name=path.name)


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class VideoSource:
    """Frames of a video file decoded with PyAV; timestamps from pts.

    A corrupt packet is skipped and decoding goes on; ``skipped`` counts them.
    """

    def __init__(self, path):
        import av
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.path}: not a readable video ({exc.__class__.__name__})") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path}: has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.skipped = 0

    @property
    def fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else 30.0

    @property
    def frame_count(self) -> int:
        return int(self._stream.frames or 0)

    def _timestamp(self, frame, index: int) -> float:
        if frame.pts is None or frame.time_base is None:
            return (index - 1) / self.fps
        start = self._stream.start_time or 0
        return float((frame.pts - start) * frame.time_base)

    def __iter__(self) -> Iterator[Frame]:
        import av
        index = 0
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.skipped += 1
                    continue
                for frame in decoded:
                    index += 1
                    yield Frame(index=index, timestamp=self._timestamp(frame, index),
                                image=frame.to_ndarray(format="bgr24"))
        except av.error.FFmpegError as exc:
            if index == 0:
                raise SourceError(f"{self.path}: cannot decode ({exc.__class__.__name__})") from None
            self.skipped += 1       # truncated tail: keep what was decoded
        finally:
            self._container.close()


def open_source(path):
    """An image folder, an image file or a video file, by what the path is."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    return VideoSource(path)
