"""Interactive annotation, headless: faces predicted, corrected by clicks (paper eq. 10), saved.

An :class:`AnnotationSession` walks through items (the images of a folder, one image, or
the frames of a video) and keeps, for every item visited, the detected faces and each
face's clicks. After every change the face is re-predicted given its clicks
(:func:`tracker.distribution.clicks.conditioned_face`: the classes consistent with the clicks, then
the regressors, the clicked points kept) and the landmark whose click would help most is
suggested (:func:`tracker.distribution.clicks.suggested_click`). :meth:`AnnotationSession.render` is
the picture the window shows; the window itself is in :mod:`tracker.cli.annotate`.

A click is a landmark put at a point: pressing the mouse picks the landmark nearest the
press (on any face, which becomes the selected one), releasing puts it where the mouse is.
Its tolerance is ``tolerance`` pixels (default 4: about how precisely one clicks on a
landmark at the image's own resolution).

Saving writes every item visited, each file to a temporary name then renamed:

- images: ``OUT/<image stem>.pts`` for the first face (best first, as detected),
  ``OUT/<stem>_1.pts``, ``<stem>_2.pts`` ... for the others;
- a video: 300VW layout, ``OUT/annot/000001.pts`` (the 1-based frame number, 6 digits) for
  the first face, ``OUT/annot_1/...`` for the second and so on;
- both: ``OUT/landmarks.csv``, the landmark CSV of all items visited (images get a
  ``file`` column; an item without a face gets a ``success=0`` row).

A video is decoded on demand: frames are read forward as they are needed and the last
:data:`CACHED_FRAMES` are kept in memory; going back further re-reads the file from its
start. Only the faces and clicks of visited frames are kept for the whole session.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tracker.distribution.clicks import Click, Conditioned, conditioned_face, hmm_evidence, suggested_click
from tracker.errors import OutputError, UsageError
from tracker.geometry.boxes import iou
from tracker.geometry.shapes import GROUPS
from tracker.io.annotations import write_pts
from tracker.io.draw import annotate as draw_face
from tracker.io.landmark_csv import LandmarkCsvWriter
from tracker.io.sources import IMAGE_SUFFIXES, Frame, SourceError, VideoSource, is_camera, list_images, read_image
from tracker.results import FaceResult, FrameResult

DEFAULT_TOLERANCE = 4.0        # pixels
CARRY_FRAMES = 15              # frames either side a click is carried to through the HMM ('h')
CHAIN_IOU = 0.3                # box overlap that makes a face on the next frame the same face
CACHED_FRAMES = 64             # decoded video frames kept in memory (640x360: 0.7 MB each)
CSV_NAME = "landmarks.csv"
HELP_LINE = ("drag a landmark | n/space next  p/bksp previous  u undo  c clear  h carry (video)  tab face  "
             "s save  q/esc save+quit")

CLICKED_COLOUR = (60, 60, 255)        # BGR: the points the user placed
SUGGESTED_COLOUR = (0, 255, 255)      # the suggested next landmark
DRAG_COLOUR = (255, 255, 255)


# ----------------------------------------------------------------------------- items

@dataclass(frozen=True)
class Item:
    """One image or video frame to annotate."""

    position: int              # 0-based place in the session
    number: int                # 1-based: the frame number of a video, the image's place in its folder
    image: np.ndarray          # HxWx3 uint8 BGR
    name: str = ""             # file name (images)
    timestamp: float = 0.0
    error: str = ""            # why the image could not be read ('' when it could)


class ImageItems:
    """The images of a folder (sorted), or one image; each read when asked for."""

    kind = "images"

    def __init__(self, path):
        self.path = Path(path)
        self.files = list_images(path)

    @property
    def count(self) -> int:
        return len(self.files)

    def __getitem__(self, position: int) -> Item:
        if not 0 <= position < len(self.files):
            raise IndexError(position)
        path = self.files[position]
        try:
            image, error = read_image(path), ""
        except SourceError as exc:
            image, error = np.zeros((240, 320, 3), np.uint8), str(exc)
        return Item(position, position + 1, image, path.name, 0.0, error)

    def close(self) -> None:
        pass


class VideoItems:
    """The frames of a video (the first ``limit`` when given), decoded forward as needed;
    the last ``cached`` kept, earlier ones read again from the start of the file."""

    kind = "video"

    def __init__(self, path, limit: int | None = None, cached: int = CACHED_FRAMES):
        self.path = Path(path)
        self.limit = limit
        self.cached = max(1, cached)
        self._source = VideoSource(self.path, threads=1)          # a missing or unreadable file fails here
        header = self._source.frame_count or None
        self._count = min(header, limit) if header and limit else (header or limit)
        self._frames = iter(self._source)
        self._decoded = 0
        self._cache: OrderedDict[int, Item] = OrderedDict()
        self.restarts = 0
        self[0]                                                   # a file without a decodable frame fails here

    @property
    def count(self) -> int | None:
        """How many frames (from the header until the end was reached; None: unknown)."""
        return self._count

    def __getitem__(self, position: int) -> Item:
        if position < 0 or (self.limit is not None and position >= self.limit):
            raise IndexError(position)
        if position in self._cache:
            self._cache.move_to_end(position)
            return self._cache[position]
        if position < self._decoded:
            self._restart()
        while self._decoded <= position:
            frame = next(self._frames, None)
            if frame is None:
                self._count = self._decoded
                raise IndexError(position)
            item = Item(self._decoded, frame.index, frame.image, "", frame.timestamp)
            self._decoded += 1
            self._cache[item.position] = item
            if len(self._cache) > self.cached:
                self._cache.popitem(last=False)
        return self._cache[position]

    def _restart(self) -> None:
        self._frames.close()
        self._source = VideoSource(self.path, threads=1)
        self._frames = iter(self._source)
        self._decoded = 0
        self.restarts += 1

    def close(self) -> None:
        self._frames.close()
        self._source.close()


def open_items(path, limit: int | None = None):
    """:class:`ImageItems` for an image or a folder, :class:`VideoItems` for a video file."""
    if is_camera(path) and not Path(str(path)).exists():
        raise UsageError(f"{path}: annotation needs an image, a folder of images or a video file, not a camera")
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageItems(path)
    return VideoItems(path, limit)


def default_out(path) -> Path:
    """``<input>_annotated`` beside the input (``faces/`` -> ``faces_annotated/``,
    ``clip.mp4`` -> ``clip_annotated/``): never the folder the input's own .pts are in."""
    path = Path(path)
    stem = path.name if path.is_dir() else path.stem
    return path.parent / f"{stem}_annotated"


