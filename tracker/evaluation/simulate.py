"""The simulated annotator (paper Sec. 4.3, Table 3): how much do a few clicks help?

For every annotated face, the ground-truth position of some landmarks is "clicked" and
the face re-predicted conditioned on the clicks (eq. 10, :func:`tracker.distribution.clicks.conditioned_face`):

- ``none``: no click (the prediction as it is);
- ``nose``: the nose tip (point 30);
- ``suggested_n``: the suggested next landmark (:func:`tracker.distribution.clicks.suggested_click`),
  clicked one after another, n = 1 .. N;
- ``best``: the single landmark that, in hindsight, gives the lowest error.

Stills (a folder of images with .pts) are predicted as ``facetrack predict`` does. A video
(a 300VW-style folder) is tracked as ``facetrack track`` does; its per-frame rows condition
each frame on its own classifier distribution, and ``every_M`` rows click the suggested
landmark on one frame in every M only, the HMM carrying the correction to the frames between
(:func:`carried_through_hmm`); ``clicked_only_M`` is the same clicks without the carry.

A click's tolerance is ``tolerance`` (a fraction of the face box's side, widened by each
class's own spread as in eq. 10 here; 0.06, about 10 px on a 170 px face, chosen on the 213
validation faces: one suggested click AUC 0.780 -> 0.782 / 0.783 / 0.789 at 0.015 / 0.03 /
0.06) unless ``tolerance_px`` is given. A face the detector misses counts as a
failure in every row.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from tracker.distribution.clicks import Click, conditioned_face, conditioned_faces, hmm_evidence, suggested_click
from tracker.evaluation.metrics import failure_rate, nme, point_errors, summarize
from tracker.evaluation.scoring import load_ground_truth
from tracker.inference.pipeline import track_frames
from tracker.io.annotations import is_300vw_folder
from tracker.io.sources import SourceError, VideoSource, list_images, read_image
from tracker.results import FrameResult

NOSE_TIP = 30


@dataclass
class Case:
    """One annotated face and what the landmarker saw of it (``box`` None: not found)."""

    key: object
    gt: np.ndarray                       # (68, 2)
    image: np.ndarray | None = None
    box: np.ndarray | None = None
    log_probs: np.ndarray | None = None


def face_tolerance(box: np.ndarray, tolerance: float, tolerance_px: float | None) -> float:
    return float(tolerance_px) if tolerance_px else tolerance * float(box[2] - box[0])


def strategy_landmarks(landmarker, case: Case, clicks: int, tol: float) -> tuple[dict[str, np.ndarray], list[int]]:
    """Landmarks of ``case`` under each click strategy (see the module docstring), and the
    suggested landmarks in the order they were clicked."""
    def predict(chosen) -> np.ndarray:
        picked = [Click(j, *case.gt[j], tol) for j in chosen]
        return conditioned_face(landmarker, case.image, case.box, case.log_probs, picked).landmarks

    out = {"none": predict([]), "nose": predict([NOSE_TIP])}
    chosen: list[int] = []
    current = conditioned_face(landmarker, case.image, case.box, case.log_probs, [])
    for n in range(1, clicks + 1):
        chosen.append(suggested_click(landmarker.model, current, tol, exclude=chosen))
        current = conditioned_face(landmarker, case.image, case.box, case.log_probs,
                                   [Click(j, *case.gt[j], tol) for j in chosen])
        out[f"suggested_{n}"] = current.landmarks
    singles = [c.landmarks for c in conditioned_faces(landmarker, case.image, case.box, case.log_probs,
                                                      [[Click(j, *case.gt[j], tol)] for j in range(len(case.gt))])]
    out["best"] = min(singles, key=lambda s: point_errors(s, case.gt))
    return out, chosen


def still_cases(landmarker, images, gt_root) -> Iterator[Case]:
    """The annotated images of ``images`` (a folder or file) with ground truth in ``gt_root``,
    each face found as ``facetrack predict`` finds it (the one nearest the truth)."""
    gt = load_ground_truth(gt_root)
    for path in list_images(images):
        if path.stem not in gt:
            continue
        image = read_image(path)
        truth = gt[path.stem]
        faces = landmarker(image)
        if not faces:
            yield Case(path.stem, truth)
            continue
        face = min(faces, key=lambda f: point_errors(f.landmarks, truth))
        yield Case(path.stem, truth, image, face.box, face.log_probs)


def track_raw(tracker, video) -> list[FrameResult]:
    """Every frame of ``video`` through the tracking engine only (before the HMM), with each
    face's full distribution; the images are dropped (re-decoded when needed)."""
    cfg = tracker.config.tracking
    engine = tracker.new_engine()
    try:
        return [FrameResult(dataclasses.replace(r.frame, image=None), r.faces)
                for r in track_frames(VideoSource(video), engine, cfg.batch_size, cfg.queue_size, cuts=cfg.cuts)]
    finally:
        engine.close()


