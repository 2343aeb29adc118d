"""Frames in, faces out: the detector where needed, tracking by alignment in between.

A face found by the detector becomes a *track*. On the next frames its crop is cut
around the box of its previous landmarks (moved by the box's recent velocity), so the
detector is not run on every frame. Crops of several frames and faces go through the
classifier in one call. A track is lost when its confidence (the calibrated probability
that the estimate is right, :mod:`tracker.distribution.confidence`) falls below ``lost_confidence``; the detector then scans that
frame, as it does every ``redetect_every`` frames for faces that entered the view.

A frame marked as a cut (:mod:`tracker.inference.cuts`) starts a new shot: every track ends (nothing
is followed across it, no batch spans it), and the detector scans the frame at the
fresh-detection setting, with the still-image fallback for image files. A face the scan
finds gets the id of a face of an earlier shot only when dlib's face recognition says
it is the same person (:mod:`tracker.detection.identity`, asked at cuts only; without dlib, never);
an id lost before a cut is never given by position to a face after it.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tracker.config import TrackingConfig
from tracker.detection.identity import SAME_PERSON
from tracker.distribution.uncertainty import Uncertainty
from tracker.geometry.boxes import box_drift, iou, landmark_box
from tracker.geometry.shapes import from_canonical
from tracker.inference.cuts import cells_outside, changed_cells
from tracker.inference.landmarker import Landmarker
from tracker.io.sources import Frame

SAME_FACE_IOU = 0.3        # a detection overlapping a tracked face this much is that face
DUPLICATE_IOU = 0.5        # two tracks overlapping this much follow the same face
IDENTITY_MEMORY = 10       # a lost face known by its identity descriptor is kept this many times longer
SCAN_DELAY = 8             # frames from starting a newcomer scan on the worker thread to using its result
                           # (at most half of redetect_every, so that one scan ends before the next)
LARGE_FACE = 100           # px: a face box this large is found by dlib's HOG without upsampling
QUIET_CHANGE = 6.0         # grey levels: a cell outside the tracked faces that moved less is unchanged
QUIET_SKIPS = 3            # periodic scans skipped at most in a row while nothing changes outside the faces
LEAVING = 0.25             # a face in doubt with this share of its box outside the frame is not looked for


@dataclass(frozen=True)
class FaceResult:
    face_id: int
    landmarks: np.ndarray      # (68, 2) pixels
    confidence: float          # probability the estimate is within the failure threshold (tracker.distribution.confidence)
    box: np.ndarray            # (4,) square box the crop was cut around
    classes: np.ndarray        # top-k class ids, most probable first
    probs: np.ndarray          # their probabilities (renormalised over the k)
    detected: bool = False     # True on the frame a detector (re)started this face
    log_probs: np.ndarray | None = None   # (K,) log-softmax over all classes (for the HMM, which drops it)
    held: bool = False         # confidence below the loss threshold; kept for the HMM to carry
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


@dataclass
class StageTimes:
    """Wall seconds and counts per stage (for ``facetrack bench``)."""

    seconds: dict = field(default_factory=lambda: defaultdict(float))
    counts: dict = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        with self._lock:                 # added to from the engine's thread and the temporal stage's
            self.seconds[stage] += seconds
            self.counts[stage] += count


class Engine:
    """Stateful face tracking over a stream of frames (call :meth:`process` in order)."""

    def __init__(self, landmarker: Landmarker, cfg: TrackingConfig = TrackingConfig(), hold_frames: int = 0,
                 regress: bool = True, identity=None):
        """``hold_frames``: how long a face with low confidence is kept (its box frozen) before
        it counts as lost; worth it only when the HMM carries the pose through (occlusion).
        ``regress``: apply the landmarker's regressors to each frame's estimates (off when a
        temporal stage applies them after decoding). Crops always follow the classifier's
        own estimates, which the box calibration was fitted on."""
        self.landmarker = landmarker
        self.cfg = cfg
        self.hold_frames = hold_frames
        self.regress = regress
        self.identity = identity              # a tracker.detection.identity.FaceIdentity, or None: no id crosses a cut
        self.times = StageTimes()
        self._worker = None                   # the thread newcomer scans run on, started by the first
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self.lost: list[Track] = []           # recently lost faces, for keeping their ids
        self.next_id = 0
        self.frames_seen = 0
        self.last_scan = -10 ** 9
        self.shot = 0                         # cuts seen so far
        self._shape = None                    # frame size of the current scene
        self._last_image = None               # the latest frame (the tracks' side of a cut)
        self._pending = None                  # (future of a newcomer scan's boxes, frame number to use them at)
        self._scan_cells = None               # the frame summary at the last scan (what a newcomer would change)
        self._skipped = 0                     # periodic scans skipped in a row

    def close(self) -> None:
        """Stop the scan worker thread (after the scan in progress, whose result is dropped)."""
        self._drop_pending()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    def _drop_pending(self) -> None:
        """Forget the newcomer scan in progress, once it is over: the detectors are not safe to
        run from two threads at once."""
        if self._pending is not None:
            self._pending[0].exception()          # waits; a failed scan is simply dropped
            self._pending = None

    # ------------------------------------------------------------------ public

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """Results for consecutive frames, in order."""
        frames = list(frames)
        results: list[FrameResult] = []
        while frames:
            self._new_shot_if_cut(frames[0])
            limit = self._frames_to_next_scan() if self._velocities_known() else 1
            chunk = frames[:1] + list(itertools.takewhile(
                lambda f: not f.cut and f.image.shape[:2] == self._shape, frames[1:limit]))
            done = self._follow(chunk)
            results += done
            frames = frames[len(done):]
        return results

    def _new_shot_if_cut(self, frame: Frame) -> None:
        """A cut, or a frame of another size, starts a new shot: every track ends there."""
        shape = frame.image.shape[:2]
        if self._shape is not None and (frame.cut or self._shape != shape):
            if self.identity is not None and not frame.name:
                self._describe(self.tracks)
            self.lost += self.tracks
            self.tracks = []
            self.shot += 1
            self._drop_pending()                  # a scan of the last shot finds nothing for this one
        self._shape = shape

    # ------------------------------------------------------------------ scheduling

    def _frames_to_next_scan(self) -> int:
        """How many frames to follow before the next scan starts or a scan's result is used
        (that frame included): tracks change only at the end of a chunk."""
        every = self.cfg.redetect_every
        limit = 10 ** 9 if every <= 0 else max(1, every - (self.frames_seen - self.last_scan))
        if self._pending is not None:
            limit = min(limit, max(1, self._pending[1] - self.frames_seen))
        return limit

    def _velocities_known(self) -> bool:
        """Every track was followed for two frames (batches predict boxes from the velocity)."""
        return bool(self.tracks) and all(t.followed >= 2 for t in self.tracks)

    def _scan_due(self) -> bool:
        every = self.cfg.redetect_every
        return not self.tracks or (every > 0 and self.frames_seen - self.last_scan >= every)

    # ------------------------------------------------------------------ following

    def _classify(self, crops: np.ndarray, boxes: np.ndarray):
        """Posterior, landmarks, confidence, the box each face goes to next, and how far the
        landmarks' own box moved from the crop's (box sides)."""
        start = time.perf_counter()
        refiner = self.landmarker.box_refiner if self.cfg.follow_box_refinement else None
        embeddings = [] if refiner is not None else None
        post, canon = self.landmarker.classify_crops(crops, embeddings)
        points = from_canonical(canon, boxes)
        own_boxes = self.landmarker.box_from_landmarks(points)
        drift = box_drift(boxes, own_boxes)
        conf, _ = self.landmarker.confidence(post, canon, drift)
        # The detection refinement reads where the face is from the crop's embedding; the
        # landmarks' own box is pulled towards the crop, so following it lags a moving face.
        next_boxes = own_boxes if refiner is None else refiner.apply(embeddings[0], boxes)
        self.times.add("classify", time.perf_counter() - start, len(crops))
        return post, points, conf, next_boxes, drift

    def _crops(self, frames: Sequence[Frame], boxes: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        crops = self.landmarker.crops_of([f.image for f in frames], list(boxes))
        self.times.add("crop", time.perf_counter() - start, len(crops))
        return crops

    def _follow(self, chunk: Sequence[Frame]) -> list[FrameResult]:
        """Follow the tracks through ``chunk``; stops early after a frame where a face was lost.

        The chunk's crops come from each track's last box moved by its velocity; crops whose
        landmarks drifted more than ``reclassify_drift`` from the crop are classified again
        around the new landmarks (one more batched call).
        """
        n_tracks, n_frames = len(self.tracks), len(chunk)
        if n_tracks:
            steps = np.arange(1, n_frames + 1)[:, None, None]
            boxes = np.stack([t.box for t in self.tracks])[None] + steps * np.stack([t.velocity for t in self.tracks])[None]
            flat_boxes = boxes.reshape(-1, 4)
            post, points, conf, next_boxes, drift = self._classify(self._crops(chunk, boxes), flat_boxes)
            redo = np.flatnonzero(drift > self.cfg.reclassify_drift)
            if len(redo):
                new_boxes = next_boxes[redo]
                frame_of = redo // n_tracks
                crops = self.landmarker.crops_of([chunk[f].image for f in frame_of], list(new_boxes[:, None]))
                p2, pts2, c2, next2, _ = self._classify(crops, new_boxes)
                flat_boxes[redo], points[redo], conf[redo], next_boxes[redo] = new_boxes, pts2, c2, next2
                post.classes[redo], post.probs[redo] = p2.classes, p2.probs
                if post.log_probs is not None:
                    post.log_probs[redo] = p2.log_probs
            points = self._regressed(chunk, points, post.classes[:, 0], n_tracks)
        results = []
        for j, frame in enumerate(chunk):
            faces, uncertain = [], []
            for t_index, track in enumerate(list(self.tracks)):
                i = j * n_tracks + t_index
                face = FaceResult(track.face_id, points[i], float(conf[i]), flat_boxes[i], post.classes[i],
                                  post.probs[i], log_probs=None if post.log_probs is None else post.log_probs[i])
                if conf[i] < self.cfg.lost_confidence:
                    uncertain.append((track, face))
                else:
                    track.low = 0
                    faces.append(face)
                    self._update(track, next_boxes[i])
                    track.landmarks = points[i]
            self.frames_seen += 1
            faces = self._drop_duplicates(faces)
            if uncertain or frame.cut or not self.tracks:
                self._drop_pending()
                faces += self._scan(frame, faces, uncertain, boxes=[] if self._held_only(frame, uncertain) else None)
            elif self._pending is not None and self._pending[1] == self.frames_seen:
                faces += self._scan(frame, faces, boxes=self._scan_result())
            elif self._scan_due() and self._pending is None:
                if self._quiet_since_scan(frame):
                    self.last_scan = self.frames_seen
                    self._skipped += 1
                else:
                    self._start_scan(frame)
            results.append(FrameResult(frame, tuple(sorted(faces, key=lambda f: f.face_id))))
            self._last_image = frame.image
            if uncertain:
                break          # the chunk's later crops were cut around boxes that are now stale
        return results

    def _regressed(self, chunk: Sequence[Frame], points: np.ndarray, classes: np.ndarray, n_tracks: int) -> np.ndarray:
        """The chunk's estimates (frame-major, ``n_tracks`` per frame) moved by the regressors."""
        if not self.regress or self.landmarker.cascade is None:
            return points
        start = time.perf_counter()
        out = points.copy()
        for j, frame in enumerate(chunk):
            rows = slice(j * n_tracks, (j + 1) * n_tracks)
            out[rows] = self.landmarker.regress(frame.image, points[rows], classes[rows])
        self.times.add("regress", time.perf_counter() - start, len(points))
        return out

    def _update(self, track: Track, box: np.ndarray) -> None:
        shift = (box[:2] + box[2:] - track.box[:2] - track.box[2:]) / 2
        # Only the centre moves with the velocity: extrapolating the size would feed the
        # classifier's pull towards the mean face size back into the next crop.
        # The first step sets the velocity (smoothing it from zero would leave it a quarter
        # short after two frames, which a batch of extrapolated crops multiplies).
        step = np.tile(shift, 2)
        track.velocity = step if track.followed == 0 else 0.5 * track.velocity + 0.5 * step
        track.box = box
        track.last_frame = self.frames_seen
        track.followed += 1

    def _hold(self, track: Track, box: np.ndarray) -> None:
        """Keep an uncertain face where it was: its own estimate is not trusted to move the crop."""
        track.box = np.asarray(box, dtype=np.float64)
        track.velocity = np.zeros(4)
        track.last_frame = self.frames_seen

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

    def _quiet_since_scan(self, frame: Frame) -> bool:
        """Nothing outside the tracked faces changed since the last scan (no cell of the frame's
        summary moved by QUIET_CHANGE grey levels there), so no newcomer can have come in;
        at most QUIET_SKIPS periodic scans in a row are skipped for it."""
        if frame.cells is None or self._scan_cells is None or self._skipped >= QUIET_SKIPS \
                or frame.cells.shape != self._scan_cells.shape:
            return False
        outside = cells_outside(frame.image.shape, [t.box for t in self.tracks])
        return not (changed_cells(self._scan_cells, frame.cells, QUIET_CHANGE) & outside).any()

    @staticmethod
    def _around(shape, boxes, grow: float = 1.0, whole: float = 0.5):
        """The region (x0, y0, x1, y1) covering ``boxes`` grown by ``grow`` sides on every side,
        or None when it would cover more than ``whole`` of the frame (scan it all then)."""
        h, w = shape[:2]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        side = (boxes[:, 2] - boxes[:, 0])[:, None]
        lo = np.clip((boxes[:, :2] - grow * side).min(0), 0, [w, h]).astype(int)
        hi = np.clip((boxes[:, 2:] + grow * side).max(0), 0, [w, h]).astype(int)
        if (hi - lo).prod() > whole * w * h or (hi - lo).min() < 16:
            return None
        return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])

    def _start_scan(self, frame: Frame) -> None:
        """Start the periodic scan for newcomers on the worker thread (dlib releases the GIL,
        so it runs beside the classifier); its boxes are used ``SCAN_DELAY`` frames later (half
        of ``redetect_every`` when that is shorter),
        on that frame, which keeps the results the same however fast the thread is."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="scan")
        delay = max(1, min(SCAN_DELAY, self.cfg.redetect_every // 2))
        self._pending = (self._worker.submit(self._newcomer_boxes, frame.image), self.frames_seen + delay)
        self._mark_scanned(frame)

    def _mark_scanned(self, frame: Frame) -> None:
        """A whole-frame scan ran (or started) on ``frame``: the periodic count starts again."""
        self.last_scan = self.frames_seen
        self._scan_cells, self._skipped = frame.cells, 0

    def _newcomer_boxes(self, image: np.ndarray) -> np.ndarray:
        """The cheaper scan while faces are followed: upsample ``scan_upsample`` on the frame scaled ``scan_scale``."""
        start = time.perf_counter()
        boxes = self.landmarker.face_boxes(image, self.cfg.scan_upsample, scale=self.cfg.scan_scale)
        self.times.add("detect", time.perf_counter() - start)
        return boxes

    def _scan_result(self) -> np.ndarray:
        start = time.perf_counter()
        boxes = self._pending[0].result()
        self._pending = None
        self.times.add("detect_wait", time.perf_counter() - start)
        return boxes

    def _held_only(self, frame: Frame, uncertain) -> bool:
        """Whether this frame's scan may skip the detector: every face in doubt is leaving the
        frame (a quarter of its box or more outside it, where a detector cannot find it), or
        is being held already and not due for a look (every ``held_scan_every`` frames of
        holding); a cut or a frame without tracks always looks."""
        every = self.cfg.held_scan_every
        if frame.cut or not self.tracks or not uncertain:
            return False
        return all(_share_outside(face.box, frame.image.shape) >= LEAVING
                   or (every > 1 and track.low > 0 and track.low % every != 0) for track, face in uncertain)

    def _scan(self, frame: Frame, tracked: list[FaceResult], uncertain=(), boxes=None) -> list[FaceResult]:
        """Run the detector (or take a newcomer scan's ``boxes``): faces not already tracked get
        a track (an old id if one was lost there).

        ``uncertain`` (track, face) pairs fell below the confidence threshold on this frame.
        A detection on such a face restarts it under its id (it moved too fast, say); one the
        detector cannot see either (occlusion) is held for up to ``hold_frames`` frames with
        its crop frozen, then lost.
        """
        if boxes is None:
            boxes = self._detect(frame, uncertain)
        self.lost = [t for t in self.lost if self.frames_seen - t.last_frame <=
                     self.cfg.forget_after * (IDENTITY_MEMORY if t.descriptor is not None else 1)]
        taken = [landmark_box(f.landmarks) for f in tracked]
        boxes = [b for b in boxes if not any(iou(b, t) > SAME_FACE_IOU for t in taken)]
        boxes = boxes[:max(0, self.cfg.max_faces - len(tracked))]
        found = self._found_again(boxes, uncertain)
        estimates = []
        if boxes:
            start = time.perf_counter()
            estimates = self.landmarker.from_boxes(frame.image, np.stack(boxes), regress=self.regress)
            self.times.add("classify", time.perf_counter() - start, len(boxes) * max(1, self.landmarker.passes))
        # A face found again whose fresh estimate is no more convincing is occluded, not
        # misplaced: while it may be held it stays in its box (the HMM carries it) and the
        # detection is dropped.
        occluded = {fid: k for fid, k in found.items() if estimates[k].confidence < self.cfg.lost_confidence}
        held, dropped = [], set()
        for track, face in uncertain:
            if track.face_id in found and track.face_id not in occluded:
                self.tracks.remove(track)
                continue
            track.low += 1
            if track.low > self.hold_frames:
                self._lose(track)
            else:
                self._hold(track, face.box)
                held.append(dataclasses.replace(face, held=True))
                if track.face_id in occluded:
                    dropped.add(found.pop(track.face_id))
        new_faces = []
        known = [t for t in self.lost if t.descriptor is not None]
        across, descriptors = self._ids_by_identity(frame, estimates, known) if frame.cut and known else ({}, {})
        for index, est in enumerate(estimates):
            if index in dropped:
                continue
            box = self.landmarker.box_from_landmarks(est.landmarks if est.classified is None else est.classified)
            face_id = next((fid for fid, k in found.items() if k == index), across.get(index))
            face_id = self._id_for(box) if face_id is None else face_id
            track = Track(face_id, box, np.zeros(4), self.frames_seen, shot=self.shot, landmarks=est.landmarks,
                          descriptor=descriptors.get(index))
            # An unconvincing detection is reported but not followed; its id waits in `lost`.
            (self.tracks if est.confidence >= self.cfg.lost_confidence else self.lost).append(track)
            new_faces.append(FaceResult.from_estimate(est, face_id))
        return held + new_faces

    def _detect(self, frame: Frame, uncertain) -> np.ndarray:
        """The detector on this frame, now: at the fresh-detection setting (with the still-image
        fallback for an image file starting a shot); for faces in doubt only around them, and
        without upsampling when they are large."""
        start = time.perf_counter()
        doubt = bool(uncertain) and not frame.cut
        region = self._around(frame.image.shape, [face.box for _, face in uncertain]) if doubt else None
        upsample = self.cfg.scan_upsample \
            if doubt and min(face.box[2] - face.box[0] for _, face in uncertain) >= LARGE_FACE else None
        if region is None:
            boxes = self.landmarker.face_boxes(frame.image, upsample, fallback=frame.cut and bool(frame.name))
            self._mark_scanned(frame)
        else:                  # faces in doubt are looked for where they were; newcomers wait for the next scan
            x0, y0, x1, y1 = region
            boxes = self.landmarker.face_boxes(frame.image[y0:y1, x0:x1], upsample) + np.array([x0, y0, x0, y0])
        self.times.add("detect", time.perf_counter() - start)
        return boxes

    def _describe(self, tracks: list[Track]) -> None:
        """Give each track without one its identity descriptor, from the latest frame."""
        start = time.perf_counter()
        for track in tracks:
            if track.descriptor is None and track.landmarks is not None and self._last_image is not None:
                track.descriptor = self.identity.descriptor(self._last_image, track.landmarks)
        self.times.add("identity", time.perf_counter() - start)

    def _ids_by_identity(self, frame: Frame, estimates, known: list[Track]) -> tuple[dict, dict]:
        """For the faces found on a cut's frame: {index: id} of the faces of earlier shots they
        are (under dlib's threshold; where a face was first, then the nearest), and {index: descriptor}."""
        start = time.perf_counter()
        descriptors = {i: self.identity.descriptor(frame.image, e.landmarks) for i, e in enumerate(estimates)}
        # Pairs at the same place first (two faces of one person, or a false cut), then the nearest.
        pairs = sorted((iou(landmark_box(estimates[i].landmarks), t.box) <= SAME_FACE_IOU,
                        float(np.linalg.norm(d - t.descriptor)), i, k)
                       for i, d in descriptors.items() for k, t in enumerate(known))
        out: dict[int, int] = {}
        used: set[int] = set()
        for _, distance, i, k in pairs:
            if distance < SAME_PERSON and i not in out and k not in used:
                out[i] = known[k].face_id
                used.add(k)
                self.lost = [t for t in self.lost if t is not known[k]]
        self.times.add("identity", time.perf_counter() - start)
        return out, descriptors

    @staticmethod
    def _found_again(boxes: list, uncertain) -> dict[int, int]:
        """face_id -> index of the detection overlapping that uncertain face most (IoU > SAME_FACE_IOU)."""
        found: dict[int, int] = {}
        for track, face in uncertain:
            overlaps = [iou(b, face.box) for b in boxes]
            if overlaps and max(overlaps) > SAME_FACE_IOU and int(np.argmax(overlaps)) not in found.values():
                found[track.face_id] = int(np.argmax(overlaps))
        return found

    def _id_for(self, box: np.ndarray) -> int:
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


def _share_outside(box, shape) -> float:
    """The share of ``box``'s area outside a frame of ``shape`` (H, W, ...)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    area = max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)
    inside = max(0.0, min(x1, shape[1]) - max(x0, 0.0)) * max(0.0, min(y1, shape[0]) - max(y0, 0.0))
    return 1.0 - inside / area
