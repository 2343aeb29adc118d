"""What every face detector is: ``detect(image) -> (N, 5)`` rows x0, y0, x1, y1, score, best first."""
from __future__ import annotations

import abc

import cv2
import numpy as np


class DetectorUnavailable(RuntimeError):
    """A named face detector cannot be loaded in this environment."""


class Detector(abc.ABC):
    """A face detector: ``detect(image) -> (N, 5)`` rows x0, y0, x1, y1, score."""

    name: str = "detector"

    @abc.abstractmethod
    def detect(self, image: np.ndarray, upsample: int | None = None) -> np.ndarray:
        """Faces in a BGR (H, W, 3) or grayscale (H, W) uint8 image, best first.

        ``upsample`` overrides the detector's own image upsampling where it has one."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image)


def as_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def as_rgb_or_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def sorted_rows(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    rows = np.zeros((len(boxes), 5), dtype=np.float32)
    if len(boxes):
        rows[:, :4] = boxes
        rows[:, 4] = scores
        rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    return rows