def matched_face(result: FrameResult, truth: np.ndarray):
    """The face of ``result`` nearest the ground truth (None when there is none)."""
    return min(result.faces, key=lambda f: point_errors(f.landmarks, truth), default=None)


def carried_through_hmm(tracker, raw: list[FrameResult], video, clicks: dict) -> list[FrameResult]:
    """The tracker's output when ``clicks`` {frame index: {face_id: [Click, ...]}} are given:
    each clicked face is restricted to its consistent classes Omega(E) on its frame (the
    others get a log-observation of ``tracker.distribution.clicks.HMM_PENALTY``, so every decoded path goes through
    Omega(E) there and the correction reaches the frames around it), then the HMM, the
    regressors and the smoothing run as usual. A clicked frame itself keeps its own
    prediction given the clicks (:func:`tracker.distribution.clicks.conditioned_face`, as in
    ``facetrack annotate``), the clicked points where they were put."""
    stage = tracker.new_temporal_stage(live=False)
    out: list[FrameResult] = []
    own: dict[tuple[int, int], np.ndarray] = {}
    for result, image in with_images(raw, video):
        faces = []
        for f in result.faces:
            picked = clicks.get(result.frame.index, {}).get(f.face_id)
            if picked:
                own[result.frame.index, f.face_id] = conditioned_face(tracker.landmarker, image, f.box, f.log_probs,
                                                                      picked).landmarks
            faces.append(hmm_evidence(tracker.landmarker, image, f, picked))
        out += stage.push(FrameResult(dataclasses.replace(result.frame, image=image), tuple(faces)))
    out += stage.flush()
    return [_with_own_prediction(r, own) for r in out]


def with_images(raw: list[FrameResult], video) -> Iterator[tuple[FrameResult, np.ndarray]]:
    """Each result of :func:`track_raw` with its frame's image, decoded again."""
    source = VideoSource(video)
    try:
        for result, frame in zip(raw, source):
            yield result, frame.image
    finally:
        source.close()


def _with_own_prediction(result: FrameResult, own: dict) -> FrameResult:
    faces = tuple(dataclasses.replace(f, landmarks=own[result.frame.index, f.face_id])
                  if (result.frame.index, f.face_id) in own else f for f in result.faces)
    return FrameResult(dataclasses.replace(result.frame, image=None), faces)


def errors_of(landmarks: dict, gt: dict) -> tuple[np.ndarray, np.ndarray]:
    """(diag, io) NME per ground-truth key (inf where nothing was predicted)."""
    keys = list(gt)
    diag = np.array([nme(landmarks[k], gt[k], "diag") if landmarks.get(k) is not None else np.inf for k in keys])
    io = np.array([nme(landmarks[k], gt[k], "io") if landmarks.get(k) is not None else np.inf for k in keys])
    return diag, io


