"""The temporal stage of the pipeline: a K-state HMM per face, then 3-frame smoothing.

Each followed face gets its own fixed-lag Viterbi decoder (:mod:`tracker.temporal.hmm`) fed
with the classifier's log-softmax over the K pose classes; a frame leaves this stage
once the states of all its faces are final (``lag`` frames later; lag 0 in live mode).
A decoded state becomes landmarks as the frame's own posterior mean reweighted towards
classes near that state (the frame's evidence, conditioned on the smooth pose path);
when the frame holds no mass there (an occluded face), the state's template.
The regressors then move each decoded face from there (the decoded class picks the
cluster; a held face, which the HMM carries through an occlusion, is left as decoded).
Finally landmarks are averaged with the previous and next frame of the same face.
With the temporal stage off, the regressors still run here, alone: they run in this one
place, after the engine, whatever the temporal setting.
A cut (``frame.cut``) ends every face's path: no transition and no average spans it.
Before all that, on files, a held face waits until it is seen again (:class:`SettledHolds`):
one that is lost instead left the view or turned away, and its held frames are dropped.
A path of a single frame (a photo in a folder) keeps that frame's own estimate.
"""
from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from tracker.distribution.poses import rms_distance
from tracker.geometry.flow import flowed
from tracker.geometry.shapes import from_canonical
from tracker.results import FaceResult, FrameResult
from tracker.temporal.hmm import FixedLagDecoder, Transitions, model_transitions
from tracker.timing import StageTimes, timed


def decoded_landmarks(face: FaceResult, state: int, templates: np.ndarray, tau: float) -> np.ndarray:
    """Landmarks (68, 2) of ``face`` given its decoded pose class ``state``.

    The frame's top-k posterior is reweighted by a Gaussian of width tau around the
    state's template (soft, so that a switch between neighbouring states moves the
    landmarks only a little); with no mass left near the state, its template.
    """
    distance = rms_distance(templates[face.classes], templates[state][None])
    weights = face.probs * np.exp(-0.5 * (distance / tau) ** 2)
    if weights.sum() > 1e-6:
        canon = np.einsum("k,kpd->pd", weights / weights.sum(), templates[face.classes])
    else:
        canon = templates[state]
    return from_canonical(canon, face.box)


class _FaceDecoder:
    """One face's decoder and the stream positions of the frames it has been fed."""

    def __init__(self, decoder: FixedLagDecoder):
        self.decoder = decoder
        self.positions: dict[int, int] = {}      # decoder frame index -> stream position


class HmmStage:
    """Per-face fixed-lag max-product decoding over a stream of :class:`FrameResult`."""

    def __init__(self, transitions: Transitions, templates: np.ndarray, tau: float, lag: int,
                 prune_top: int = 0):
        self.transitions = transitions
        self.templates = templates
        self.tau = tau
        self.lag = lag
        self.prune_top = prune_top or None
        self._faces: dict[int, _FaceDecoder] = {}
        self._pending: dict[int, tuple[FrameResult, dict]] = {}   # stream position -> (frame, states so far)
        self._position = 0
        self._uniform = np.zeros(len(templates), np.float32)   # a carried face's frame: no evidence either way

    def push(self, result: FrameResult) -> list[FrameResult]:
        """Feed one frame; returns the frames whose states became final, in order."""
        position, states = self._position, {}
        self._position += 1
        self._pending[position] = (result, states)
        if result.frame.cut:                    # a new shot: every path ends before it
            for face_id, entry in list(self._faces.items()):
                self._decide(face_id, self._faces.pop(face_id), entry.decoder.flush())
        present = set()
        for face in result.faces:
            present.add(face.face_id)
            evidence = self._uniform if face.carried else face.log_probs
            if evidence is None:                # nothing to decode with: keep the frame's estimate
                states[face.face_id] = -1
                continue
            entry = self._faces.get(face.face_id)
            if entry is None:
                entry = self._faces[face.face_id] = _FaceDecoder(
                    FixedLagDecoder(self.transitions, self.lag, prune_top=self.prune_top))
            entry.positions[entry.decoder.frames_seen] = position
            self._decide(face.face_id, entry, entry.decoder.push(evidence))
        for face_id in [f for f in self._faces if f not in present]:   # face gone: finish its path
            entry = self._faces.pop(face_id)
            self._decide(face_id, entry, entry.decoder.flush())
        return self._ready()

    def flush(self) -> list[FrameResult]:
        """End of stream: every remaining frame, decided."""
        for face_id, entry in list(self._faces.items()):
            self._decide(face_id, entry, entry.decoder.flush())
        self._faces.clear()
        return self._ready()

    def _decide(self, face_id: int, entry: _FaceDecoder, emitted) -> None:
        # A path of one frame (a photo, a face seen once) has nothing to smooth: its own estimate stays.
        alone = entry.decoder.frames_seen == 1
        for frame_index, state in emitted:
            self._pending[entry.positions.pop(frame_index)][1][face_id] = -1 if alone else int(state)

    def _ready(self) -> list[FrameResult]:
        out = []
        while self._pending:
            oldest = next(iter(self._pending))
            result, states = self._pending[oldest]
            if any(f.face_id not in states for f in result.faces):
                break
            del self._pending[oldest]
            out.append(self._decoded(result, states))
        return out

    def _decoded(self, result: FrameResult, states: dict) -> FrameResult:
        """The frame with its decoded landmarks; the full log-softmax, used up, is dropped
        (K floats per face and frame would pile up in a caller that keeps results)."""
        return FrameResult(result.frame, tuple(self._decoded_face(f, states[f.face_id]) for f in result.faces))

    def _decoded_face(self, face: FaceResult, state: int) -> FaceResult:
        """``face`` with the landmarks of its decoded ``state`` (-1: nothing decoded, kept as it is)."""
        if state < 0:
            return face if face.log_probs is None else dataclasses.replace(face, log_probs=None)
        if face.carried:                        # no pose evidence of its own to reweight: its path's class only
            return dataclasses.replace(face, pose_class=state)
        return dataclasses.replace(face, landmarks=self._landmarks(face, state), pose_class=state, log_probs=None)

    def _landmarks(self, face: FaceResult, state: int) -> np.ndarray:
        """A visible face: its posterior reweighted towards the decoded state. A held face
        (its confidence fell: an occluder) has no pose evidence worth reading, so the decoded
        state's template alone (docs/fig10: 5.2 % -> 1.7 % of occluded frames failing on
        wolfganglanger at cover 0.75, 39.7 % -> 31.0 % at 1.0)."""
        if face.held:
            return from_canonical(self.templates[state], face.box)
        return decoded_landmarks(face, state, self.templates, self.tau)


