"""Landmark annotation formats: 300-W .pts, 300VW folders, menpo .ljson, dlib XML.

Every reader returns 0-based pixel coordinates as float64 arrays of shape (68, 2);
.pts files are 1-based on disk and converted on the way in and out.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tracker.errors import AnnotationError
from tracker.geometry.shapes import N_POINTS

VIDEO_NAMES = ("vid.avi", "vid.mp4")


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise AnnotationError(path, "no such file") from None
    except IsADirectoryError:
        raise AnnotationError(path, "is a directory, expected a file") from None
    except UnicodeDecodeError:
        raise AnnotationError(path, "not a text file") from None
    except OSError as exc:
        raise AnnotationError(path, exc.strerror or str(exc)) from None


def _parse_point(path: Path, lineno: int, text: str) -> tuple[float, float]:
    parts = text.split()
    if len(parts) != 2:
        raise AnnotationError(path, f"expected 'x y', got {text.strip()!r}", lineno)
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise AnnotationError(path, f"non-numeric value in {text.strip()!r}", lineno) from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise AnnotationError(path, f"non-finite value in {text.strip()!r}", lineno)
    return x, y


def read_pts(path, n_points: int = N_POINTS) -> np.ndarray:
    """Read a 300-W .pts file (with or without its header) as 0-based (n, 2) points."""
    path = Path(path)
    lines = _read_text(path).splitlines()
    header_n = None
    body_start, body_end = 0, len(lines)
    has_brace = any(line.strip() == "{" for line in lines)
    if has_brace:
        for i, line in enumerate(lines):
            key = line.split(":", 1)
            if key[0].strip() == "n_points" and len(key) == 2:
                try:
                    header_n = int(key[1])
                except ValueError:
                    raise AnnotationError(path, "bad n_points value", i + 1) from None
            if line.strip() == "{":
                body_start = i + 1
                break
        closing = [i for i in range(body_start, len(lines)) if lines[i].strip() == "}"]
        if not closing:
            raise AnnotationError(path, "truncated: no closing '}'", len(lines))
        body_end = closing[0]
    points = [
        _parse_point(path, i + 1, lines[i])
        for i in range(body_start, body_end)
        if lines[i].strip()
    ]
    if header_n is not None and header_n != len(points):
        raise AnnotationError(path, f"header says {header_n} points, found {len(points)}", body_end + 1)
    if len(points) != n_points:
        raise AnnotationError(path, f"expected {n_points} points, found {len(points)}", body_end + 1)
    return np.asarray(points, dtype=np.float64) - 1.0


def write_pts(path, points: np.ndarray) -> None:
    """Write 0-based points as a 300-W .pts file (1-based, with header)."""
    points = np.asarray(points, dtype=np.float64) + 1.0
    rows = "\n".join(f"{x:.4f} {y:.4f}" for x, y in points)
    Path(path).write_text(f"version: 1\nn_points: {len(points)}\n{{\n{rows}\n}}\n")


def read_pts_folder(folder) -> dict[str, np.ndarray]:
    """All .pts files of a folder, keyed by file stem, in sorted order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(folder, "no such folder")
    return {p.stem: read_pts(p) for p in sorted(folder.glob("*.pts"))}


@dataclass(frozen=True)
class Sequence300VW:
    """A 300VW sequence: its video and the labelled frames (1-based) -> landmarks."""

    folder: Path
    video: Path | None
    landmarks: dict[int, np.ndarray] = field(repr=False)

    @property
    def frames(self) -> list[int]:
        return sorted(self.landmarks)


def is_300vw_folder(folder) -> bool:
    return (Path(folder) / "annot").is_dir()


def read_300vw(folder) -> Sequence300VW:
    """Read a 300VW sequence folder: ``vid.avi``/``vid.mp4`` and ``annot/NNNNNN.pts``."""
    folder = Path(folder)
    annot = folder / "annot"
    if not annot.is_dir():
        raise AnnotationError(folder, "not a 300VW sequence: no annot/ folder")
    landmarks = {}
    for p in sorted(annot.glob("*.pts")):
        if not re.fullmatch(r"\d+", p.stem) or int(p.stem) < 1:
            raise AnnotationError(p, "300VW annotation names must be 1-based frame numbers")
        landmarks[int(p.stem)] = read_pts(p)
    video = next((folder / n for n in VIDEO_NAMES if (folder / n).is_file()), None)
    return Sequence300VW(folder=folder, video=video, landmarks=landmarks)


def read_ljson(path) -> np.ndarray:
    """Read the 68 landmarks of a menpo .ljson file (menpo stores points as (y, x))."""
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, f"invalid JSON: {exc.msg}", exc.lineno) from None
    points = None
    if isinstance(data, dict):
        if "landmarks" in data and isinstance(data["landmarks"], dict):
            points = data["landmarks"].get("points")
        groups = data.get("groups")
        if points is None and isinstance(groups, dict):
            group = next((g for g in groups.values() if len(g.get("landmarks", {}).get("points", [])) == N_POINTS), None)
            points = group["landmarks"]["points"] if group else None
    if points is None:
        raise AnnotationError(path, "no 68-point landmark group found")
    try:
        yx = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(path, "non-numeric landmark value") from None
    if yx.shape != (N_POINTS, 2):
        raise AnnotationError(path, f"expected {N_POINTS} points of 2 values, got shape {yx.shape}")
    if not np.isfinite(yx).all():
        raise AnnotationError(path, "non-finite landmark value")
    return yx[:, ::-1].copy()


@dataclass(frozen=True)
class DlibSample:
    """One image of a dlib training XML: the faces' boxes and (optional) 68 parts."""

    image: Path
    boxes: np.ndarray        # (n, 4) x0, y0, x1, y1
    landmarks: list          # per box: (68, 2) array or None when unlabelled


def read_dlib_xml(path) -> list[DlibSample]:
    """Read dlib's ``training_with_face_landmarks.xml`` layout."""
    path = Path(path)
    text = _read_text(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise AnnotationError(path, f"invalid XML: {exc}", exc.position[0]) from None
    images = root.find("images")
    if images is None:
        raise AnnotationError(path, "no <images> element")
    return [_dlib_image(path, node) for node in images.iter("image")]


def _dlib_image(path: Path, node: ET.Element) -> DlibSample:
    boxes, landmarks = [], []
    for box in node.iter("box"):
        try:
            top, left = float(box.get("top")), float(box.get("left"))
            width, height = float(box.get("width")), float(box.get("height"))
        except (TypeError, ValueError):
            raise AnnotationError(path, f"box of {node.get('file')} lacks numeric top/left/width/height") from None
        boxes.append((left, top, left + width, top + height))
        landmarks.append(_dlib_parts(path, node, box))
    return DlibSample(
        image=(path.parent / node.get("file", "")),
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        landmarks=landmarks,
    )


def _dlib_parts(path: Path, node: ET.Element, box: ET.Element):
    parts = box.findall("part")
    if not parts:
        return None
    points = np.full((N_POINTS, 2), np.nan)
    for part in parts:
        try:
            idx = int(part.get("name"))
            points[idx] = float(part.get("x")), float(part.get("y"))
        except (TypeError, ValueError, IndexError):
            raise AnnotationError(path, f"bad part {part.attrib} in {node.get('file')}") from None
    if np.isnan(points).any():
        raise AnnotationError(path, f"box in {node.get('file')} has {len(parts)} parts, expected {N_POINTS}")
    return points
