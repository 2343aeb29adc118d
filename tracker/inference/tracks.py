"""The faces being followed (*tracks*) and the ones recently lost, whose ids may come back.

A track's crop on the next frames is cut around the box of its latest landmarks, moved by
the box's recent velocity (:meth:`Tracks.predicted_boxes`). A lost track's id is given
again to a face found at its place in the same shot (:meth:`Tracks.id_for`) until it is
forgotten, ``forget_after`` frames later (:data:`IDENTITY_MEMORY` times longer when its
identity descriptor is known). Where two tracks converge on one face the older id stays.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tracker.geometry.boxes import iou, landmark_box
from tracker.results import FaceResult

SAME_FACE_IOU = 0.3        # a detection overlapping a tracked face this much is that face
DUPLICATE_IOU = 0.5        # two tracks overlapping this much follow the same face
IDENTITY_MEMORY = 10       # a lost face known by its identity descriptor is kept this many times longer


@dataclass(eq=False)          # tracks are compared by identity (list.remove, `in`)
class Track:
    face_id: int
    box: np.ndarray            # landmark box of the latest estimate
    velocity: np.ndarray       # box shift per frame (smoothed; x, y repeated for both corners)
    last_frame: int
    followed: int = 0          # frames followed since the detector started it
    low: int = 0               # consecutive frames with confidence below the loss threshold
    shot: int = 0              # the shot (count of cuts before it) it was seen in
    landmarks: np.ndarray | None = None   # its latest estimate (for an identity check at a cut)
    descriptor: np.ndarray | None = None  # who it is (tracker.detection.identity), taken at cuts only
    face: FaceResult | None = None   # its latest classified estimate (what a frame it is carried through reports)
    carried_for: int = 0       # frames carried since it was last classified (tracking.classify_every)
    faint: bool = False        # a detection the classifier was not convinced by: carried by optical flow
                               # alone, the detector looking again every few frames

    def move(self, box: np.ndarray, frame: int) -> None:
        """The face was followed to ``box`` on ``frame``."""
        shift = (box[:2] + box[2:] - self.box[:2] - self.box[2:]) / 2
        # Only the centre moves with the velocity: extrapolating the size would feed the
        # classifier's pull towards the mean face size back into the next crop.
        # The first step sets the velocity (smoothing it from zero would leave it a quarter
        # short after two frames, which a batch of extrapolated crops multiplies).
        step = np.tile(shift, 2)
        self.velocity = step if self.followed == 0 else 0.5 * self.velocity + 0.5 * step
        self.box = box
        self.last_frame = frame
        self.followed += 1

    @property
    def confidence(self) -> float:
        """Of its latest classified estimate (1 before it has one)."""
        return 1.0 if self.face is None else self.face.confidence

    def carried(self, landmarks: np.ndarray, frame: int) -> FaceResult:
        """A frame the face is not classified on: its latest estimate moved to ``landmarks``
        (followed by optical flow), without pose evidence (for the HMM)."""
        shift = landmarks.mean(0) - self.landmarks.mean(0)
        self.landmarks = landmarks
        self.move(self.box + np.tile(shift, 2), frame)
        self.carried_for += 1
        self.face = dataclasses.replace(self.face, landmarks=self.landmarks, box=self.box, detected=False,
                                        log_probs=None, carried=True)
        return self.face

    def hold(self, box: np.ndarray, frame: int) -> None:
        """Keep an uncertain face where it was: its own estimate is not trusted to move the crop."""
        self.box = np.asarray(box, dtype=np.float64)
        self.velocity = np.zeros(4)
        self.last_frame = frame


class Tracks:
    """The live tracks, in the order they were started, and the recently lost ones."""

    def __init__(self):
        self.live: list[Track] = []
        self.lost: list[Track] = []           # recently lost faces, for keeping their ids
        self.next_id = 0
        self.shot = 0                         # cuts seen so far

    def boxes(self) -> list[np.ndarray]:
        """The live tracks' boxes."""
        return [t.box for t in self.live]

    def steady(self, shaky: float) -> bool:
        """Every track was followed for two frames (batches predict boxes from the velocity),
        and none is less sure than ``shaky`` (one about to be lost would end a batch early)."""
        return bool(self.live) and all(t.faint or (t.followed >= 2 and t.confidence >= shaky) for t in self.live)

    def predicted_boxes(self, frames: int) -> np.ndarray:
        """(frames, tracks, 4): each live track's box on the next ``frames`` frames, moved by its velocity."""
        steps = np.arange(1, frames + 1)[:, None, None]
        return np.stack([t.box for t in self.live])[None] + steps * np.stack([t.velocity for t in self.live])[None]

    def end_shot(self) -> None:
        """A cut: every live track ends (lost, its id kept for identity checks), a new shot begins."""
        self.lost += self.live
        self.live = []
        self.shot += 1

    def start(self, track: Track, follow: bool) -> None:
        """A face the detector found: followed, or (``follow`` false: an unconvincing
        detection, reported but not followed) its id waiting among the lost."""
        (self.live if follow else self.lost).append(track)

    def stop(self, track: Track) -> None:
        """End a live track without keeping it among the lost (a detection restarts it under its id)."""
        self.live.remove(track)

    def lose(self, track: Track) -> None:
        self.live.remove(track)
        self.lost.append(track)

    def recall(self, track: Track) -> None:
        """A lost track's id was given again (its face was recognised): no longer waiting."""
        self.lost = [t for t in self.lost if t is not track]

    def forget(self, frame: int, forget_after: int) -> None:
        """Drop the lost tracks not seen for ``forget_after`` frames (``IDENTITY_MEMORY`` times
        longer for one whose identity descriptor is known)."""
        self.lost = [t for t in self.lost if frame - t.last_frame <=
                     forget_after * (IDENTITY_MEMORY if t.descriptor is not None else 1)]

    def drop_duplicates(self, faces: list[FaceResult]) -> list[FaceResult]:
        """Where two tracks converged on one face, keep the older id: ``faces`` without the
        younger one, whose track ends."""
        keep: list[FaceResult] = []
        for face in sorted(faces, key=lambda f: f.face_id):
            if any(iou(landmark_box(face.landmarks), landmark_box(k.landmarks)) > DUPLICATE_IOU for k in keep):
                self.live = [t for t in self.live if t.face_id != face.face_id]
                continue
            keep.append(face)
        return keep

    def id_for(self, box: np.ndarray) -> int:
        """The id of a face recently lost at this place in this shot, else a new one."""
        here = [t for t in self.lost if t.shot == self.shot]
        if here:
            overlaps = [iou(box, t.box) for t in here]
            best = int(np.argmax(overlaps))
            if overlaps[best] > SAME_FACE_IOU:
                self.lost.remove(here[best])
                return here[best].face_id
        self.next_id += 1
        return self.next_id - 1


