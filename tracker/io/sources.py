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
