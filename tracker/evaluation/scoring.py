"""Pairing predictions with ground truth and scoring them (300VW protocol)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracker.errors import FacetrackError
from tracker.evaluation.metrics import Summary, hard_subset, jitter, nme, point_errors, summarize
from tracker.io.annotations import is_300vw_folder, read_300vw, read_pts, read_pts_folder
from tracker.io.table import read_landmarks


class EvaluationError(FacetrackError):
    """Inputs that cannot be evaluated together."""


def load_ground_truth(path) -> dict:
    """GT landmarks keyed by 1-based frame (300VW folder) or file stem (.pts folder/file)."""
    path = Path(path)
    if path.is_dir() and is_300vw_folder(path):
        return dict(read_300vw(path).landmarks)
    if path.is_dir():
        gt = read_pts_folder(path)
        if not gt:
            raise EvaluationError(f"{path}: no .pts files")
        return gt
    if path.suffix == ".pts":
        return {path.stem: read_pts(path)}
    if not path.exists():
        raise EvaluationError(f"{path}: no such file or folder")
    raise EvaluationError(f"{path}: ground truth must be a folder of .pts or a 300VW sequence folder")


def load_predictions(path) -> dict:
    """Predicted faces keyed like the ground truth: key -> list of (68, 2) arrays.

    Rows naming an image file (a CSV's ``file`` column, a .pts folder) are keyed by the
    file's stem, others by frame number.
    """
    table = read_landmarks(path)
    preds: dict = {}
    for i, (frame, name) in enumerate(zip(table.frame, table.file)):
        faces = preds.setdefault(Path(name).stem if name else int(frame), [])
        if table.success[i]:
            faces.append(table.landmarks[i])
    return preds


def _align_keys(gt: dict, preds: dict) -> dict:
    """Re-key predictions when they index frames by number and the GT by file name."""
    gt_str = all(isinstance(k, str) for k in gt)
    pred_int = all(isinstance(k, int) for k in preds)
    if gt_str and pred_int and preds and not (set(gt) & set(map(str, preds))):
        order = sorted(gt)
        return {order[k - 1]: v for k, v in preds.items() if 1 <= k <= len(order)}
    if not gt_str and preds and all(isinstance(k, str) for k in preds):
        return {int(k): v for k, v in preds.items() if k.isdigit()}
    return preds


@dataclass(frozen=True)
class Scored:
    """Per-frame errors of one prediction set against the ground truth."""

    keys: list
    err_diag: np.ndarray      # inf where the prediction is missing
    err_io: np.ndarray
    gt: np.ndarray            # (n, 68, 2)

    def summary(self, subset: np.ndarray | None = None) -> Summary:
        if subset is None:
            return summarize(self.err_diag, self.err_io)
        return summarize(self.err_diag[subset], self.err_io[subset])


def score(preds: dict, gt: dict) -> Scored:
    """Error of the best-matching predicted face on every ground-truth frame."""
    preds = _align_keys(gt, preds)
    keys = sorted(gt, key=lambda k: (isinstance(k, str), k))
    gts = np.stack([gt[k] for k in keys])
    err_diag = np.full(len(keys), np.inf)
    err_io = np.full(len(keys), np.inf)
    for i, key in enumerate(keys):
        faces = preds.get(key) or []
        if not faces:
            continue
        best = min(faces, key=lambda f: point_errors(f, gts[i]))
        err_diag[i] = nme(best, gts[i], "diag")
        err_io[i] = nme(best, gts[i], "io")
    return Scored(keys=keys, err_diag=err_diag, err_io=err_io, gt=gts)


def evaluate(pred_path, gt_path, hard_fraction: float = 0.1) -> tuple[Scored, dict]:
    """Score one prediction set; returns the scores and {'all': Summary, 'hard': Summary}."""
    gt = load_ground_truth(gt_path)
    preds = load_predictions(pred_path)
    scored = score(preds, gt)
    single = {k: v[0] for k, v in preds.items() if isinstance(k, int) and len(v) == 1}
    overall = dataclasses.replace(scored.summary(), jitter=jitter(single))
    return scored, {"all": overall, "hard": scored.summary(hard_subset(scored.gt, hard_fraction))}