def untracked(boxes: Sequence[np.ndarray], tracked: Sequence[FaceResult], taken=()) -> list[np.ndarray]:
    """The detections that overlap none of the ``tracked`` faces' landmark boxes, nor the boxes
    ``taken`` (IoU > SAME_FACE_IOU)."""
    taken = [landmark_box(f.landmarks) for f in tracked] + list(taken)
    return [b for b in boxes if not any(iou(b, t) > SAME_FACE_IOU for t in taken)]


def largest_first(boxes: list[np.ndarray], room: int) -> list[np.ndarray]:
    """``boxes`` as they are when there is ``room`` for all, else the ``room`` largest (widest)."""
    return boxes if len(boxes) <= room else sorted(boxes, key=lambda b: b[0] - b[2])[:room]


def found_again(boxes: Sequence[np.ndarray], uncertain) -> dict[int, int]:
    """face_id -> index of the detection overlapping that uncertain face most (IoU > SAME_FACE_IOU);
    ``uncertain``: (track, face) pairs."""
    found: dict[int, int] = {}
    for track, face in uncertain:
        overlaps = [iou(b, face.box) for b in boxes]
        if overlaps and max(overlaps) > SAME_FACE_IOU and int(np.argmax(overlaps)) not in found.values():
            found[track.face_id] = int(np.argmax(overlaps))
    return found