def check_out(out: Path, input_path: Path) -> None:
    """Refuse an output folder that holds the input (its .pts would be overwritten); create it."""
    input_path = Path(input_path)
    folder = input_path if input_path.is_dir() else input_path.parent
    if out.exists() and out.resolve() == folder.resolve():
        raise UsageError(f"{out}: the output folder is the input's own folder (its .pts files would be "
                         f"overwritten); choose another --out")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise OutputError(f"{out}: folder is not writable")


# ----------------------------------------------------------------------------- state

@dataclass
class FaceState:
    """One detected face: its estimate (box, full distribution), the clicks, the re-prediction."""

    estimate: object                       # tracker.inference.landmarker.FaceEstimate
    clicks: tuple[Click, ...] = ()
    conditioned: Conditioned | None = None
    suggestion: int = -1                   # the landmark to click next
    carried: np.ndarray | None = None      # (68, 2) landmarks the HMM carried here from a clicked frame
    carried_from: int = 0                  # that frame's number

    @property
    def landmarks(self) -> np.ndarray:
        """The clicks' re-prediction; on a face without clicks, what the HMM carried, if anything."""
        if self.carried is not None and not self.clicks:
            return self.carried
        return self.conditioned.landmarks

    @property
    def clicked(self) -> set[int]:
        return {c.landmark for c in self.clicks}


@dataclass
class ItemState:
    """The faces of one visited item, the selected one, and the undo history."""

    faces: list[FaceState]
    number: int = 0                        # the item's frame number (1-based), name and timestamp
    name: str = ""
    timestamp: float = 0.0
    selected: int = 0
    history: list[tuple[int, tuple[Click, ...]]] = field(default_factory=list)   # (face, clicks before)


def landmark_name(index: int) -> str:
    """``nose 30``, ``jaw 8``... (the 0-based 68-point index and its part)."""
    part = next(name for name, idx in GROUPS.items() if index in idx)
    return f"{part.replace('_', ' ')} {index}"


def nearest_point(points: np.ndarray, x: float, y: float) -> tuple[int, float]:
    """(index, distance) of the point of ``points`` (n, 2) nearest (x, y)."""
    d = np.hypot(points[:, 0] - x, points[:, 1] - y)
    i = int(np.argmin(d))
    return i, float(d[i])


# ----------------------------------------------------------------------------- session

