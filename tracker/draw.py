"""Overlay drawing: landmarks by facial part, a stable colour per face, the confidence."""
from __future__ import annotations

import cv2
import numpy as np

from .shapes import GROUPS

# BGR colours, one per face id (cycled); parts get shades of the face's colour.
FACE_COLOURS = [(80, 220, 80), (60, 160, 255), (255, 120, 60), (200, 80, 220), (60, 220, 220), (220, 220, 60)]
CLOSED_PARTS = {"right_eye", "left_eye"}


def face_colour(face_id: int) -> tuple[int, int, int]:
    return FACE_COLOURS[face_id % len(FACE_COLOURS)]


def _polylines(points: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    lines = []
    for name, idx in GROUPS.items():
        if name == "mouth":
            lines += [(points[48:60], True), (points[60:68], True)]
        elif name == "nose":
            lines += [(points[27:31], False), (points[31:36], False)]
        else:
            lines.append((points[list(idx)], name in CLOSED_PARTS))
    return lines


def annotate(image: np.ndarray, face_id: int, landmarks: np.ndarray, confidence: float) -> np.ndarray:
    """Draw one face's landmarks onto ``image`` in place (and return it)."""
    colour = face_colour(face_id)
    scale = max(1.0, min(image.shape[:2]) / 360)
    thickness = max(1, int(round(scale)))
    for line, closed in _polylines(landmarks):
        cv2.polylines(image, [np.round(line * 16).astype(np.int32)], closed, colour, thickness, cv2.LINE_AA, shift=4)
    for x, y in landmarks:
        cv2.circle(image, (int(round(x * 16)), int(round(y * 16))), int(round(1.5 * scale * 16)), colour, -1,
                   cv2.LINE_AA, shift=4)
    x0, y0 = landmarks.min(axis=0)
    label = f"#{face_id} {confidence:.2f}"
    org = (int(x0), max(12, int(y0) - int(6 * scale)))
    cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, colour, thickness, cv2.LINE_AA)
    return image


def render(result) -> np.ndarray:
    """A copy of the result's frame with every face drawn (the overlay video's frame)."""
    image = result.frame.image.copy()
    for face in result.faces:
        annotate(image, face.face_id, face.landmarks, face.confidence)
    return image