def table(rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """{row: {nme_diag, nme_io, auc, failure_rate, failure_rate_io, n, missing}} from per-face
    errors; ``failure_rate``: diag NME above 0.08 (300VW, the paper's Table 3),
    ``failure_rate_io``: inter-ocular NME above 0.08 (the 300-W convention, stricter)."""
    out = {}
    for name, (diag, io) in rows.items():
        s = summarize(diag, io)
        out[name] = {"nme_diag": s.nme_diag, "nme_io": s.nme_io, "auc": s.auc, "failure_rate": s.failure_rate,
                     "failure_rate_io": failure_rate(io), "n": s.n, "missing": s.missing}
    return out


def simulate_stills(tracker, images, gt_root, clicks: int = 3, tolerance: float = 0.06,
                    tolerance_px: float | None = None, progress=None) -> dict[str, dict]:
    """The table for a folder of annotated images."""
    per_row: dict[str, dict] = {}
    gt: dict = {}
    for case in still_cases(tracker.landmarker, images, gt_root):
        gt[case.key] = case.gt
        if case.box is not None:
            tol = face_tolerance(case.box, tolerance, tolerance_px)
            for name, points in strategy_landmarks(tracker.landmarker, case, clicks, tol)[0].items():
                per_row.setdefault(name, {})[case.key] = points
        if progress is not None:
            progress(1)
    names = ["none", "nose"] + [f"suggested_{n}" for n in range(1, clicks + 1)] + ["best"]
    return table({name: errors_of(per_row.get(name, {}), gt) for name in names})


def simulate_sequence(tracker, folder, clicks: int = 3, every=(10, 30), tolerance: float = 0.06,
                      tolerance_px: float | None = None, progress=None) -> dict[str, dict]:
    """The table for a 300VW-style folder (``vid.*`` and ``annot/``): the tracker's own
    output, per-frame conditioning, and one suggested click every M frames carried by the HMM."""
    folder = Path(folder)
    video = sequence_video(folder)
    gt = load_ground_truth(folder)
    raw = track_raw(tracker, video)
    tracked = _matched_landmarks(carried_through_hmm(tracker, raw, video, {}), gt)
    rows = {"tracked": errors_of(tracked, gt)}
    per_row: dict[str, dict] = {}
    suggested: dict[int, tuple[int, Click]] = {}         # frame -> (face_id, the first suggested click)
    for result, image in with_images(raw, video):
        truth = gt.get(result.frame.index)
        face = None if truth is None else matched_face(result, truth)
        if face is None:
            continue
        case = Case(result.frame.index, truth, image, face.box, face.log_probs)
        tol = face_tolerance(face.box, tolerance, tolerance_px)
        landmarks, order = strategy_landmarks(tracker.landmarker, case, max(1, clicks), tol)
        for name, points in landmarks.items():
            per_row.setdefault(name, {})[case.key] = points
        suggested[case.key] = (face.face_id, Click(order[0], *truth[order[0]], tol))
        if progress is not None:
            progress(1)
    names = ["none", "nose"] + [f"suggested_{n}" for n in range(1, clicks + 1)] + ["best"]
    rows.update({name: errors_of(per_row.get(name, {}), gt) for name in names})
    for m in every:
        chosen = {k: {fid: [c]} for k, (fid, c) in suggested.items() if (k - 1) % m == 0}
        carried = _matched_landmarks(carried_through_hmm(tracker, raw, video, chosen), gt)
        rows[f"every_{m}"] = errors_of(carried, gt)
        rows[f"clicked_only_{m}"] = errors_of({**tracked, **{k: carried[k] for k in chosen if k in carried}}, gt)
    return table(rows)


def _matched_landmarks(results: list[FrameResult], gt: dict) -> dict:
    out = {}
    for r in results:
        truth = gt.get(r.frame.index)
        face = None if truth is None else matched_face(r, truth)
        if face is not None:
            out[r.frame.index] = face.landmarks
    return out


def sequence_video(folder: Path) -> Path:
    """The video of a 300VW-style folder (``vid.mp4`` or ``vid.avi``, ...)."""
    videos = sorted(p for p in folder.glob("vid.*") if p.is_file())
    if not is_300vw_folder(folder) or not videos:
        raise SourceError(f"{folder}: not a 300VW-style folder (a vid.* video and annot/*.pts)")
    return videos[0]


def simulate(tracker, inputs, gt_root, clicks: int = 3, every=(10, 30), tolerance: float = 0.06,
             tolerance_px: float | None = None, progress=None) -> dict[str, dict]:
    """:func:`simulate_sequence` when ``gt_root`` is a 300VW-style folder, else
    :func:`simulate_stills` on the images ``inputs`` with the .pts of ``gt_root``."""
    gt_root = Path(gt_root)
    if gt_root.is_dir() and is_300vw_folder(gt_root):
        return simulate_sequence(tracker, gt_root, clicks, every, tolerance, tolerance_px, progress)
    return simulate_stills(tracker, inputs, gt_root, clicks, tolerance, tolerance_px, progress)


def format_table(rows: dict[str, dict]) -> str:
    """The table as aligned text, one row per strategy."""
    lines = [f"{'clicks':<18} {'NME(diag)':>9} {'NME(io)':>8} {'AUC@0.08':>8} {'FR':>7} {'FR(io)':>7}  faces"]
    for name, r in rows.items():
        lines.append(f"{name:<18} {r['nme_diag']:>9.4f} {r['nme_io']:>8.4f} {r['auc']:>8.3f} "
                     f"{100 * r['failure_rate']:>6.2f}% {100 * r['failure_rate_io']:>6.2f}%  "
                     f"{r['n'] - r['missing']}/{r['n']}")
    return "\n".join(lines)
