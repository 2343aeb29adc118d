"""What the tracker hands out: one :class:`FrameResult` per frame, one :class:`FaceResult` per face.

Plain data: made by the engine (:mod:`tracker.inference.engine`), the temporal stage and
the still-image path, read by the sinks, the evaluation and the apps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tracker.distribution.uncertainty import Uncertainty
    from tracker.io.sources import Frame


@dataclass(frozen=True)
class FaceResult:
    face_id: int
    landmarks: np.ndarray      # (68, 2) pixels
    confidence: float          # probability the estimate is within the failure threshold (tracker.distribution.confidence)
    box: np.ndarray            # (4,) square box the crop was cut around
    classes: np.ndarray        # top-k class ids, most probable first
    probs: np.ndarray          # their probabilities (renormalised over the k)
    detected: bool = False     # True on a frame a detector found this face ((re)started it, or saw it while held)
    log_probs: np.ndarray | None = None   # (K,) log-softmax over all classes (for the HMM, which drops it)
    held: bool = False         # confidence below the loss threshold; kept for the HMM to carry
    carried: bool = False      # not classified on this frame (tracking.classify_every): followed by optical flow
    pose_class: int = -1       # the HMM's decoded pose class (-1 before or without decoding)
    uncertainty: Uncertainty | None = None   # head pose and landmark spread (tracker.distribution.uncertainty), set by the API

    @classmethod
    def from_estimate(cls, estimate, face_id: int) -> "FaceResult":
        """A freshly detected face from a :class:`tracker.inference.landmarker.FaceEstimate`."""
        return cls(face_id, estimate.landmarks, estimate.confidence, estimate.box, estimate.classes,
                   estimate.probs, detected=True, log_probs=estimate.log_probs)


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    faces: tuple[FaceResult, ...]

    @property
    def index(self) -> int:
        """The frame number, 1-based (file order for image folders)."""
        return self.frame.index

    @property
    def timestamp(self) -> float:
        """Seconds from the stream's start (its pts), 0 for images."""
        return self.frame.timestamp

    @property
    def image(self) -> np.ndarray:
        """The frame itself, HxWx3 uint8 BGR."""
        return self.frame.image
