"""Face detectors behind one interface, and their calibration to landmark boxes.

Every detector returns an (N, 5) float32 array of rows ``x0, y0, x1, y1, score`` sorted by
descending score. The classifier is trained on the square box around the ground-truth
landmarks (:func:`tracker.geometry.shapes.landmark_box`); :class:`BoxCalibration` corrects a
detector's average offset and scale against those boxes (the paper's "pre" step before
the learned refinement).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from tracker.geometry.boxes import (
    box_center_size,
    box_from_center_size,
    iou,
    landmark_box,
    match_detections,
)

DETECTOR_NAMES = ("dlib", "haar", "cnn")


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


def _as_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _as_rgb_or_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def _sorted_rows(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    rows = np.zeros((len(boxes), 5), dtype=np.float32)
    if len(boxes):
        rows[:, :4] = boxes
        rows[:, 4] = scores
        rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    return rows


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
        rects, scores, _ = self._detector.run(_as_rgb_or_gray(image),
                                              self.upsample if upsample is None else int(upsample),
                                              self.threshold)
        # dlib's right/bottom are inclusive pixel indices.
        boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]
        return _sorted_rows(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
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
        found = self._detector(_as_rgb_or_gray(image), self.upsample if upsample is None else int(upsample))
        boxes = [(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1) for d in found]
        return _sorted_rows(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
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
        gray = _as_gray(image)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size))
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        return _sorted_rows(boxes, np.asarray(neighbours, dtype=np.float32).reshape(-1))


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
    raise ValueError(f"unknown detector {name!r}; choose from {DETECTOR_NAMES + ('auto',)}")


def detector_chain(name: str = "auto", upsample: int = 1) -> list[Detector]:
    """Detectors to try in order: 'auto' is dlib then Haar (Haar alone without dlib)."""
    if name == "auto":
        return [DlibHogDetector(upsample=upsample), HaarDetector()] if dlib_available() else [HaarDetector()]
    return [default_detector(name, upsample=upsample)]


def fallback_detectors(name: str = "auto") -> list[Detector]:
    """The last resort for still images when the chain finds nothing: 'auto' is dlib's CNN
    where it can load (else none), 'cnn' insists on it, 'none' has none."""
    if name == "none":
        return []
    if name == "auto":
        try:
            return [DlibCnnDetector()]
        except DetectorUnavailable:
            return []
    if name == "cnn":
        return [DlibCnnDetector()]
    raise ValueError(f"unknown fallback detector {name!r}; choose from auto, cnn, none")


# ----------------------------------------------------------------------------- boxes


def _center_size(boxes) -> tuple[np.ndarray, np.ndarray]:
    return box_center_size(np.asarray(boxes, dtype=np.float64)[..., :4])


@dataclass
class BoxCalibration:
    """Maps a detector's box to the square landmark box the classifier was trained on.

    With the detector box made square (centre c, side s = mean side), the target is the
    square of centre ``c + s * (ax, ay)`` and side ``s * exp(b)``. ``spread`` holds robust
    standard deviations of the residual (x, y, log-scale) errors, in the same units, which
    is what augmentation should simulate.
    """

    detector: str = "identity"
    ax: float = 0.0
    ay: float = 0.0
    b: float = 0.0
    spread: tuple[float, float, float] = (0.0, 0.0, 0.0)
    n_fit: int = 0

    @classmethod
    def identity(cls, detector: str = "identity") -> "BoxCalibration":
        """The calibration that only makes boxes square."""
        return cls(detector=detector)

    @staticmethod
    def offsets(det_boxes, gt_boxes) -> np.ndarray:
        """Per-pair (dx / s, dy / s, log(side ratio)) from detector to target boxes, (N, 3)."""
        c_det, s_det = _center_size(det_boxes)
        c_gt, s_gt = _center_size(gt_boxes)
        shift = (c_gt - c_det) / s_det[..., None]
        return np.concatenate([shift, np.log(s_gt / s_det)[..., None]], axis=-1).reshape(-1, 3)

    @classmethod
    def fit(cls, det_boxes, gt_boxes, detector: str = "unknown") -> "BoxCalibration":
        """Median offsets of matched (detector box, target box) pairs."""
        d = cls.offsets(det_boxes, gt_boxes)
        if len(d) == 0:
            raise ValueError("cannot fit a box calibration on zero pairs")
        median = np.median(d, axis=0)
        # Half the central 68 % range: a robust sigma that survives the many ties a
        # detector's quantised positions and scales produce (where a MAD collapses to 0).
        sigma = (np.percentile(d, 84, axis=0) - np.percentile(d, 16, axis=0)) / 2
        return cls(detector=detector, ax=float(median[0]), ay=float(median[1]),
                   b=float(median[2]), spread=tuple(float(v) for v in sigma),
                   n_fit=int(len(d)))

    def apply(self, boxes) -> np.ndarray:
        """Calibrated square boxes (..., 4) for detector boxes (..., 4+) (a score is dropped)."""
        center, side = _center_size(boxes)
        center = center + side[..., None] * np.array([self.ax, self.ay])
        return box_from_center_size(center, side * np.exp(self.b))

    def to_dict(self) -> dict:
        """Plain JSON-able fields."""
        return {"detector": self.detector, "ax": float(self.ax), "ay": float(self.ay),
                "b": float(self.b), "spread": [float(v) for v in self.spread],
                "n_fit": int(self.n_fit)}

    @classmethod
    def from_dict(cls, data: dict) -> "BoxCalibration":
        """Inverse of :meth:`to_dict` (missing optional fields take defaults)."""
        return cls(detector=str(data.get("detector", "unknown")), ax=float(data["ax"]),
                   ay=float(data["ay"]), b=float(data["b"]),
                   spread=tuple(float(v) for v in data.get("spread", (0.0, 0.0, 0.0))),
                   n_fit=int(data.get("n_fit", 0)))


def _load_image(image) -> np.ndarray:
    if isinstance(image, (str, Path)):
        loaded = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if loaded is None:
            raise FileNotFoundError(f"cannot read image {image}")
        return loaded
    return image


def _rescaled(image: np.ndarray, points: np.ndarray, factor: float):
    """Image resized by ``factor`` and its landmarks moved to match (pixel centres)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, size, interpolation=interpolation)
    ratio = np.array([size[0] / w, size[1] / h])
    return resized, (points + 0.5) * ratio - 0.5


