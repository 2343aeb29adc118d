"""The per-frame landmark CSV (OpenFace-compatible column layout).

Header: ``frame,face_id,timestamp,confidence,success,x_0..x_67,y_0..y_67`` then any
extra columns (from ``facetrack track``: head pose ``yaw,yaw_std,pitch,pitch_std,roll,roll_std``
in degrees, per-landmark spread ``s_0..s_67`` in pixels when asked, ``file`` for image
folders). ``frame`` is 1-based, coordinates are
0-based pixels of the original frame; rows without a face have ``success=0`` and
empty coordinates.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracker.errors import FacetrackError
from tracker.geometry.shapes import N_POINTS

BASE_COLUMNS = ["frame", "face_id", "timestamp", "confidence", "success"]
POINT_COLUMNS = [f"x_{i}" for i in range(N_POINTS)] + [f"y_{i}" for i in range(N_POINTS)]
HEADER = BASE_COLUMNS + POINT_COLUMNS


class CsvFormatError(FacetrackError, ValueError):
    """A landmark CSV that does not follow the schema."""


@dataclass(frozen=True)
class CsvRow:
    frame: int
    face_id: int
    timestamp: float
    confidence: float
    success: bool
    points: np.ndarray | None          # (68, 2) or None when success is false
    extras: dict


class LandmarkCsvWriter:
    """Sink writing one row per face (or one ``success=0`` row per empty frame).

    A context manager; each frame's rows are flushed as written, so a crash or
    Ctrl-C leaves a valid file holding every frame handled so far.
    """

    def __init__(self, path, extra_columns: tuple[str, ...] = ()):
        self.path = Path(path)
        self.extra_columns = list(extra_columns)
        self._file = None
        self._writer = None

    def __enter__(self) -> "LandmarkCsvWriter":
        try:
            self._file = open(self.path, "w", newline="")
        except OSError as exc:
            raise FacetrackError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(HEADER + self.extra_columns)
        self._file.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def flush(self) -> None:
        self._file.flush()

    def write(self, frame: int, face_id: int, timestamp: float, confidence: float,
              points: np.ndarray | None, extras: dict | None = None, flush: bool = True) -> None:
        """Write one row; ``points=None`` writes a ``success=0`` row."""
        success = points is not None
        if success:
            pts = np.asarray(points, dtype=np.float64)
            coords = [f"{v:.2f}" for v in np.concatenate([pts[:, 0], pts[:, 1]])]
        else:
            coords = [""] * (2 * N_POINTS)
        extras = extras or {}
        row = [str(int(frame)), str(int(face_id)), f"{timestamp:.4f}", f"{confidence:.4f}",
               "1" if success else "0", *coords, *(str(extras.get(c, "")) for c in self.extra_columns)]
        self._writer.writerow(row)
        if flush:
            self._file.flush()

    def write_frame(self, frame: int, timestamp: float, faces, extras: dict | None = None) -> None:
        """One frame: a row per ``(face_id, confidence, points[, face_extras])`` in ``faces``
        (``face_extras`` adds to ``extras`` for that row), or one ``success=0`` row when
        there is none; then flush."""
        wrote = False
        for face_id, confidence, points, *own in faces:
            row_extras = {**(extras or {}), **(own[0] if own else {})}
            self.write(frame, face_id, timestamp, confidence, points, row_extras, flush=False)
            wrote = True
        if not wrote:
            self.write(frame, -1, timestamp, 0.0, None, extras, flush=False)
        self._file.flush()


def read_landmark_csv(path) -> list[CsvRow]:
    """Read a landmark CSV written by us or by OpenFace-style tools."""
    path = Path(path)
    try:
        handle = open(path, newline="")
    except FileNotFoundError:
        raise CsvFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise CsvFormatError(f"{path}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise CsvFormatError(f"{path}: empty file") from None
        except (csv.Error, UnicodeDecodeError):
            raise CsvFormatError(f"{path}: not a CSV text file") from None
        missing = [c for c in HEADER if c not in header]
        if missing:
            raise CsvFormatError(f"{path}:1: not a landmark CSV, missing column {missing[0]!r}")
        col = {name: i for i, name in enumerate(header)}
        extra = [h for h in header if h not in HEADER]
        xi = [col[f"x_{i}"] for i in range(N_POINTS)]
        yi = [col[f"y_{i}"] for i in range(N_POINTS)]
        rows = []
        try:
            for lineno, values in enumerate(reader, start=2):
                if not values:
                    continue
                rows.append(_parse_row(path, lineno, values, col, xi, yi, extra))
        except (csv.Error, UnicodeDecodeError):
            raise CsvFormatError(f"{path}: not a CSV text file") from None
    return rows


def _parse_row(path, lineno, values, col, xi, yi, extra) -> CsvRow:
    if len(values) < len(col):
        raise CsvFormatError(f"{path}:{lineno}: truncated row ({len(values)} of {len(col)} values)")
    try:
        success = float(values[col["success"]]) > 0
        points = None
        if success:
            points = np.stack([[float(values[i]) for i in xi], [float(values[i]) for i in yi]], axis=1)
        return CsvRow(
            frame=int(float(values[col["frame"]])),
            face_id=int(float(values[col["face_id"]] or 0)),
            timestamp=float(values[col["timestamp"]] or "nan"),
            confidence=float(values[col["confidence"]] or "nan"),
            success=success,
            points=points,
            extras={name: values[col[name]] for name in extra},
        )
    except ValueError:
        raise CsvFormatError(f"{path}:{lineno}: non-numeric value") from None
