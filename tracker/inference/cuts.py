"""Shot changes in a decoded stream, found cheaply on the decode thread.

Each frame is summarised by a 32 x 18 grey thumbnail (area-averaged) in an 8 x 6 grid of
cells. A cut is a frame where at least ``CUT_FRACTION`` of the cells (``STILL_CUT_FRACTION``
between image files) changed their mean grey level by more than ``CELL_CHANGE`` since the
previous frame, or whose size differs. Counting changed cells, rather than averaging the
change, keeps a large occluder or a face leaving half of a video's view from counting as a
cut. The thresholds come from measurements (docs/cuts/README.md): on the shared clips at
most 6 % of the cells change between consecutive frames; between consecutive different
training photos (AFW, HELEN-train, LFPW-train) fewer than 60 % change in 2.3 % of the
pairs and fewer than 30 % in 0.5 % (bursts of one scene). A folder of unrelated photos is
then a cut at nearly every image; a folder of video frames is not.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import cv2
import numpy as np

from tracker.timing import timed

CELL_CHANGE = 12.0       # grey levels a cell's mean must move by to count as changed
CUT_FRACTION = 0.6       # fraction of changed cells that makes a cut in a video
STILL_CUT_FRACTION = 0.3  # the same between image files (no motion: a burst of one scene is two photos)
THUMB = (32, 18)         # thumbnail width, height
GRID = (6, 8)            # cells: rows, columns (3 x 4 thumbnail px each)
CUT_MODES = ("auto", "every_frame", "never")


@dataclasses.dataclass(frozen=True)
class FrameSummary:
    shape: tuple
    cells: np.ndarray    # (6, 8) float32 mean grey level per cell


def frame_summary(image: np.ndarray) -> FrameSummary:
    """The cell summary of a BGR (or grey) frame (under 0.1 ms at 640 x 360 or 1280 x 720)."""
    if image.shape[1] > 4 * THUMB[0] and image.shape[0] > 4 * THUMB[1]:
        # A bilinear step to 4x the thumbnail first: an area average over every pixel of a
        # 1280 x 720 frame costs ~0.9 ms; this samples ~37,000 of them (~0.05 ms).
        image = cv2.resize(image, (4 * THUMB[0], 4 * THUMB[1]), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(image, THUMB, interpolation=cv2.INTER_AREA)
    grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    rows, cols = GRID
    cells = grey.astype(np.float32).reshape(rows, THUMB[1] // rows, cols, THUMB[0] // cols).mean(axis=(1, 3))
    return FrameSummary(image.shape[:2], cells)


def changed_fraction(a: FrameSummary, b: FrameSummary) -> float:
    """Fraction of cells whose mean grey moved by more than CELL_CHANGE; 1 for different sizes."""
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a.cells - b.cells) > CELL_CHANGE).mean())


def is_cut(previous: FrameSummary | None, current: FrameSummary, still: bool = False) -> bool:
    """Whether ``current`` starts a new shot after ``previous`` (the first frame does);
    ``still``: both are image files."""
    return previous is None or changed_fraction(previous, current) >= (STILL_CUT_FRACTION if still else CUT_FRACTION)


def changed_cells(a: FrameSummary, b: FrameSummary, level: float = CELL_CHANGE) -> np.ndarray:
    """(6, 8) bool: the cells whose mean grey moved by more than ``level``."""
    return np.abs(a.cells - b.cells) > level


def cells_outside(shape, boxes, grow: float = 0.5) -> np.ndarray:
    """(6, 8) bool: the cells whose centre lies outside every box (x0, y0, x1, y1) grown by
    ``grow`` of its side on each side, in a frame of ``shape``."""
    h, w = shape[:2]
    rows, cols = GRID
    cy, cx = np.meshgrid((np.arange(rows) + 0.5) * h / rows, (np.arange(cols) + 0.5) * w / cols, indexing="ij")
    outside = np.ones(GRID, bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        g = grow * (x1 - x0)
        outside &= ~((cx >= x0 - g) & (cx <= x1 + g) & (cy >= y0 - g) & (cy <= y1 + g))
    return outside


def mark_cuts(frames: Iterable, mode: str = "auto", times=None) -> Iterator:
    """``frames`` with ``cut`` set on each frame that starts a shot: detected ('auto'),
    every frame ('every_frame') or only where the frame size changes ('never').
    The seconds it spends are added to ``times`` (a StageTimes) as "cuts"."""
    if mode not in CUT_MODES:
        raise ValueError(f"unknown cut mode {mode!r}; choose from {', '.join(CUT_MODES)}")
    previous = None
    for frame in frames:
        summary = None
        if mode == "every_frame":
            cut = True
        elif mode == "never":
            cut = previous is None or previous != frame.image.shape[:2]
            previous = frame.image.shape[:2]
        else:
            with timed(times, "cuts"):
                summary = frame_summary(frame.image)
                cut = is_cut(previous, summary, still=bool(frame.name))
                previous = summary
        yield dataclasses.replace(frame, cut=cut, cells=summary)
