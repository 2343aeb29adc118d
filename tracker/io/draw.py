"""Overlay drawing: landmarks by facial part, a stable colour per face, the confidence;
on request each landmark's spread (a circle of one standard deviation) and a head-pose
gauge (yaw and pitch with their standard deviations)."""
from __future__ import annotations

import cv2
import numpy as np

from tracker.geometry.shapes import GROUPS

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


def draw_spread(image: np.ndarray, face_id: int, landmarks: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """A thin circle of radius one standard deviation (pixels) around every landmark, half
    transparent, in place."""
    colour = face_colour(face_id)
    layer = image.copy()
    for (x, y), r in zip(landmarks, spread):
        cv2.circle(layer, (int(round(x * 16)), int(round(y * 16))), max(16, int(round(r * 16))), colour, 1,
                   cv2.LINE_AA, shift=4)
    cv2.addWeighted(layer, 0.45, image, 0.55, 0, dst=image)
    return image


GAUGE_RANGE = 90.0          # degrees at either end of the gauge


def draw_pose_gauge(image: np.ndarray, face_id: int, landmarks: np.ndarray, uncertainty) -> np.ndarray:
    """Below the face, in place: a yaw bar (-90 left ... +90 right, as OpenFace's pose_Ry)
    with the mean marked and one standard deviation shaded, and the angles as text."""
    colour = face_colour(face_id)
    x0, y0 = landmarks.min(axis=0)
    x1, y1 = landmarks.max(axis=0)
    width = max(60.0, x1 - x0)
    scale = max(1.0, min(image.shape[:2]) / 360)
    left, top, height = int(x0), int(y1 + 8 * scale), max(4, int(4 * scale))
    yaw, pitch, roll = (float(v) for v in uncertainty.pose)
    yaw_std = float(uncertainty.pose_std[0])

    def at(angle: float) -> int:
        return left + int(round((np.clip(angle, -GAUGE_RANGE, GAUGE_RANGE) / GAUGE_RANGE + 1) / 2 * width))

    cv2.rectangle(image, (left, top), (left + int(width), top + height), (40, 40, 40), -1)
    cv2.rectangle(image, (at(yaw - yaw_std), top), (at(yaw + yaw_std), top + height), colour, -1)
    cv2.line(image, (at(0), top - 2), (at(0), top + height + 2), (200, 200, 200), 1)
    cv2.line(image, (at(yaw), top - int(3 * scale)), (at(yaw), top + height + int(3 * scale)), (255, 255, 255),
             max(1, int(scale)))
    label = f"yaw {yaw:+.0f}+-{yaw_std:.0f}  pitch {pitch:+.0f}  roll {roll:+.0f}"
    org = (left, top + height + int(14 * scale))
    thickness = max(1, int(round(scale)))
    cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, colour, thickness, cv2.LINE_AA)
    return image


def draw_heatmap(image: np.ndarray, heat: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """``heat`` (H, W) in [0, 1] blended onto ``image`` in place as a colour map (inferno),
    transparent where it is near zero."""
    coloured = cv2.applyColorMap(np.round(np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    alpha = (strength * np.clip(heat * 3, 0, 1))[..., None]
    image[:] = np.round(image * (1 - alpha) + coloured * alpha).astype(np.uint8)
    return image


def render(result, uncertainty: bool = False, heatmap=None) -> np.ndarray:
    """A copy of the result's frame with every face drawn (the overlay video's frame);
    ``uncertainty``: with each face's landmark spread and head-pose gauge, where known;
    ``heatmap``: a function (face, (height, width)) -> (H, W) in [0, 1] (e.g.
    :meth:`tracker.api.Tracker.heatmap`), drawn under the landmarks."""
    image = result.frame.image.copy()
    if heatmap is not None and result.faces:
        heat = np.max([heatmap(face, image.shape[:2]) for face in result.faces], axis=0)
        draw_heatmap(image, heat)
    for face in result.faces:
        annotate(image, face.face_id, face.landmarks, face.confidence)
        if uncertainty and face.uncertainty is not None:
            if heatmap is None:
                draw_spread(image, face.face_id, face.landmarks, face.uncertainty.spread)
            draw_pose_gauge(image, face.face_id, face.landmarks, face.uncertainty)
    return image
