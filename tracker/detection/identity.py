"""Who a face is, for keeping ids across shot changes: dlib's face recognition network.

dlib's ResNet (from face-recognition-models) maps a face, aligned by its landmarks, to a
128-d descriptor; dlib documents two descriptors under 0.6 apart as the same person.
On the shared clips (landmarks from the pseudo-labels) frames of one person stay within
0.61 (hands over the face) and the two people are at least 0.75 apart. It costs about
0.1 s per face on one core, so the engine asks only at cuts, for faces on both sides.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tracker.detection.detectors import dlib_model_file

SAME_PERSON = 0.6          # dlib's threshold on the descriptor distance


def _weights() -> Path | None:
    return dlib_model_file("dlib_face_recognition_resnet_model_v1.dat")


class FaceIdentity:
    """Face descriptors from an image and 68 landmarks (loaded on first use)."""

    def __init__(self):
        self._model = None

    @staticmethod
    def available() -> bool:
        """Whether dlib and the network's weights are installed."""
        return importlib.util.find_spec("dlib") is not None and _weights() is not None

    def descriptor(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The (128,) descriptor of the face with ``landmarks`` (68, 2) in a BGR ``image``."""
        import dlib
        if self._model is None:
            self._model = dlib.face_recognition_model_v1(str(_weights()))
        points = np.asarray(landmarks, dtype=np.float64)
        (x0, y0), (x1, y1) = np.floor(points.min(0)), np.ceil(points.max(0))
        shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                           [dlib.point(int(round(x)), int(round(y))) for x, y in points])
        rgb = np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image
        return np.asarray(self._model.compute_face_descriptor(rgb, shape), dtype=np.float32)
