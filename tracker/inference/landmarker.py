"""Still-image landmarks: detect, calibrate, crop, classify, read the posterior.

``passes > 1`` re-crops around the previous pass's landmarks and classifies again:
the same alignment step that tracking uses from frame to frame, applied to one image.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Sequence

import cv2
import numpy as np

from tracker.classifier.model import LandmarkModel
from tracker.detection.calibration import BoxCalibration
from tracker.detection.detectors import Detector
from tracker.distribution.confidence import posterior_features
from tracker.distribution.poses import rms_distance
from tracker.distribution.posterior import Posterior, expected_shape, top_k_posterior
from tracker.geometry.boxes import box_drift, landmark_box
from tracker.geometry.crop import crop_batch
from tracker.geometry.shapes import MIRROR, flip_horizontal, from_canonical

LANDMARK_BOXES = "landmarks"       # calibration key for boxes made from our own estimates


@dataclass(frozen=True)
class FaceEstimate:
    box: np.ndarray            # (4,) square face box the last pass cropped around
    landmarks: np.ndarray      # (68, 2) pixels in the input image
    confidence: float          # posterior mass of classes within tau of the estimate
    classes: np.ndarray        # top-k class ids, most probable first
    probs: np.ndarray          # their probabilities, renormalised over the top k
    log_probs: np.ndarray | None = None   # (K,) log-softmax over all classes, when kept
    classified: np.ndarray | None = None  # (68, 2) the classifier's own estimate, when regressors moved it
    features: np.ndarray | None = None    # the confidence's features (tracker.distribution.confidence), when asked for


@dataclass(eq=False)
class Classified:
    """One classifier pass over crops cut around ``boxes``, read: the landmarks, the box they
    suggest, how far that moved from the crop's, and where to crop next. The confidence (and
    its features) is worked out when first asked for."""

    boxes: np.ndarray          # (N, 4) the boxes the crops were cut around
    post: Posterior
    canon: np.ndarray          # (N, 68, 2) landmarks in the canonical frame (the posterior mean)
    points: np.ndarray         # (N, 68, 2) landmarks in pixels
    own_boxes: np.ndarray      # (N, 4) the face box of the landmarks (calibrated: Landmarker.box_from_landmarks)
    next_boxes: np.ndarray     # (N, 4) where each face is cropped next: the box refinement's box, else own_boxes
    drift: np.ndarray          # (N,) how far own_boxes moved from the crop's box (box sides)
    rate: Callable = field(repr=False)   # (post, canon, drift) -> (confidence, features): Landmarker.confidence

    @cached_property
    def _rated(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rate(self.post, self.canon, self.drift)

    @property
    def confidence(self) -> np.ndarray:
        """(N,) the probability that each estimate is right (:meth:`Landmarker.confidence`)."""
        return self._rated[0]

    @property
    def features(self) -> np.ndarray:
        """(N, F) the confidence's features."""
        return self._rated[1]

    def replace_rows(self, rows: np.ndarray, again: "Classified") -> None:
        """Put ``again`` (a pass over the faces ``rows`` once more) in those rows, in place."""
        self.confidence[rows], self.features[rows] = again.confidence, again.features
        for name in ("boxes", "canon", "points", "own_boxes", "next_boxes", "drift"):
            getattr(self, name)[rows] = getattr(again, name)
        self.post.classes[rows], self.post.probs[rows], self.post.mass[rows] = \
            again.post.classes, again.post.probs, again.post.mass
        if self.post.log_probs is not None:
            self.post.log_probs[rows] = again.post.log_probs


def posterior_confidence(post: Posterior, templates: np.ndarray, estimate: np.ndarray, tau: float) -> np.ndarray:
    """Softmax mass of the kept classes whose template lies within tau of the estimate."""
    near = rms_distance(templates[post.classes], estimate[:, None]) <= tau     # (N, k)
    return (post.probs * post.mass[:, None] * near).sum(1)


def mirror_canonical(shapes: np.ndarray) -> np.ndarray:
    """Shapes of left-right mirrored crops mapped back (the canonical frame is centred on 0)."""
    out = shapes[..., MIRROR, :].copy()
    out[..., 0] *= -1
    return out


