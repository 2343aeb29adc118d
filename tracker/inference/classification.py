"""The followed faces of several frames through the classifier in one batch.

Each face's crop is cut around the box its track predicts; a face whose landmarks
drifted more than ``reclassify_drift`` (box sides) from the crop is cropped again around
the box they suggest and classified once more (one more batched call for all of them).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tracker.config import TrackingConfig
from tracker.inference.landmarker import Classified, Landmarker
from tracker.timing import StageTimes, timed


class FollowedFaces:
    """Batched classification of followed faces, timed as "crop" and "classify"."""

    def __init__(self, landmarker: Landmarker, cfg: TrackingConfig, times: StageTimes | None = None):
        self.landmarker = landmarker
        self.cfg = cfg
        self.times = times

    def __call__(self, images: Sequence[np.ndarray], boxes: np.ndarray, wanted: np.ndarray | None = None) -> Classified:
        """The faces cropped around ``boxes`` (frames, faces, 4) of ``images`` (one per frame),
        frame-major: row ``j * faces + i`` is face ``i`` on frame ``j``; with ``wanted``
        (frames, faces) bool, only those faces, in the same order."""
        wanted = np.ones(boxes.shape[:2], bool) if wanted is None else wanted
        with timed(self.times, "crop") as step:
            crops = self.landmarker.crops_of(images, [b[w] for b, w in zip(boxes, wanted)])
            step.count = len(crops)
        faces = self.classify(crops, boxes[wanted])
        redo = np.flatnonzero(faces.drift > self.cfg.reclassify_drift)
        if len(redo):
            new_boxes = faces.next_boxes[redo]
            frame_of = np.nonzero(wanted)[0][redo]
            crops = self.landmarker.crops_of([images[f] for f in frame_of], list(new_boxes[:, None]))
            faces.replace_rows(redo, self.classify(crops, new_boxes))
        return faces

    def classify(self, crops, boxes: np.ndarray) -> Classified:
        """One pass over ``crops`` cut around ``boxes`` (N, 4), its confidence worked out;
        the next boxes follow the box refinement when ``follow_box_refinement`` is on."""
        with timed(self.times, "classify", len(crops)):
            faces = self.landmarker.classify(crops, boxes, refine_box=self.cfg.follow_box_refinement)
            faces.confidence                      # worked out here, timed with the pass
        return faces