class RegressStage:
    """Each visible face's landmarks moved by the landmarker's regressors (``regress``), from
    the decoded pose class when there is one, else the classifier's most probable class. A
    face carried through a frame without the classifier (``tracking.classify_every``) is its
    previous result followed by optical flow instead: regressing it again from there made the
    sample's landmarks jitter (0.0063 against 0.0034)."""

    def __init__(self, regress, times: StageTimes | None = None):
        self.regress = regress
        self.times = times              # a StageTimes to add "regress" seconds to (the engine's)
        self._last: tuple = (None, {})  # the previous frame and {face_id: its regressed landmarks}

    def push(self, result: FrameResult) -> list[FrameResult]:
        faces = list(result.faces)
        before, previous = self._last
        flow = []
        for i, face in enumerate(faces):      # carried (not classified on this frame): the last result followed
            moved = flowed(before.gray, result.frame.gray, previous[face.face_id]) \
                if face.carried and face.face_id in previous and not result.frame.cut else None
            if moved is not None:
                faces[i] = dataclasses.replace(face, landmarks=moved)
                flow.append(i)
        rows = [i for i, f in enumerate(faces) if not f.held and i not in flow]
        if rows:
            with timed(self.times, "regress", len(rows)):
                points = np.stack([faces[i].landmarks for i in rows])
                classes = np.array([faces[i].pose_class if faces[i].pose_class >= 0 else faces[i].classes[0]
                                    for i in rows])
                moved = self.regress(result.frame.image, points, classes)
                for row, i in enumerate(rows):
                    faces[i] = dataclasses.replace(faces[i], landmarks=moved[row])
        self._last = (result.frame, {f.face_id: f.landmarks for f in faces if not f.held})
        return [FrameResult(result.frame, tuple(faces))]

    def flush(self) -> list[FrameResult]:
        return []


class ThreeFrameSmoother:
    """Each face's landmarks averaged with its previous and next frame (where present)."""

    def __init__(self):
        self._previous: FrameResult | None = None
        self._current: FrameResult | None = None

    def push(self, result: FrameResult) -> list[FrameResult]:
        out = [self._smoothed(self._current, result)] if self._current is not None else []
        self._previous, self._current = self._current, result
        return out

    def flush(self) -> list[FrameResult]:
        out = [self._smoothed(self._current, None)] if self._current is not None else []
        self._previous = self._current = None
        return out

    def _smoothed(self, result: FrameResult, following: FrameResult | None) -> FrameResult:
        def same_face(other, face_id):
            if other is None:
                return None
            return next((f.landmarks for f in other.faces if f.face_id == face_id), None)
        before = None if result.frame.cut else self._previous
        after = None if following is None or following.frame.cut else following
        faces = []
        for face in result.faces:
            around = [p for p in (same_face(before, face.face_id), face.landmarks,
                                  same_face(after, face.face_id)) if p is not None]
            faces.append(dataclasses.replace(face, landmarks=np.mean(around, axis=0)))
        return FrameResult(result.frame, tuple(faces))


