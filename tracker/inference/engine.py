"""Frames in, faces out: the detector where needed, tracking by alignment in between.

A face found by the detector becomes a *track* (:mod:`tracker.inference.tracks`). On the
next frames its crop is cut around the box of its previous landmarks (moved by the box's
recent velocity), so the detector is not run on every frame. Crops of several frames and
faces go through the classifier in one call (:mod:`tracker.inference.classification`). A
track is lost when its confidence (the calibrated probability that the estimate is right,
:mod:`tracker.distribution.confidence`) falls below ``lost_confidence``; the detector then
scans that frame, as it does every ``redetect_every`` frames for faces that entered the view
(:mod:`tracker.inference.scans`). A detection the classifier is not sure of is followed
*faintly* (``faint_faces``): by optical flow alone, the detector looking again every
FAINT_CHECK frames.

A frame marked as a cut (:mod:`tracker.inference.cuts`) starts a new shot: every track ends (nothing
is followed across it, no batch spans it), and the detector scans the frame at the
fresh-detection setting, with the still-image fallback for image files. A face the scan
finds gets the id of a face of an earlier shot only when dlib's face recognition says
it is the same person (:mod:`tracker.detection.identity`, asked at cuts only; without dlib, never);
an id lost before a cut is never given by position to a face after it.

The engine reports the classifier's own estimates (on a frame a steady face is carried
through, the optical flow's: ``classify_every``); the regressors move them afterwards,
in the stage after the engine (:class:`tracker.temporal.stage.RegressStage`).
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

from tracker.config import TrackingConfig
from tracker.geometry.boxes import iou
from tracker.geometry.flow import flowed
from tracker.inference.classification import FollowedFaces
from tracker.inference.landmarker import Classified, Landmarker
from tracker.inference.scans import CutIdentities, Scans
from tracker.inference.tracks import Track, Tracks, found_again, largest_first, untracked
from tracker.io.sources import Frame
from tracker.results import FaceResult, FrameResult
from tracker.timing import StageTimes, timed

HOPELESS = 0.05   # a fresh detection whose first classifier pass is less sure than this gets no second pass
                  # (on the four shared clips 222 of 373 were; the second pass made 6 of those convincing)
MOVED = 0.5        # a held face the detector finds overlapping its box less than this (IoU) moved there
FAINT_CHECK = 8    # frames between the detector's looks at a faint face (one the classifier is not sure of)
SHAKY = 0.5    # while a followed face's confidence is under this, frames are classified one at a time: a face
               # lost mid-batch throws away the batch's later crops of every face (event: 32 % of crops)


class Engine:
    """Stateful face tracking over a stream of frames (call :meth:`process` in order)."""

    def __init__(self, landmarker: Landmarker, cfg: TrackingConfig = TrackingConfig(), hold_frames: int = 0,
                 identity=None):
        """``hold_frames``: how long a face with low confidence is kept (its box frozen) before
        it counts as lost; worth it only when the HMM carries the pose through (occlusion).
        ``identity``: a :class:`tracker.detection.identity.FaceIdentity`, or None: no id
        crosses a cut. Crops always follow the classifier's own estimates, which the box
        calibration was fitted on."""
        self.landmarker = landmarker
        self.cfg = cfg
        self.hold_frames = hold_frames
        self.identity = identity
        self.times = StageTimes()
        self.followed = FollowedFaces(landmarker, cfg, self.times)
        self.scans = Scans(landmarker, cfg, self.times)
        self.identities = None if identity is None else CutIdentities(identity, self.times)
        self.reset()

    def reset(self) -> None:
        self.tracks = Tracks()
        self.scans.reset()
        self.frames_seen = 0
        self._shape = None                    # frame size of the current scene
        self._last_frame = None               # the latest frame (the tracks' side of a cut)

    def close(self) -> None:
        """Stop the scan worker thread (after the scan in progress, whose result is dropped)."""
        self.scans.close()

    # ------------------------------------------------------------------ public

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """Results for consecutive frames, in order."""
        frames = list(frames)
        results: list[FrameResult] = []
        while frames:
            self._new_shot_if_cut(frames[0])
            limit = self.scans.frames_to_next(self.frames_seen) if self.tracks.steady(SHAKY) else 1
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
            if self.identities is not None and not frame.name:
                self.identities.describe(self.tracks.live, None if self._last_frame is None else self._last_frame.image)
            self.tracks.end_shot()
            self.scans.drop_pending()             # a scan of the last shot finds nothing for this one
        self._shape = shape

    # ------------------------------------------------------------------ following

    def _follow(self, chunk: Sequence[Frame]) -> list[FrameResult]:
        """Follow the tracks through ``chunk``; stops early after a frame where a face was lost.

        The chunk's crops come from each track's last box moved by its velocity; crops whose
        landmarks drifted more than ``reclassify_drift`` from the crop are classified again
        around the new landmarks (one more batched call). A steady face is left out of the
        classifier on some frames and carried there by optical flow (:meth:`_to_classify`).
        """
        followed = list(self.tracks.live)
        boxes = self.tracks.predicted_boxes(len(chunk)) if followed else None
        wanted = self._to_classify(followed, len(chunk))
        classified = self.followed([f.image for f in chunk], boxes, wanted) if wanted.any() else None
        row = np.cumsum(wanted.ravel()) - 1
        results = []
        for j, frame in enumerate(chunk):
            faces, uncertain = [], []
            for t_index, track in enumerate(followed):
                if track not in self.tracks.live:
                    continue       # dropped as a duplicate on an earlier frame of the chunk
                if track.faint:
                    self._follow_faint(track, chunk, j, faces, uncertain)
                    continue
                if wanted[j, t_index]:
                    source, i = classified, row[j * len(followed) + t_index]
                else:
                    carried = self._carry(track, chunk, j)
                    if carried is not None:
                        faces.append(carried)
                        continue
                    # the flow lost it (gone, turned, a cut the cut detector missed): classified after all
                    source, i = self.followed([frame.image], boxes[j:j + 1, t_index:t_index + 1]), 0
                face = _face(source, i, track.face_id)
                if source.confidence[i] < self.cfg.lost_confidence:
                    uncertain.append((track, face))
                else:
                    track.low = 0
                    faces.append(face)
                    track.move(source.next_boxes[i], self.frames_seen)
                    track.landmarks = source.points[i]
                    track.face, track.carried_for = face, 0
            self.frames_seen += 1
            faces = self.tracks.drop_duplicates(faces)
            if frame.cut or not self.tracks.live:
                self.scans.drop_pending()         # the whole frame is scanned now
                skip = self.scans.skips_detector(frame, uncertain, bool(self.tracks.live), self.frames_seen)
                faces += self._scan(frame, faces, uncertain, boxes=[] if skip else None)
            else:
                newcomers = self.scans.newcomers(frame, self.frames_seen, self.tracks.boxes())
                if uncertain:                     # looked for around them, beside any newcomers due
                    skip = self.scans.skips_detector(frame, uncertain, True, self.frames_seen)
                    faces += self._scan(frame, faces, uncertain, boxes=[] if skip else None, newcomers=newcomers)
                elif newcomers is not None:
                    faces += self._scan(frame, faces, boxes=newcomers)
            results.append(FrameResult(frame, tuple(sorted(faces, key=lambda f: f.face_id))))
            self._last_frame = frame
            if any(not track.faint or track not in self.tracks.live for track, _ in uncertain):
                break          # the chunk's later crops were cut around boxes that are now stale (a faint
                               # face that stays faint has none: it is carried by optical flow)
        return results

    def _follow_faint(self, track: Track, chunk: Sequence[Frame], j: int, faces: list, uncertain: list) -> None:
        """A faint face on frame ``j`` of ``chunk``: carried by optical flow (held: the frame
        is kept only once the detector sees the face again), and every FAINT_CHECK frames, or
        where the flow loses it, put in doubt, so that the detector looks for it there
        (:meth:`_settle_doubts`)."""
        face = self._carry(track, chunk, j)        # held, as the faint face's estimate is
        if face is None:
            uncertain.append((track, track.face))
        elif track.carried_for % FAINT_CHECK == 0:
            uncertain.append((track, face))
        else:
            faces.append(face)

    def _to_classify(self, followed: list[Track], frames: int) -> np.ndarray:
        """(frames, tracks) bool: which faces of the chunk go through the classifier. With
        ``classify_every`` N > 1 a steady face (sure to SHAKY) is classified on one frame in N;
        on the others it is carried: its estimate followed by optical flow (and where the
        regressors run, their last result, :class:`tracker.temporal.stage.RegressStage`); the
        HMM takes such a frame as one without evidence."""
        wanted = np.ones((frames, len(followed)), bool)
        every = self.cfg.classify_every
        for t_index, track in enumerate(followed):
            if track.faint:
                wanted[:, t_index] = False
            elif every > 1 and track.face is not None and track.confidence >= SHAKY:
                wanted[:, t_index] = (track.carried_for + 1 + np.arange(frames)) % every == 0
        return wanted

    def _carry(self, track: Track, chunk: Sequence[Frame], j: int) -> FaceResult | None:
        """The face of ``track`` on frame ``j`` of ``chunk`` without the classifier: its estimate
        followed from the frame before by optical flow; None where the flow is not to be trusted."""
        before = chunk[j - 1] if j else self._last_frame
        moved = flowed(before.gray, chunk[j].gray, track.landmarks)
        return None if moved is None else track.carried(moved, self.frames_seen)

    # ------------------------------------------------------------------ detection

    def _scan(self, frame: Frame, tracked: list[FaceResult], uncertain=(), boxes=None,
              newcomers=None) -> list[FaceResult]:
        """Run the detector (or take a newcomer scan's ``boxes``): faces not already tracked get
        a track (an old id if one was lost there). ``newcomers``: the boxes of a newcomer scan
        due on this frame, added to the detector's (which looked only around faces in doubt).

        ``uncertain`` (track, face) pairs fell below the confidence threshold on this frame.
        A detection on such a face restarts it under its id (it moved too fast, say). One the
        detector cannot see (occlusion), or sees but whose estimate there is no more
        convincing, is held for up to ``hold_frames`` frames, then lost: its crop frozen, or
        moved to the detection.
        """
        if boxes is None:
            boxes = self.scans.detect(frame, uncertain, self.frames_seen)
        if newcomers is not None:
            boxes = list(boxes) + untracked(newcomers, (), taken=boxes)
        self.tracks.forget(self.frames_seen, self.cfg.forget_after)
        boxes = largest_first(untracked(boxes, tracked), max(0, self.cfg.max_faces - len(tracked)))
        found = found_again(boxes, uncertain)
        estimates = self._estimates(frame, boxes)
        # A face found again whose fresh estimate is no more convincing is occluded, not
        # misplaced: while it may be held the HMM carries it, in its box unless the detection
        # moved (MOVED), and the detection is dropped.
        occluded = {fid: estimates[k] for fid, k in found.items() if estimates[k].confidence < self.cfg.lost_confidence}
        held, dropped = self._settle_doubts(uncertain, found, occluded)
        return held + self._start_tracks(frame, estimates, found, dropped)

    def _estimates(self, frame: Frame, boxes: list) -> list:
        """The classifier's estimates (:class:`tracker.inference.landmarker.FaceEstimate`) of the faces in ``boxes``."""
        if not boxes:
            return []
        with timed(self.times, "classify") as step:
            before = self.landmarker.crops_classified
            estimates = self.landmarker.from_boxes(frame.image, np.stack(boxes), regress=False, hopeless=HOPELESS)
            step.count = self.landmarker.crops_classified - before
        return estimates

    def _settle_doubts(self, uncertain, found: dict[int, int], occluded: dict) -> tuple[list, set]:
        """Each face in doubt restarted (a detection ``found`` it again and is convincing), held
        or lost. A held face stays in its box, or moves to the box of the detection that found
        it again (``occluded``: face id -> the estimate there, unconvincing), marked
        ``detected`` (the face is there). Returns the held faces and the indices of the
        detections dropped for them (taken out of ``found``)."""
        held, dropped = [], set()
        for track, face in uncertain:
            if track.face_id in found and track.face_id not in occluded:
                self.tracks.stop(track)
                continue
            if track.faint:
                self._recheck_faint(track, occluded.get(track.face_id), held)
                if track.face_id in occluded:
                    dropped.add(found.pop(track.face_id))
                continue
            track.low += 1
            if track.low > self.hold_frames:
                self.tracks.lose(track)
                continue
            if track.face_id in occluded:    # seen: its evidence stays this frame's own crop's
                seen_at = occluded[track.face_id].box
                face = dataclasses.replace(face, box=seen_at if iou(seen_at, face.box) < MOVED else face.box,
                                           detected=True)
                dropped.add(found.pop(track.face_id))
            track.hold(face.box, self.frames_seen)
            held.append(dataclasses.replace(face, held=True))
        return held, dropped

    def _recheck_faint(self, track: Track, estimate, held: list) -> None:
        """A faint face the detector looked for: lost where it was not found, else moved to
        the detection's ``estimate`` (still unconvincing) and reported there, seen."""
        if estimate is None:
            self.tracks.lose(track)
            return
        face = dataclasses.replace(FaceResult.from_estimate(estimate, track.face_id), held=True)
        track.hold(face.box, self.frames_seen)
        track.landmarks, track.face, track.carried_for = face.landmarks, face, 0
        held.append(face)

    def _start_tracks(self, frame: Frame, estimates: list, found: dict[int, int], dropped: set) -> list[FaceResult]:
        """A track for each detected face not dropped: under the id of the face in doubt it
        ``found`` again, of a face of an earlier shot it is (at a cut), of a face lost at its
        place, or a new one. An unconvincing detection is followed faintly (``faint_faces``:
        by optical flow, :meth:`_follow_faint`), or else reported but not followed, its id
        waiting among the lost."""
        known = [t for t in self.tracks.lost if t.descriptor is not None]
        across, descriptors = {}, {}
        if frame.cut and known and self.identities is not None:
            recognised, descriptors = self.identities.match(frame.image, estimates, known)
            for track in recognised.values():
                self.tracks.recall(track)
            across = {index: track.face_id for index, track in recognised.items()}
        new_faces = []
        for index, est in enumerate(estimates):
            if index in dropped:
                continue
            box = self.landmarker.box_from_landmarks(est.landmarks)
            face_id = next((fid for fid, k in found.items() if k == index), across.get(index))
            face_id = self.tracks.id_for(box) if face_id is None else face_id
            track = Track(face_id, box, np.zeros(4), self.frames_seen, shot=self.tracks.shot, landmarks=est.landmarks,
                          descriptor=descriptors.get(index))
            face = FaceResult.from_estimate(est, face_id)
            unconvincing = est.confidence < self.cfg.lost_confidence
            if unconvincing and self.cfg.faint_faces:           # followed faintly
                face = dataclasses.replace(face, held=True)
                track.faint, track.face = True, face
            self.tracks.start(track, follow=not unconvincing or self.cfg.faint_faces)
            new_faces.append(face)
        return new_faces


def _face(classified: Classified, i: int, face_id: int) -> FaceResult:
    """Row ``i`` of a classified batch as the face of track ``face_id``."""
    post = classified.post
    return FaceResult(face_id, classified.points[i], float(classified.confidence[i]), classified.boxes[i],
                      post.classes[i], post.probs[i], log_probs=None if post.log_probs is None else post.log_probs[i])
