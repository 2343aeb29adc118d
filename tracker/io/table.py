"""Landmark files read into arrays: our CSV, a folder of .pts files, a 300VW sequence."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tracker.errors import AnnotationError
from tracker.geometry.shapes import N_POINTS
from tracker.io.annotations import is_300vw_folder, read_300vw, read_pts
from tracker.io.landmark_csv import read_landmark_csv


@dataclass(frozen=True)
class LandmarkTable:
    """One row per face per frame (and one ``success=False`` row per frame without a face)."""

    frame: np.ndarray          # (N,) int, 1-based
    face_id: np.ndarray        # (N,) int, -1 on rows without a face
    timestamp: np.ndarray      # (N,) float seconds (NaN where the file has none)
    confidence: np.ndarray     # (N,) float (NaN where the file has none)
    success: np.ndarray        # (N,) bool: the row holds a face
    landmarks: np.ndarray      # (N, 68, 2) float, 0-based pixels; NaN where success is False
    extras: dict = field(default_factory=dict)   # other columns by name: float arrays, or str where not numeric

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def file(self) -> np.ndarray:
        """(N,) str: each row's image file ('' for video frames)."""
        return self.extras.get("file", np.full(len(self), "", dtype=object))

    def rows(self, mask) -> "LandmarkTable":
        """The rows selected by a boolean mask or an index array."""
        return LandmarkTable(self.frame[mask], self.face_id[mask], self.timestamp[mask], self.confidence[mask],
                             self.success[mask], self.landmarks[mask], {k: v[mask] for k, v in self.extras.items()})

    def face(self, face_id: int) -> "LandmarkTable":
        """The rows of one face, in frame order."""
        return self.rows(np.flatnonzero(self.face_id == face_id))


def read_landmarks(path) -> LandmarkTable:
    """Read a landmark CSV (ours, or OpenFace's column layout), a folder of .pts files
    (one face per file, frames numbered in sorted file order, ``file`` naming each), a
    single .pts file, or a 300VW sequence folder (``annot/NNNNNN.pts``)."""
    path = Path(path)
    if path.is_dir() and is_300vw_folder(path):
        labels = read_300vw(path).landmarks
        return _table_of_points(sorted(labels), [labels[k] for k in sorted(labels)], files=None)
    if path.is_dir():
        files = sorted(path.glob("*.pts"))
        if not files:
            raise AnnotationError(path, "no .pts files")
        return _table_of_points(range(1, len(files) + 1), [read_pts(f) for f in files], [f.name for f in files])
    if path.suffix == ".pts":
        return _table_of_points([1], [read_pts(path)], [path.name])
    if not path.exists():
        raise AnnotationError(path, "no such file or folder")
    return _table_of_csv(read_landmark_csv(path))


def _table_of_points(frames, points, files) -> LandmarkTable:
    n = len(points)
    return LandmarkTable(frame=np.asarray(list(frames), dtype=np.int64), face_id=np.zeros(n, dtype=np.int64),
                         timestamp=np.full(n, np.nan), confidence=np.full(n, np.nan), success=np.ones(n, bool),
                         landmarks=np.asarray(points, dtype=np.float64).reshape(n, N_POINTS, 2),
                         extras={} if files is None else {"file": np.asarray(files, dtype=object)})


def _table_of_csv(rows) -> LandmarkTable:
    landmarks = np.full((len(rows), N_POINTS, 2), np.nan)
    for i, row in enumerate(rows):
        if row.success:
            landmarks[i] = row.points
    names = list(rows[0].extras) if rows else []
    return LandmarkTable(frame=np.array([r.frame for r in rows], dtype=np.int64),
                         face_id=np.array([r.face_id for r in rows], dtype=np.int64),
                         timestamp=np.array([r.timestamp for r in rows], dtype=np.float64),
                         confidence=np.array([r.confidence for r in rows], dtype=np.float64),
                         success=np.array([r.success for r in rows], dtype=bool), landmarks=landmarks,
                         extras={name: _column(name, [r.extras[name] for r in rows]) for name in names})


def _column(name: str, values: list[str]) -> np.ndarray:
    """A CSV column as floats (empty cells NaN) when every cell is a number, else as text
    (``file`` always as text)."""
    if name == "file":
        return np.asarray(values, dtype=object)
    try:
        return np.array([float(v) if v != "" else np.nan for v in values])
    except ValueError:
        return np.asarray(values, dtype=object)