REAPPEAR = 8      # frames a lost face's id may stay away and still count as having come back


class _Hold:
    """One run of held frames of one face, and what became of it (None: not known yet)."""

    def __init__(self):
        self.came_back: bool | None = None
        self.away = 0                           # frames in a row without the face since its last held one


class SettledHolds:
    """Frames handed on once every held face in them is settled. A held face (its confidence
    fell; the HMM carries it through an occlusion) is kept when the face is seen again under
    its id, within REAPPEAR frames of its last held frame: unheld, or held where a detector
    found it (``detected``). When it is not (or the stream ends), the run's held frames are
    dropped: they showed a face where none was (it had left the view, turned away, or the
    camera had moved). A frame waits at most the engine's ``hold_frames`` plus REAPPEAR."""

    def __init__(self):
        self._waiting: deque[tuple[FrameResult, dict[int, _Hold]]] = deque()
        self._open: dict[int, _Hold] = {}         # face id -> its unsettled run of held frames

    def push(self, result: FrameResult) -> list[FrameResult]:
        unseen = {face.face_id: face.held and not face.detected for face in result.faces}
        for face_id, hold in list(self._open.items()):
            if face_id not in unseen:
                hold.away += 1
                if hold.away > REAPPEAR:
                    self._settle(face_id, came_back=False)
            elif not unseen[face_id]:
                self._settle(face_id, came_back=True)
            else:
                hold.away = 0
        holds = {f.face_id: self._open.setdefault(f.face_id, _Hold()) for f in result.faces if unseen[f.face_id]}
        self._waiting.append((result, holds))
        return self._settled()

    def flush(self) -> list[FrameResult]:
        for face_id in list(self._open):
            self._settle(face_id, came_back=False)
        return self._settled()

    def _settle(self, face_id: int, came_back: bool) -> None:
        self._open.pop(face_id).came_back = came_back

    def _settled(self) -> list[FrameResult]:
        out = []
        while self._waiting and all(h.came_back is not None for h in self._waiting[0][1].values()):
            result, holds = self._waiting.popleft()
            faces = tuple(f for f in result.faces if f.face_id not in holds or holds[f.face_id].came_back)
            out.append(result if len(faces) == len(result.faces) else FrameResult(result.frame, faces))
        return out


def temporal_stage(cfg, model, live: bool, regress=None, times: StageTimes | None = None) -> "TemporalStage | None":
    """The stages after the engine for a :class:`tracker.config.TemporalConfig` and a model:
    held faces settled (files), HMM decoding and smoothing when it is enabled, and between
    them the regressors (``regress(image, points, classes) -> points``; None: no regressors),
    their seconds added to ``times``. None when there is nothing to run.
    Live sources decode with lag 0, show held faces as they come and skip the smoothing,
    which would wait a frame."""
    hmm = HmmStage(model_transitions(model, cfg.neighbours), model.templates, model.tau,
                   lag=0 if live else cfg.lag, prune_top=cfg.prune_top) if cfg.enabled else None
    smoother = ThreeFrameSmoother() if cfg.enabled and cfg.smoothing and not live else None
    regressors = RegressStage(regress, times) if regress is not None else None
    if hmm is None and regressors is None:
        return None
    settle = SettledHolds() if cfg.enabled and not live else None
    return TemporalStage(hmm, smoother, regressors, settle)


class TemporalStage:
    """What runs on the engine's results, in order: held faces settled (optional), HMM decoding
    (optional), the regressors (optional), then 3-frame smoothing (optional); ``push`` /
    ``flush`` like its parts."""

    def __init__(self, hmm: HmmStage | None, smoother: ThreeFrameSmoother | None,
                 regress: RegressStage | None = None, settle: SettledHolds | None = None):
        self.stages = [s for s in (settle, hmm, regress, smoother) if s is not None]
        self.ready: deque[FrameResult] = deque()    # decided, not yet handed on (see drain)

    def push(self, result: FrameResult) -> list[FrameResult]:
        results = [result]
        for stage in self.stages:
            results = [out for r in results for out in stage.push(r)]
        return results

    def flush(self) -> list[FrameResult]:
        results: list[FrameResult] = []
        for stage in self.stages:
            results = [out for r in results for out in stage.push(r)] + stage.flush()
        return results

    def drain(self) -> list[FrameResult]:
        """After a stop: what was decided but not handed on, then everything still held, decided now."""
        out = list(self.ready)
        self.ready.clear()
        return out + self.flush()