def collect_matches(detector: Detector, images: Iterable, landmarks: Iterable,
                    min_iou: float = 0.3, rescale: tuple[float, float] | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Matched detector boxes (M, 4), their landmark boxes (M, 4), and the image count.

    With ``rescale=(lo, hi)`` each image is first resized by a log-uniform random factor
    (boxes are then in the resized frames; calibration offsets are scale-free).
    """
    rng = np.random.default_rng(seed)
    det_rows, gt_rows, n_images = [], [], 0
    for image, points in zip(images, landmarks):
        n_images += 1
        image = _load_image(image)
        points = np.asarray(points, dtype=np.float64)
        if rescale is not None:
            factor = float(np.exp(rng.uniform(np.log(rescale[0]), np.log(rescale[1]))))
            image, points = _rescaled(image, points, factor)
        gt = landmark_box(points)
        found = detector.detect(image)
        k = match_detections(found, gt, min_iou)
        if k >= 0:
            det_rows.append(found[k, :4])
            gt_rows.append(gt)
    det = np.asarray(det_rows, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_rows, dtype=np.float64).reshape(-1, 4)
    return det, gt, n_images


def fit_calibration(detector: Detector, images: Iterable, landmarks: Iterable,
                    min_iou: float = 0.3, rescale: tuple[float, float] | None = (0.7, 1.5),
                    seed: int = 0) -> tuple[BoxCalibration, dict]:
    """Run ``detector`` on images (arrays or paths), match to landmark boxes, fit.

    By default every image is resized by a random factor in ``rescale`` first: detectors
    report positions and sizes on a coarse grid (dlib: 8-pixel HOG cells, 5/6 pyramid
    steps), and on data where all faces share one size and place (the 300-W crops) the
    fit would otherwise learn that grid's phase. ``rescale=None`` uses images as given.
    Returns the calibration and stats: n_images, n_detected, detection_rate, and mean
    IoU with the landmark box before (raw detector box) and after calibration.
    """
    det, gt, n_images = collect_matches(detector, images, landmarks, min_iou, rescale, seed)
    name = getattr(detector, "name", type(detector).__name__)
    calibration = BoxCalibration.fit(det, gt, detector=name)
    stats = {"n_images": n_images, "n_detected": int(len(det)),
             "detection_rate": len(det) / n_images if n_images else 0.0,
             "mean_iou_before": float(iou(det, gt).mean()),
             "mean_iou_after": float(iou(calibration.apply(det), gt).mean()),
             "rescale": None if rescale is None else [float(v) for v in rescale]}
    return calibration, stats
