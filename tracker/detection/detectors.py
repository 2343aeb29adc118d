"""Face detectors behind one interface.

Every detector returns an (N, 5) float32 array of rows ``x0, y0, x1, y1, score`` sorted by
descending score. The classifier is trained on the square box around the ground-truth
landmarks (:func:`tracker.geometry.boxes.landmark_box`);
:class:`tracker.detection.calibration.BoxCalibration` maps a detector's boxes onto those.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tracker.detection.base import Detector, DetectorUnavailable, as_gray, as_rgb_or_gray, sorted_rows
from tracker.detection.blazeface import BlazeFaceDetector
from tracker.detection.blazeface import available as blazeface_available

DETECTOR_NAMES = ("blazeface", "dlib", "haar", "cnn")


def _import_dlib():
    try:
        import dlib
    except ImportError as err:
        raise DetectorUnavailable(
            "dlib is not installed; install the 'dlib' extra (dlib-bin) or use 'haar'") from err
    return dlib


class DlibHogDetector(Detector):
    """dlib's HOG + linear SVM frontal face detector (dlib imported on construction)."""

    name = "dlib"

    def __init__(self, upsample: int = 1, threshold: float = 0.0):
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self._detector = frontal_face_detector(_import_dlib())

    def detect(self, image: np.ndarray, upsample: int | None = None) -> np.ndarray:
        rects, scores, _ = self._detector.run(as_rgb_or_gray(image),
                                              self.upsample if upsample is None else int(upsample),
                                              self.threshold)
        # dlib's right/bottom are inclusive pixel indices.
        boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]
        return sorted_rows(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                            np.asarray(scores, dtype=np.float32))


def frontal_face_detector(dlib):
    """dlib's frontal face detector. Building it (``get_frontal_face_detector``, which decodes
    the model dlib carries inside it) takes 0.25 s; read back from the copy this saves in the
    user's cache (:mod:`tracker.cache`, keyed by dlib's version) it takes 1 ms."""
    from tracker.cache import keep, user_cache
    path = user_cache(f"dlib-{getattr(dlib, '__version__', 'unknown')}-frontal-face.svm")
    if path.is_file():
        try:
            return dlib.fhog_object_detector(str(path))
        except RuntimeError:
            pass                                 # unreadable: built again and saved over
    detector = dlib.get_frontal_face_detector()
    keep(path, lambda part: detector.save(str(part)))
    return detector


def dlib_model_file(name: str) -> Path | None:
    """A model file shipped by the face-recognition-models package, or None when it is not
    installed (located without importing it: its __init__ needs pkg_resources)."""
    import importlib.util
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    return path if path.is_file() else None


def _cnn_weights() -> Path:
    """dlib's MMOD CNN face detector weights."""
    path = dlib_model_file("mmod_human_face_detector.dat")
    if path is None:
        raise DetectorUnavailable("dlib's CNN face detector needs the face-recognition-models package "
                                  "(the 'dlib' extra)")
    return path


class DlibCnnDetector(Detector):
    """dlib's MMOD CNN face detector: finds turned, dark and cut-off faces the HOG misses,
    at ~0.3 s for a 256 px image on one core, so it is the last resort on still images."""

    name = "cnn"

    def __init__(self, upsample: int = 0):
        self.upsample = int(upsample)
        self._detector = _import_dlib().cnn_face_detection_model_v1(str(_cnn_weights()))

    def detect(self, image: np.ndarray, upsample: int | None = None) -> np.ndarray:
        found = self._detector(as_rgb_or_gray(image), self.upsample if upsample is None else int(upsample))
        boxes = [(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1) for d in found]
        return sorted_rows(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                            np.asarray([d.confidence for d in found], dtype=np.float32))


class HaarDetector(Detector):
    """OpenCV's bundled Viola-Jones frontal cascade; score = number of merged neighbours."""

    name = "haar"
    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = 24, equalize: bool = True):
        path = Path(cv2.data.haarcascades) / self.CASCADE
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorUnavailable(f"cannot load OpenCV cascade {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.equalize = equalize

    def detect(self, image: np.ndarray, upsample: int | None = None) -> np.ndarray:
        gray = as_gray(image)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size))
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        return sorted_rows(boxes, np.asarray(neighbours, dtype=np.float32).reshape(-1))


def dlib_available() -> bool:
    """Whether dlib can be imported."""
    try:
        _import_dlib()
    except DetectorUnavailable:
        return False
    return True


def default_detector(name: str = "auto", upsample: int = 1) -> Detector:
    """A detector by name: 'dlib', 'haar', 'cnn', or 'auto' (dlib when importable, else haar).

    ``upsample`` applies to dlib's HOG only (0 is about 4x faster and finds faces over 80 px);
    the CNN runs at its own upsample 0.
    """
    if name == "auto":
        name = "dlib" if dlib_available() else "haar"
    if name == "dlib":
        return DlibHogDetector(upsample=upsample)
    if name == "haar":
        return HaarDetector()
    if name == "cnn":
        return DlibCnnDetector()
    if name == "blazeface":
        return BlazeFaceDetector(upsample=upsample)
    raise ValueError(f"unknown detector {name!r}; choose from {DETECTOR_NAMES + ('auto',)}")


def _setting(detector: Detector) -> tuple:
    """What makes two detectors find the same faces: the kind and its upsampling."""
    return detector.name, getattr(detector, "upsample", None)


def detector_chain(name: str = "auto", upsample: int = 1) -> list[Detector]:
    """Detectors to try in order, each when those before it found nothing: names joined by '+'
    ('blazeface+dlib'), or 'auto': BlazeFace where its model file is installed, else dlib's HOG
    then Haar (Haar alone without dlib)."""
    if name == "auto":
        if blazeface_available():
            return [BlazeFaceDetector(upsample=upsample)]
        return [DlibHogDetector(upsample=upsample), HaarDetector()] if dlib_available() else [HaarDetector()]
    return [default_detector(part, upsample=upsample) for part in name.split("+")]


def fallback_detectors(name: str = "auto", chain: list[Detector] = ()) -> list[Detector]:
    """The last resort for still images when the ``chain`` finds nothing: 'auto' is, where each
    loads, dlib's HOG and Haar (where BlazeFace is installed, so that stills keep every
    detector; not those the chain already runs the same way) and dlib's CNN; 'cnn' insists on
    the CNN; 'none' has none."""
    if name == "none":
        return []
    if name == "auto":
        extra = []
        if blazeface_available():
            extra = [DlibHogDetector(upsample=1), HaarDetector()] if dlib_available() else [HaarDetector()]
            ran = {_setting(d) for d in chain}
            extra = [d for d in extra if _setting(d) not in ran]
        try:
            return extra + [DlibCnnDetector()]
        except DetectorUnavailable:
            return extra
    if name == "cnn":
        return [DlibCnnDetector()]
    raise ValueError(f"unknown fallback detector {name!r}; choose from auto, cnn, none")