class Landmarker:
    """Faces and their 68 landmarks in single images."""

    def __init__(self, model: LandmarkModel, detectors: Sequence[Detector] = (), device="cpu",
                 top_k: int = 50, passes: int = 2, flip_average: bool = False, keep_log_probs: bool = False,
                 fallback: Sequence[Detector] = (), regressors: str = "video", box_refinement: bool = True):
        """``regressors``: which cascade moves the classifier's landmarks: "video", "stills" or
        "off"; ``box_refinement``: the model's box refinement between classifier passes (off:
        each pass crops around the landmarks' own box). Either is off where the model has none."""
        self.model = model
        self.cascade = None if regressors == "off" else model.regressors(regressors)   # after the classifier
        self.box_refiner = model.box_refiner if box_refinement else None              # between passes
        self.detectors = list(detectors)
        self.fallback = list(fallback)             # tried on still images when the detectors find nothing
        self._detecting = threading.Lock()         # dlib's detectors are not safe from two threads at once
        self.device = device                       # torch's device, for a torch network
        self.top_k = top_k
        self.passes = passes
        self.flip_average = flip_average
        self.keep_log_probs = keep_log_probs       # the full distribution, for the HMM
        self.calibrations = {d.name: BoxCalibration.from_dict(model.calibration[d.name])
                             if d.name in model.calibration else BoxCalibration.identity(d.name)
                             for d in self.detectors + self.fallback}
        # Our own estimates run slightly small; this maps their box to the face box (facetrack calibrate).
        self.landmark_calibration = BoxCalibration.from_dict(model.calibration[LANDMARK_BOXES]) \
            if LANDMARK_BOXES in model.calibration else BoxCalibration.identity(LANDMARK_BOXES)
        if model.backend == "torch":
            import torch
            self.device = torch.device(device)
            model.network.to(memory_format=torch.channels_last)   # ~1.8x faster convolutions on CPU
        # Crops cut on the network's device from uploaded frames (roi_align; for a GPU, torch backend only).
        self.device_crops = False
        self.crops_classified = 0                  # crops through classify(), for the stage counts
        self.crop_size = model.model_config.crop_size
        self.margin = model.model_config.margin

    def face_boxes(self, image: np.ndarray, upsample: int | None = None, fallback: bool = False,
                   scale: float = 1.0) -> np.ndarray:
        """Faces as calibrated square boxes (N, 4), best first, from the first detector that finds any
        (the fallback detectors last, when ``fallback``). ``scale`` resizes the image for the
        detectors first (1.3 lets dlib's HOG at upsample 0 find faces of ~40 px for 1.8x its cost)."""
        if not self.detectors:
            raise RuntimeError("this Landmarker has no detector; pass boxes to from_boxes()")
        if scale != 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        for detector in self.detectors + (self.fallback if fallback else []):
            with self._detecting:
                rows = detector.detect(image, None if detector in self.fallback else upsample)
            if len(rows):
                if scale != 1.0:
                    rows = rows.copy()
                    rows[:, :4] /= scale
                return self.calibrations[detector.name].apply(rows).reshape(-1, 4)
        return np.zeros((0, 4))

    def box_from_landmarks(self, points: np.ndarray) -> np.ndarray:
        """The face box to crop around next, given landmarks estimated by this model."""
        return self.landmark_calibration.apply(landmark_box(points))

    def crops(self, image: np.ndarray, boxes: np.ndarray):
        """Classifier inputs (N, S, S, 3) BGR around ``boxes``: uint8 NumPy, or float32 on the
        network's device when ``device_crops`` is on."""
        return self.crops_of([image], [boxes])

    def crops_of(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]):
        """The crops around ``boxes[i]`` of ``images[i]``, in order (as :meth:`crops`)."""
        if self.device_crops:
            from tracker.geometry.device_crop import device_crops
            return device_crops(images, boxes, self.crop_size, self.margin, self.device)
        parts = []
        for image, rows in zip(images, boxes):
            crops, _ = crop_batch(image, rows, self.crop_size, self.margin)
            parts.append(np.repeat(crops[..., None], 3, axis=-1) if crops.ndim == 3 else crops)
        return np.concatenate(parts) if parts else np.zeros((0, self.crop_size, self.crop_size, 3), np.uint8)

    def classify_crops(self, crops: np.ndarray, embeddings: list | None = None) -> tuple[Posterior, np.ndarray]:
        """Posterior and canonical landmarks (N, 68, 2) for a batch of crops; the network's
        embeddings (N, D) are appended to ``embeddings`` when a list is given."""
        if embeddings is None:
            scores = self.scores(crops)
        else:
            features, scores = self.scores(crops, embed=True)
            embeddings.append(features)
        post = top_k_posterior(scores, self.top_k, self.keep_log_probs)
        canon = expected_shape(post, self.model.templates)
        if self.flip_average:
            mirrored = self.scores(crops.flip(2) if hasattr(crops, "flip") else np.ascontiguousarray(crops[:, :, ::-1]))
            canon = (canon + mirror_canonical(expected_shape(top_k_posterior(mirrored, self.top_k),
                                                             self.model.templates))) / 2
        return post, canon

    def classify(self, crops, boxes: np.ndarray, refine_box: bool = True) -> Classified:
        """The classifier on ``crops`` cut around ``boxes`` (N, 4), read: landmarks, the box
        they suggest, its drift from the crop's, and where to crop next: the box refinement's
        box when ``refine_box`` and the model has one, else the landmarks' own box."""
        self.crops_classified += len(crops)
        refiner = self.box_refiner if refine_box else None
        embeddings = [] if refiner is not None else None
        post, canon = self.classify_crops(crops, embeddings)
        points = from_canonical(canon, boxes)
        own_boxes = self.box_from_landmarks(points)
        drift = box_drift(boxes, own_boxes)
        # The box refinement reads where the face is from the crop's embedding; the
        # landmarks' own box is pulled towards the crop, so following it lags a moving face.
        next_boxes = own_boxes if refiner is None else refiner.apply(embeddings[0], boxes)
        return Classified(boxes, post, canon, points, own_boxes, next_boxes, drift, self.confidence)

    def scores(self, crops: np.ndarray, embed: bool = False):
        """The network's class scores (N, K) for crops (N, S, S, 3) uint8 BGR, as a NumPy array
        (OpenCV backend) or a torch tensor on the model's device; ``embed``: (embeddings as a
        NumPy array, scores)."""
        network = self.model.network
        if self.model.backend == "opencv":
            return network.embed(crops) if embed else network(crops)
        import torch
        with torch.inference_mode():
            batch = crops if torch.is_tensor(crops) else torch.from_numpy(crops).to(self.device)
            if not embed:
                return network(batch)
            features, scores = network.embed(batch)
            return features.float().cpu().numpy(), scores

    def confidence(self, post: Posterior, canon: np.ndarray, drift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(confidence (N,), features (N, F)) of each estimate: with the model's confidence
        calibration, the probability that the face is within the failure threshold
        (:mod:`tracker.distribution.confidence`); without, the posterior mass near the estimate.
        ``drift``: how far the landmarks' box moved from the crop's box (box sides)."""
        near = posterior_confidence(post, self.model.templates, canon, self.model.tau)
        features = posterior_features(post, canon, self.model.templates, near, drift)
        calibration = self.model.confidence
        return (near if calibration is None else calibration.probability(features)), features

    def regress(self, image: np.ndarray, points: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Landmarks (N, 68, 2) moved by the cascade of each face's pose class (as they are without one)."""
        if self.cascade is None or len(points) == 0:
            return points
        out = self.cascade.apply(image, points, classes)
        if self.flip_average:           # the mirrored face regressed too, mapped back and averaged
            width = image.shape[1]
            mirrored = self.cascade.apply(np.ascontiguousarray(image[:, ::-1]),
                                           flip_horizontal(np.asarray(points, np.float64), width), classes)
            out = (out + flip_horizontal(mirrored, width)) / 2
        return out

    def from_boxes(self, image: np.ndarray, boxes: np.ndarray, regress: bool = True,
                   features: bool = False, hopeless: float = 0.0) -> list[FaceEstimate]:
        """Faces in ``boxes``: ``passes`` classifier passes, then the regressors (unless ``regress`` is false);
        ``features`` keeps the confidence's features on each estimate.

        Each pass after the first crops around the box the previous pass suggests: the
        detection refinement's box after the first (when the model has one), else the box
        of the previous landmarks. A face whose first pass is less sure than ``hopeless``
        gets no more passes."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        faces = self.classify(self.crops(image, boxes), boxes, refine_box=True)
        again = np.flatnonzero(faces.confidence >= hopeless)
        for _ in range(1, self.passes):
            if len(again) == 0:
                break
            boxes = faces.next_boxes[again]
            faces.replace_rows(again, self.classify(self.crops(image, boxes), boxes, refine_box=False))
        points, post, conf, feats = faces.points, faces.post, faces.confidence, faces.features
        final = self.regress(image, points, post.classes[:, 0]) if regress else points
        return [FaceEstimate(box=faces.boxes[i], landmarks=final[i], confidence=float(conf[i]),
                             classes=post.classes[i], probs=post.probs[i],
                             log_probs=None if post.log_probs is None else post.log_probs[i],
                             classified=points[i] if final is not points else None,
                             features=feats[i] if features else None)
                for i in range(len(faces.boxes))]

    def __call__(self, image: np.ndarray) -> list[FaceEstimate]:
        """The faces of a still image, the fallback detectors tried when the others find none."""
        return self.from_boxes(image, self.face_boxes(image, fallback=True))
