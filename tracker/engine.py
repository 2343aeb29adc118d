"""Frames in, faces out: the detector where needed, tracking by alignment in between.

A face found by the detector becomes a *track*. On the next frames its crop is cut
around the box of its previous landmarks (moved by the box's recent velocity), so the
detector is not run on every frame. Crops of several frames and faces go through the
classifier in one call. A track is lost when the classifier's own confidence (softmax
mass near its estimate) falls below ``lost_confidence``; the detector then scans that
frame, as it does every ``redetect_every`` frames for faces that entered the view.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .config import TrackingConfig
from .detect import iou
from .io.sources import Frame
from .landmarker import Landmarker
from .shapes import box_center_size, from_canonical, landmark_box

SAME_FACE_IOU = 0.3        # a detection overlapping a tracked face this much is that face
DUPLICATE_IOU = 0.5        # two tracks overlapping this much follow the same face


@dataclass(frozen=True)
class FaceResult:
    face_id: int
    landmarks: np.ndarray      # (68, 2) pixels
    confidence: float          # posterior mass of classes within tau of the estimate
    box: np.ndarray            # (4,) square box the crop was cut around
    classes: np.ndarray        # top-k class ids, most probable first
    probs: np.ndarray          # their probabilities (renormalised over the k)
    detected: bool = False     # True on the frame a detector (re)started this face


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    faces: tuple[FaceResult, ...]


@dataclass
class Track:
    face_id: int
    box: np.ndarray            # landmark box of the latest estimate
    velocity: np.ndarray       # box shift per frame (smoothed; x, y repeated for both corners)
    last_frame: int
    followed: int = 0          # frames followed since the detector started it


@dataclass
class StageTimes:
    """Wall seconds and counts per stage (for ``bin/bench``)."""

    seconds: dict = field(default_factory=lambda: defaultdict(float))
    counts: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        self.seconds[stage] += seconds
        self.counts[stage] += count


def box_drift(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """How far ``new`` boxes moved from ``old`` ones: max of centre shift and log-scale change, in box sides."""
    c0, s0 = box_center_size(old)
    c1, s1 = box_center_size(new)
    return np.maximum(np.linalg.norm(c1 - c0, axis=-1) / s0, np.abs(np.log(s1 / s0)))


class Engine:
    """Stateful face tracking over a stream of frames (call :meth:`process` in order)."""

    def __init__(self, landmarker: Landmarker, cfg: TrackingConfig = TrackingConfig()):
        self.landmarker = landmarker
        self.cfg = cfg
        self.times = StageTimes()
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self.lost: list[Track] = []           # recently lost faces, for keeping their ids
        self.next_id = 0
        self.frames_seen = 0
        self.last_scan = -10 ** 9

    # ------------------------------------------------------------------ public

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """Results for consecutive frames, in order."""
        frames = list(frames)
        results: list[FrameResult] = []
        while frames:
            chunk = frames[:self._frames_to_next_scan()] if self._velocities_known() else frames[:1]
            done = self._follow(chunk)
            results += done
            frames = frames[len(done):]
        return results

    # ------------------------------------------------------------------ scheduling

    def _frames_to_next_scan(self) -> int:
        """How many frames to follow before the periodic scan (the scan frame included)."""
        every = self.cfg.redetect_every
        if every <= 0:
            return 10 ** 9
        return max(1, every - (self.frames_seen - self.last_scan))

    def _velocities_known(self) -> bool:
        """Every track was followed for two frames (batches predict boxes from the velocity)."""
        return bool(self.tracks) and all(t.followed >= 2 for t in self.tracks)

    def _scan_due(self) -> bool:
        every = self.cfg.redetect_every
        return not self.tracks or (every > 0 and self.frames_seen - self.last_scan >= every)

    # ------------------------------------------------------------------ following

    def _classify(self, crops: np.ndarray, boxes: np.ndarray):
        start = time.perf_counter()
        post, canon = self.landmarker.classify_crops(crops)
        conf = self.landmarker.confidence(post, canon)
        self.times.add("classify", time.perf_counter() - start, len(crops))
        return post, from_canonical(canon, boxes), conf

    def _crops(self, frames: Sequence[Frame], boxes: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        crops = np.concatenate([self.landmarker.crops(f.image, b) for f, b in zip(frames, boxes)])
        self.times.add("crop", time.perf_counter() - start, len(crops))
        return crops

    def _follow(self, chunk: Sequence[Frame]) -> list[FrameResult]:
        """Follow the tracks through ``chunk``; stops early after a frame where a face was lost.

        The chunk's crops come from each track's last box moved by its velocity; crops whose
        landmarks drifted more than ``refine_drift`` from the crop are classified again
        around the new landmarks (one more batched call).
        """
        n_tracks, n_frames = len(self.tracks), len(chunk)
        if n_tracks:
            steps = np.arange(1, n_frames + 1)[:, None, None]
            boxes = np.stack([t.box for t in self.tracks])[None] + steps * np.stack([t.velocity for t in self.tracks])[None]
            flat_boxes = boxes.reshape(-1, 4)
            post, points, conf = self._classify(self._crops(chunk, boxes), flat_boxes)
            redo = np.flatnonzero(box_drift(flat_boxes, self.landmarker.box_from_landmarks(points))
                                  > self.cfg.refine_drift)
            if len(redo):
                new_boxes = self.landmarker.box_from_landmarks(points[redo])
                frame_of = redo // n_tracks
                crops = np.concatenate([self.landmarker.crops(chunk[f].image, b[None]) for f, b in zip(frame_of, new_boxes)])
                p2, pts2, c2 = self._classify(crops, new_boxes)
                flat_boxes[redo], points[redo], conf[redo] = new_boxes, pts2, c2
                post.classes[redo], post.probs[redo] = p2.classes, p2.probs
        results = []
        for j, frame in enumerate(chunk):
            faces, lost_any = [], False
            for t_index, track in enumerate(list(self.tracks)):
                i = j * n_tracks + t_index
                if conf[i] < self.cfg.lost_confidence:
                    self._lose(track)
                    lost_any = True
                    continue
                faces.append(FaceResult(track.face_id, points[i], float(conf[i]), flat_boxes[i],
                                        post.classes[i], post.probs[i]))
                self._update(track, points[i])
            self.frames_seen += 1
            faces = self._drop_duplicates(faces)
            if lost_any or self._scan_due():
                faces += self._scan(frame, faces)
            results.append(FrameResult(frame, tuple(sorted(faces, key=lambda f: f.face_id))))
            if lost_any:
                break
        return results

    def _update(self, track: Track, points: np.ndarray) -> None:
        box = self.landmarker.box_from_landmarks(points)
        shift = (box[:2] + box[2:] - track.box[:2] - track.box[2:]) / 2
        # Only the centre moves with the velocity: extrapolating the size would feed the
        # classifier's pull towards the mean face size back into the next crop.
        track.velocity = 0.5 * track.velocity + 0.5 * np.tile(shift, 2)
        track.box = box
        track.last_frame = self.frames_seen
        track.followed += 1

    def _lose(self, track: Track) -> None:
        self.tracks.remove(track)
        self.lost.append(track)

    def _drop_duplicates(self, faces: list[FaceResult]) -> list[FaceResult]:
        """Where two tracks converged on one face, keep the older id."""
        keep: list[FaceResult] = []
        for face in sorted(faces, key=lambda f: f.face_id):
            if any(iou(landmark_box(face.landmarks), landmark_box(k.landmarks)) > DUPLICATE_IOU for k in keep):
                self.tracks = [t for t in self.tracks if t.face_id != face.face_id]
                continue
            keep.append(face)
        return keep

    # ------------------------------------------------------------------ detection

    def _scan(self, frame: Frame, tracked: list[FaceResult]) -> list[FaceResult]:
        """Run the detector; faces not already tracked get a track (an old id if one was lost there)."""
        start = time.perf_counter()
        # While faces are followed, a periodic scan only looks for newcomers: the cheaper setting.
        boxes = self.landmarker.face_boxes(frame.image, self.cfg.scan_upsample if tracked else None)
        self.times.add("detect", time.perf_counter() - start)
        self.last_scan = self.frames_seen
        self.lost = [t for t in self.lost if self.frames_seen - t.last_frame <= self.cfg.forget_after]
        taken = [landmark_box(f.landmarks) for f in tracked]
        boxes = [b for b in boxes if not any(iou(b, t) > SAME_FACE_IOU for t in taken)]
        boxes = boxes[:max(0, self.cfg.max_faces - len(tracked))]
        if not boxes:
            return []
        start = time.perf_counter()
        estimates = self.landmarker.from_boxes(frame.image, np.stack(boxes))
        self.times.add("classify", time.perf_counter() - start, len(boxes) * max(1, self.landmarker.passes))
        new_faces = []
        for est in estimates:
            box = self.landmarker.box_from_landmarks(est.landmarks)
            face_id = self._id_for(box)
            track = Track(face_id, box, np.zeros(4), self.frames_seen)
            # An unconvincing detection is reported but not followed; its id waits in `lost`.
            (self.tracks if est.confidence >= self.cfg.lost_confidence else self.lost).append(track)
            new_faces.append(FaceResult(face_id, est.landmarks, est.confidence, est.box, est.classes,
                                        est.probs, detected=True))
        return new_faces

    def _id_for(self, box: np.ndarray) -> int:
        """The id of a recently lost face at this place, else a new one."""
        if self.lost:
            overlaps = [iou(box, t.box) for t in self.lost]
            best = int(np.argmax(overlaps))
            if overlaps[best] > SAME_FACE_IOU:
                return self.lost.pop(best).face_id
        self.next_id += 1
        return self.next_id - 1
