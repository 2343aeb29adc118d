"""When and where the detector runs while faces are followed, and who a face is at a cut.

The detector scans every ``redetect_every`` frames for faces that entered the view: a
*newcomer scan*, run on a worker thread beside the classifier, its boxes used a fixed
number of frames later (so results do not depend on the thread's speed). A periodic scan
is skipped when nothing changed outside the tracked faces since the last one (at most
``QUIET_SKIPS`` in a row). A face in doubt (its confidence fell) is looked for at once,
only around where it was; one leaving the frame, or held and not due for a look, is not.
A cut's frame is scanned whole at the fresh-detection setting, and the faces found there
are matched to those of earlier shots by dlib's face recognition (:class:`CutIdentities`).
With no face followed, the whole frame is scanned at that setting (BlazeFace's quarters) every
UPSAMPLED_EVERY frames, or on every frame while those scans find small faces, and without
upsampling in between (:meth:`Scans.upsample_due`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tracker.config import TrackingConfig
from tracker.detection.identity import SAME_PERSON
from tracker.geometry.boxes import iou, landmark_box
from tracker.inference.cuts import cells_outside, changed_cells
from tracker.inference.tracks import SAME_FACE_IOU, Track
from tracker.io.sources import Frame
from tracker.timing import StageTimes, timed

SCAN_DELAY = 2             # frames from starting a newcomer scan on the worker thread to using its result
                           # (at most half of redetect_every, so that one scan ends before the next)
LARGE_FACE = 100           # px: a face box this large is found by dlib's HOG without upsampling
QUIET_CHANGE = 6.0         # grey levels: a cell outside the tracked faces that moved less is unchanged
QUIET_SKIPS = 3            # periodic scans skipped at most in a row while nothing changes outside the faces
LEAVING = 0.25             # a face in doubt with this share of its box outside the frame is not looked for
SMALL_FACE = 0.08          # a face box under this share of the frame's long side is small (found by upsampling)
UPSAMPLED_EVERY = 4        # scans with no face followed upsample (BlazeFace: the quarters) every N frames,
                           # and on every frame while the last ones found a small face


class Scans:
    """The detector's schedule over one stream. Frame numbers (``seen``) count the frames
    processed, the current one included."""

    def __init__(self, landmarker, cfg: TrackingConfig, times: StageTimes | None = None):
        self.landmarker = landmarker          # its face_boxes() runs the detectors
        self.cfg = cfg
        self.times = times
        self._worker = None                   # the thread newcomer scans run on, started by the first
        self.reset()

    def reset(self) -> None:
        self.last_scan = -10 ** 9
        self._upsampled_at = -10 ** 9          # the last whole-frame scan at the fresh-detection setting
        self._small_at = -10 ** 9              # the last whole-frame scan that found a small face
        self._pending = None                  # (future of a newcomer scan's boxes, frame number to use them at)
        self._scan_cells = None               # the frame summary at the last scan (what a newcomer would change)
        self._skipped = 0                     # periodic scans skipped in a row

    def close(self) -> None:
        """Stop the scan worker thread (after the scan in progress, whose result is dropped)."""
        self.drop_pending()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    def drop_pending(self) -> None:
        """Forget the newcomer scan in progress, once it is over: the detectors are not safe to
        run from two threads at once."""
        if self._pending is not None:
            self._pending[0].exception()          # waits; a failed scan is simply dropped
            self._pending = None

    @property
    def in_progress(self) -> bool:
        """A newcomer scan was started and its result is not used yet."""
        return self._pending is not None

    # ------------------------------------------------------------------ when

    def frames_to_next(self, seen: int) -> int:
        """How many frames to follow before the next scan starts or a scan's result is used
        (that frame included): tracks change only at the end of a chunk."""
        every = self.cfg.redetect_every
        limit = 10 ** 9 if every <= 0 else max(1, every - (seen - self.last_scan))
        if self._pending is not None:
            limit = min(limit, max(1, self._pending[1] - seen))
        return limit

    def due(self, seen: int) -> bool:
        """The periodic scan for newcomers is due (``redetect_every`` frames since the last)."""
        every = self.cfg.redetect_every
        return every > 0 and seen - self.last_scan >= every

    def newcomers(self, frame: Frame, seen: int, track_boxes) -> np.ndarray | None:
        """On a frame with faces followed: the boxes of the newcomer scan whose result is due
        on it, else None, after starting the periodic scan when it is due (or skipping it when
        nothing changed outside ``track_boxes``)."""
        if self._pending is not None and self._pending[1] == seen:
            return self._scan_result()
        if self.due(seen) and self._pending is None:
            if self.quiet_since_scan(frame, track_boxes):
                self.last_scan = seen
                self._skipped += 1
            else:
                self._start_scan(frame, seen)
        return None

    def quiet_since_scan(self, frame: Frame, track_boxes) -> bool:
        """Nothing outside the tracked faces changed since the last scan (no cell of the frame's
        summary moved by QUIET_CHANGE grey levels there), so no newcomer can have come in;
        at most QUIET_SKIPS periodic scans in a row are skipped for it."""
        if frame.cells is None or self._scan_cells is None or self._skipped >= QUIET_SKIPS \
                or frame.cells.shape != self._scan_cells.shape:
            return False
        outside = cells_outside(frame.image.shape, track_boxes)
        return not (changed_cells(self._scan_cells, frame.cells, QUIET_CHANGE) & outside).any()

    def skips_detector(self, frame: Frame, uncertain, tracking: bool, seen: int) -> bool:
        """Whether this frame's scan leaves the detector out: every face in doubt is leaving the
        frame or held and not due (:meth:`held_only`), or no face is followed and the last
        whole-frame scan is recent (:meth:`idle`)."""
        return self.held_only(frame, uncertain, tracking) or self.idle(frame, uncertain, tracking, seen)

    def idle(self, frame: Frame, uncertain, tracking: bool, seen: int) -> bool:
        """Whether a frame with no face followed (``tracking`` false) and none in doubt skips
        the detector because its last whole-frame scan was fewer than ``empty_scan_every``
        frames ago. A cut always looks."""
        return not (frame.cut or tracking or uncertain) and seen - self.last_scan < self.cfg.empty_scan_every

    def held_only(self, frame: Frame, uncertain, tracking: bool) -> bool:
        """Whether this frame's scan may skip the detector: every face in doubt ((track, face)
        pairs) is leaving the frame (a quarter of its box or more outside it, where a detector
        cannot find it), or is being held already and not due for a look (every
        ``held_scan_every`` frames of holding); a cut or a frame without tracks (``tracking``
        false) always looks."""
        every = self.cfg.held_scan_every
        if frame.cut or not tracking or not uncertain:
            return False
        return all(share_outside(face.box, frame.image.shape) >= LEAVING
                   or (every > 1 and track.low > 0 and track.low % every != 0) for track, face in uncertain)

    # ------------------------------------------------------------------ the detector

    def detect(self, frame: Frame, uncertain, seen: int) -> np.ndarray:
        """The detector on this frame, now: at the fresh-detection setting (with the still-image
        fallback for an image file starting a shot); for faces in doubt only around them, and
        without upsampling when they are large."""
        with timed(self.times, "detect"):
            doubt = bool(uncertain) and not frame.cut
            region = around(frame.image.shape, [face.box for _, face in uncertain]) if doubt else None
            upsample = self.cfg.scan_upsample \
                if doubt and min(face.box[2] - face.box[0] for _, face in uncertain) >= LARGE_FACE else None
            if region is None:
                if not frame.cut and not self.upsample_due(seen):
                    upsample = 0
                boxes = self.landmarker.face_boxes(frame.image, upsample, fallback=frame.cut and bool(frame.name))
                self._mark_scanned(frame, seen, upsampled=upsample is None, boxes=boxes)
            else:              # faces in doubt are looked for where they were; newcomers wait for the next scan
                x0, y0, x1, y1 = region
                boxes = self.landmarker.face_boxes(frame.image[y0:y1, x0:x1], upsample) + np.array([x0, y0, x0, y0])
        return boxes

    def _start_scan(self, frame: Frame, seen: int) -> None:
        """Start the periodic scan for newcomers on the worker thread (dlib releases the GIL,
        so it runs beside the classifier); its boxes are used ``SCAN_DELAY`` frames later (half
        of ``redetect_every`` when that is shorter),
        on that frame, which keeps the results the same however fast the thread is."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="scan")
        delay = max(1, min(SCAN_DELAY, self.cfg.redetect_every // 2))
        self._pending = (self._worker.submit(self._newcomer_boxes, frame.image), seen + delay)
        self._mark_scanned(frame, seen)

    def _mark_scanned(self, frame: Frame, seen: int, upsampled: bool = False, boxes=()) -> None:
        """A whole-frame scan ran (or started) on ``frame``: the periodic count starts again.
        ``upsampled``: at the fresh-detection setting, which found ``boxes``."""
        self.last_scan = seen
        self._scan_cells, self._skipped = frame.cells, 0
        if upsampled:
            self._upsampled_at = seen
            long_side = max(frame.image.shape[:2])
            if any(b[2] - b[0] < SMALL_FACE * long_side for b in boxes):
                self._small_at = seen

    def upsample_due(self, seen: int) -> bool:
        """Whether a whole-frame scan at a frame that is not a cut upsamples (the fresh-detection
        setting; BlazeFace's quarters, about 20 ms against 5): every UPSAMPLED_EVERY frames, and
        on every frame while one of the last such scans found a small face (tears-of-steel:
        the same 185 frames with a face in 5.7 s instead of 9.1; hikers, whose faces are small,
        keeps every scan)."""
        return seen - self._upsampled_at >= UPSAMPLED_EVERY or seen - self._small_at <= UPSAMPLED_EVERY

    def _newcomer_boxes(self, image: np.ndarray) -> np.ndarray:
        """The cheaper scan while faces are followed: upsample ``scan_upsample`` on the frame scaled ``scan_scale``."""
        with timed(self.times, "detect"):
            return self.landmarker.face_boxes(image, self.cfg.scan_upsample, scale=self.cfg.scan_scale)

    def _scan_result(self) -> np.ndarray:
        with timed(self.times, "detect_wait"):
            boxes = self._pending[0].result()
            self._pending = None
        return boxes


def around(shape, boxes, grow: float = 1.0, whole: float = 0.5):
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


def share_outside(box, shape) -> float:
    """The share of ``box``'s area outside a frame of ``shape`` (H, W, ...)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    area = max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)
    inside = max(0.0, min(x1, shape[1]) - max(x0, 0.0)) * max(0.0, min(y1, shape[0]) - max(y0, 0.0))
    return 1.0 - inside / area


class CutIdentities:
    """Who the faces are, asked at cuts only: a face found on a cut's frame gets the id of a
    face of an earlier shot only when dlib's face recognition says it is the same person
    (:mod:`tracker.detection.identity`)."""

    def __init__(self, identity, times: StageTimes | None = None):
        self.identity = identity              # a tracker.detection.identity.FaceIdentity
        self.times = times

    def describe(self, tracks: list[Track], image: np.ndarray | None) -> None:
        """Give each track without one its identity descriptor, from ``image`` (the latest frame)."""
        with timed(self.times, "identity"):
            for track in tracks:
                if track.descriptor is None and track.landmarks is not None and image is not None:
                    track.descriptor = self.identity.descriptor(image, track.landmarks)

    def match(self, image: np.ndarray, estimates, known: list[Track]) -> tuple[dict[int, Track], dict[int, np.ndarray]]:
        """For the faces found on a cut's frame: {index: the track of an earlier shot it is}
        (under dlib's threshold; where a face was first, then the nearest), and {index: descriptor}."""
        with timed(self.times, "identity"):
            descriptors = {i: self.identity.descriptor(image, e.landmarks) for i, e in enumerate(estimates)}
            # Pairs at the same place first (two faces of one person, or a false cut), then the nearest.
            pairs = sorted((iou(landmark_box(estimates[i].landmarks), t.box) <= SAME_FACE_IOU,
                            float(np.linalg.norm(d - t.descriptor)), i, k)
                           for i, d in descriptors.items() for k, t in enumerate(known))
            out: dict[int, Track] = {}
            used: set[int] = set()
            for _, distance, i, k in pairs:
                if distance < SAME_PERSON and i not in out and k not in used:
                    out[i] = known[k]
                    used.add(k)
        return out, descriptors