class AnnotationSession:
    """Faces of ``items`` predicted by ``tracker`` (a :class:`tracker.api.Tracker` built with
    ``temporal=True``, so that estimates keep their full distribution), corrected by clicks
    of ``tolerance`` pixels, saved under ``out``. Starts on the first item."""

    def __init__(self, tracker, items, out, tolerance: float = DEFAULT_TOLERANCE):
        if tolerance <= 0:
            raise UsageError(f"the click tolerance must be positive, got {tolerance}")
        self.tracker = tracker
        self.items = items
        self.out = Path(out)
        self.tolerance = float(tolerance)
        self.states: dict[int, ItemState] = {}
        self.message = ""
        self.drag: tuple[int, int, float, float] | None = None     # (face, landmark, x, y) while pressed
        self._go(0)

    # --- where we are

    @property
    def item(self) -> Item:
        return self._item

    @property
    def state(self) -> ItemState:
        return self.states[self._item.position]

    @property
    def face(self) -> FaceState | None:
        """The selected face (None on an item without a face)."""
        faces = self.state.faces
        return faces[self.state.selected] if faces else None

    # --- moving between items and faces

    def next(self) -> bool:
        """Go to the next item; False (and stay) at the last one."""
        return self._go(self._item.position + 1)

    def previous(self) -> bool:
        """Go to the previous item; False (and stay) at the first one."""
        if self._item.position == 0:
            self.message = "first item"
            return False
        return self._go(self._item.position - 1)

    def _go(self, position: int) -> bool:
        try:
            self._item = self.items[position]
        except IndexError:
            self.message = "last item"
            return False
        self.drag = None
        self.message = self._item.error
        self._state_at(position)
        return True

    def _state_at(self, position: int) -> ItemState:
        """The state of the item at ``position``, its faces detected and predicted on first use."""
        if position not in self.states:
            item = self.items[position]
            faces = [FaceState(e) for e in self._estimates(item)]
            for face in faces:
                self._condition(face, item.image)
            self.states[position] = ItemState(faces, item.number, item.name, item.timestamp)
        return self.states[position]

    def _estimates(self, item: Item) -> list:
        if item.error:
            return []
        estimates = self.tracker.landmarker(item.image)
        if any(e.log_probs is None for e in estimates):
            raise UsageError("annotation needs each face's full distribution: build the Tracker with temporal=True")
        return estimates

    def next_face(self) -> None:
        """Select the next face of the item (cycling)."""
        if self.state.faces:
            self.state.selected = (self.state.selected + 1) % len(self.state.faces)

    def select_nearest(self, x: float, y: float) -> int:
        """Select the face with a landmark nearest (x, y); its index (-1: no face)."""
        faces = self.state.faces
        if not faces:
            return -1
        self.state.selected = int(np.argmin([nearest_point(f.landmarks, x, y)[1] for f in faces]))
        return self.state.selected

    # --- clicks

    def click(self, landmark: int, x: float, y: float) -> None:
        """Put ``landmark`` of the selected face at (x, y) and re-predict the face given it
        (a landmark clicked again moves: its earlier click is replaced)."""
        face = self.face
        if face is None:
            return
        if not 0 <= landmark < len(face.landmarks):
            raise ValueError(f"landmark {landmark} out of range 0..{len(face.landmarks) - 1}")
        kept = tuple(c for c in face.clicks if c.landmark != landmark)
        self._change(face, kept + (Click(int(landmark), float(x), float(y), self.tolerance),))

    def press(self, x: float, y: float) -> int:
        """Mouse down: pick the landmark nearest (x, y), on any face (that face becomes the
        selected one); the landmark, or -1 on an item without a face."""
        if self.select_nearest(x, y) < 0:
            return -1
        landmark, _ = nearest_point(self.face.landmarks, x, y)
        self.drag = (self.state.selected, landmark, float(x), float(y))
        return landmark

    def move(self, x: float, y: float) -> None:
        """Mouse moved while pressed: where the picked landmark would go."""
        if self.drag is not None:
            self.drag = (*self.drag[:2], float(x), float(y))

    def release(self, x: float, y: float) -> None:
        """Mouse up: the picked landmark is clicked at (x, y)."""
        if self.drag is None:
            return
        face, landmark = self.drag[:2]
        self.drag = None
        self.state.selected = face
        self.click(landmark, x, y)

    def undo(self) -> bool:
        """Take back the last change of this item (a click or a clear); False when none is left."""
        if not self.state.history:
            return False
        index, clicks = self.state.history.pop()
        self.state.selected = index
        face = self.state.faces[index]
        face.clicks = clicks
        self._condition(face, self._item.image)
        return True

    def clear(self) -> None:
        """Remove every click of the selected face (undo brings them back)."""
        face = self.face
        if face is not None and face.clicks:
            self._change(face, ())

    def _change(self, face: FaceState, clicks: tuple[Click, ...]) -> None:
        self.state.history.append((self.state.faces.index(face), face.clicks))
        face.clicks = clicks
        self._condition(face, self._item.image)
        self.message = ""

    def _condition(self, face: FaceState, image: np.ndarray) -> None:
        """Re-predict ``face`` given its clicks and choose the next landmark to suggest."""
        est = face.estimate
        face.conditioned = conditioned_face(self.tracker.landmarker, image, est.box, est.log_probs, face.clicks)
        face.suggestion = suggested_click(self.tracker.model, face.conditioned, self.tolerance,
                                          exclude=sorted(face.clicked))

    # --- carrying clicks through the HMM (video)

    def carry(self, frames: int = CARRY_FRAMES) -> int:
        """Video: re-decode the selected face over ``frames`` frames either side of this one
        through the HMM, every clicked frame of it restricted to its consistent classes
        (:func:`tracker.distribution.clicks.hmm_evidence`), so this frame's clicks correct its
        neighbours; then the regressors and smoothing as in ``facetrack track``. The face is
        followed from frame to frame by its box (the detected face nearest the last one).
        This frame and frames with clicks keep their own prediction; the others show what
        was carried (until clicked). Returns how many frames were carried to."""
        face = self.face
        if self.items.kind != "video" or face is None:
            self.message = "nothing to carry: " + ("not a video" if self.items.kind != "video" else "no face")
            return 0
        chain = self._chain(self._item.position, self.state.selected, frames)
        stage = self.tracker.new_temporal_stage(live=False)
        decided = []
        for position, index in chain:
            item, state = self.items[position], self.states[position]
            own = state.faces[index]
            est = own.estimate
            tracked = FaceResult(0, est.landmarks, est.confidence, est.box, est.classes, est.probs,
                                 log_probs=est.log_probs)
            tracked = hmm_evidence(self.tracker.landmarker, item.image, tracked, own.clicks)
            decided += stage.push(FrameResult(Frame(item.number, item.timestamp, item.image), (tracked,)))
        decided += stage.flush()
        by_number = {r.frame.index: r.faces[0].landmarks for r in decided if r.faces}
        carried = 0
        for position, index in chain:
            state = self.states[position]
            own = state.faces[index]
            if own.clicks or position == self._item.position or state.number not in by_number:
                continue
            own.carried, own.carried_from = by_number[state.number].copy(), self._item.number
            carried += 1
        self.message = f"carried to {carried} frames ({self.states[chain[0][0]].number}-" \
                       f"{self.states[chain[-1][0]].number})"
        return carried

    def _chain(self, here: int, index: int, frames: int) -> list[tuple[int, int]]:
        """(position, face index) of the selected face on the frames around ``here``, in order:
        outward from ``here``, each frame's face whose box overlaps the last one most
        (IoU above ``CHAIN_IOU``); the chain stops at a frame without such a face."""
        def follow(step: int) -> list[tuple[int, int]]:
            out, box = [], self.states[here].faces[index].estimate.box
            position = here + step
            while abs(position - here) <= frames and position >= 0:
                try:
                    state = self._state_at(position)
                except IndexError:
                    break
                overlaps = [iou(box, f.estimate.box) for f in state.faces]
                if not overlaps or max(overlaps) < CHAIN_IOU:
                    break
                best = int(np.argmax(overlaps))
                out.append((position, best))
                box = state.faces[best].estimate.box
                position += step
            return out

        before, after = follow(-1), follow(+1)
        return before[::-1] + [(here, index)] + after

    # --- the picture

    def status(self) -> str:
        """The status line: item i/n, face, clicks, suggestion (and the last message)."""
        count = self.items.count
        what = "frame" if self.items.kind == "video" else "image"
        parts = [f"{what} {self._item.position + 1}/{count or '?'}"]
        if self._item.name:
            parts[0] += f" {self._item.name}"
        faces = self.state.faces
        if not faces:
            parts.append("no face found")
        else:
            face = self.face
            parts += [f"face {self.state.selected + 1}/{len(faces)}", f"clicks {len(face.clicks)}",
                      f"suggest {landmark_name(face.suggestion)}"]
            if face.carried is not None and not face.clicks:
                parts.append(f"carried from frame {face.carried_from}")
        if self.drag is not None:
            parts.append(f"dragging {landmark_name(self.drag[1])}")
        elif self.message:
            parts.append(self.message)
        return " | ".join(parts)

    def render(self, help_line: bool = True) -> np.ndarray:
        """The window's picture (the item's size, BGR): every face's landmarks, the clicked
        points in red, the suggested landmark of the selected face ringed in yellow, the
        status line on top and (``help_line``) the keys at the bottom."""
        image = self._item.image.copy()
        scale = max(1.0, min(image.shape[:2]) / 360)
        for i, face in enumerate(self.state.faces):
            draw_face(image, i, face.landmarks, face.estimate.confidence)
            for c in face.clicks:
                _dot(image, (c.x, c.y), 4 * scale, CLICKED_COLOUR)
        face = self.face
        if face is not None and face.suggestion >= 0:
            _ring(image, face.landmarks[face.suggestion], 7 * scale, SUGGESTED_COLOUR, max(2, int(2 * scale)))
        if self.drag is not None:
            index, landmark, x, y = self.drag
            start = self.state.faces[index].landmarks[landmark]
            cv2.line(image, _px(start), _px((x, y)), DRAG_COLOUR, max(1, int(scale)), cv2.LINE_AA, shift=4)
            _dot(image, (x, y), 5 * scale, DRAG_COLOUR)
        _text_bar(image, self.status(), top=True)
        if help_line:
            _text_bar(image, HELP_LINE, top=False)
        return image

    # --- saving

    def save(self) -> list[Path]:
        """Write every visited item (see the module docstring); the files written."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            written = self._save_video() if self.items.kind == "video" else self._save_images()
            written.append(self._save_csv())
        except OSError as exc:
            raise OutputError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
        self.message = f"saved {len(written)} files to {self.out}"
        return written

    def _visited(self) -> list[ItemState]:
        return [self.states[position] for position in sorted(self.states)]

    def _save_images(self) -> list[Path]:
        written = []
        for state in self._visited():
            stem = Path(state.name).stem
            for i, face in enumerate(state.faces):
                written.append(_atomic_pts(self.out / (f"{stem}.pts" if i == 0 else f"{stem}_{i}.pts"),
                                           face.landmarks))
        return written

    def _save_video(self) -> list[Path]:
        written = []
        for state in self._visited():
            for i, face in enumerate(state.faces):
                folder = self.out / ("annot" if i == 0 else f"annot_{i}")
                folder.mkdir(parents=True, exist_ok=True)
                written.append(_atomic_pts(folder / f"{state.number:06d}.pts", face.landmarks))
        return written

    def _save_csv(self) -> Path:
        path = self.out / CSV_NAME
        tmp = path.with_name(f".{path.name}.tmp")
        images = self.items.kind != "video"
        with LandmarkCsvWriter(tmp, ("file",) if images else ()) as csv:
            for state in self._visited():
                faces = [(i, f.estimate.confidence, f.landmarks) for i, f in enumerate(state.faces)]
                csv.write_frame(state.number, state.timestamp, faces, {"file": state.name} if images else None)
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        self.items.close()


def _atomic_pts(path: Path, points: np.ndarray) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    write_pts(tmp, points)
    os.replace(tmp, path)
    return path


def _px(point) -> tuple[int, int]:
    return int(round(point[0] * 16)), int(round(point[1] * 16))


def _dot(image: np.ndarray, point, radius: float, colour) -> None:
    cv2.circle(image, _px(point), int(round(radius * 16)), (0, 0, 0), -1, cv2.LINE_AA, shift=4)
    cv2.circle(image, _px(point), int(round(radius * 16 * 0.7)), colour, -1, cv2.LINE_AA, shift=4)


def _ring(image: np.ndarray, point, radius: float, colour, thickness: int) -> None:
    cv2.circle(image, _px(point), int(round(radius * 16)), colour, thickness, cv2.LINE_AA, shift=4)


def _text_bar(image: np.ndarray, text: str, top: bool) -> None:
    """One line of text on a dark band across the top or bottom of ``image``, shrunk to fit."""
    h, w = image.shape[:2]
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    size = max(0.4, min(h, w) / 900)
    (tw, th), base = cv2.getTextSize(text, font, size, thickness)
    if tw > w - 8:
        size *= (w - 8) / tw
        (tw, th), base = cv2.getTextSize(text, font, size, thickness)
    band = th + base + 8
    y0 = 0 if top else h - band
    image[y0:y0 + band] = (image[y0:y0 + band] * 0.35).astype(np.uint8)
    cv2.putText(image, text, (4, y0 + 4 + th), font, size, (255, 255, 255), thickness, cv2.LINE_AA)
