"""Small generated videos for tracking tests: a real face (the bundled sample's first
frame, with its pseudo-label) moved across a canvas, written losslessly."""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from tracker.io.annotations import read_pts
from tracker.io.sources import VideoSource

SAMPLE = Path(__file__).resolve().parents[1] / "tracker" / "assets" / "sample"


def sample_face(scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The sample clip's first frame and its 68 pseudo-label points, resized by ``scale``."""
    image = next(iter(VideoSource(SAMPLE / "vid.mp4"))).image
    points = read_pts(SAMPLE / "annot" / "000001.pts")
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), points * scale


def shifted(image: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    matrix = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float64)
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def moving_face_frames(n: int, step: float = 3.0, scale: float = 0.5):
    """Frames of the face moving right by ``step`` px per frame, and the true points per frame."""
    image, points = sample_face(scale)
    offsets = [(i - n / 2) * step for i in range(n)]
    return ([shifted(image, dx) for dx in offsets],
            [points + np.array([dx, 0.0]) for dx in offsets])


def write_clip(path, frames, fps: int = 24, codec: str = "ffv1", pix_fmt: str = "yuv420p",
               options: dict | None = None, container_options: dict | None = None,
               rotation: int | None = None, hflip: bool = False) -> Path:
    """Encode BGR (or 2-D gray) frames; ffv1 in .mkv is lossless.

    ``rotation`` (degrees counter-clockwise, as PyAV's ``frame.rotation`` reads it back) and
    ``hflip`` write a display matrix, the rotation flag phones write: a player shows each
    frame turned by ``rotation``, then mirrored left-right when ``hflip``."""
    path = Path(path)
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        height, width = frames[0].shape[:2] if frames else (64, 64)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if rotation is not None or hflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip)
        out.start_encoding()
        for image in frames:
            fmt = "gray" if image.ndim == 2 else "bgr24"
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format=fmt)):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def noisy(frames, seed: int = 0, amount: int = 8):
    """Frames with per-frame noise (so every packet carries data: truncation lands between frames)."""
    rng = np.random.default_rng(seed)
    return [np.clip(f.astype(np.int16) + rng.integers(-amount, amount, f.shape), 0, 255).astype(np.uint8)
            for f in frames]


def damage(path, out, start_fraction: float, length: int | None = None, seed: int = 0) -> Path:
    """A copy of ``path`` cut at ``start_fraction`` (length None) or with ``length`` random bytes there."""
    data = bytearray(Path(path).read_bytes())
    start = int(len(data) * start_fraction)
    if length is None:
        data = data[:start]
    else:
        data[start:start + length] = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    Path(out).write_bytes(bytes(data))
    return Path(out)


def _letterboxed(image: np.ndarray, points: np.ndarray, size=(640, 360)) -> tuple[np.ndarray, np.ndarray]:
    """``image`` scaled to fit ``size`` (w, h) and centred on black, and its points moved along."""
    w, h = size
    scale = min(w / image.shape[1], h / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0, y0 = (w - resized.shape[1]) // 2, (h - resized.shape[0]) // 2
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
    ratio = np.array([resized.shape[1] / image.shape[1], resized.shape[0] / image.shape[0]])
    return canvas, (points + 0.5) * ratio - 0.5 + np.array([x0, y0])


# (clip, first frame, end frame) pieces, 0-based; "still" is a photo held for a second.
MULTI_SHOT_PIECES = (("wolfganglanger", 0, 120), ("pyfeat_single_face", 0, 36), ("wolfganglanger", 120, 260),
                     ("still", 0, 24), ("pyfeat_single_face", 36, 72), ("wolfganglanger", 260, 472))


def multi_shot_frames(videos: Path, still: Path):
    """The shared clips cut into pieces and interleaved, with a still photo (``still``, a
    .jpg beside its .pts) held for 24 frames: (frames, points per frame, piece per frame,
    (clip, frame index) per frame). All 640 x 360."""
    from tracker.io.annotations import read_pts
    decoded = {name: [f.image for f in VideoSource(videos / name / "vid.mp4")]
               for name in {p[0] for p in MULTI_SHOT_PIECES if p[0] != "still"}}
    photo, photo_points = _letterboxed(cv2.imread(str(still)), read_pts(still.with_suffix(".pts")))
    frames, points, piece_of, origin = [], [], [], []
    for piece, (name, start, end) in enumerate(MULTI_SHOT_PIECES):
        for i in range(start, end):
            if name == "still":
                frames.append(photo)
                points.append(photo_points)
            else:
                frames.append(decoded[name][i])
                points.append(read_pts(videos / name / "annot" / f"{i + 1:06d}.pts"))
            piece_of.append(piece)
            origin.append((name, i))
    return frames, points, piece_of, origin


def paste_face(canvas: np.ndarray, image: np.ndarray, points: np.ndarray, side: float, centre) -> np.ndarray:
    """Paste the face of ``image`` (with ``points``) into ``canvas`` in place, its landmark box
    scaled to ``side`` px and centred at ``centre``, blended through a soft oval; returns the
    pasted face's points."""
    from tracker.geometry.boxes import box_center_size, landmark_box
    c, s = box_center_size(landmark_box(points))
    scale = side / s
    matrix = np.array([[scale, 0, centre[0] - scale * c[0]], [0, scale, centre[1] - scale * c[1]]])
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1] - 0.1 * side))), (int(0.62 * side), int(0.78 * side)),
                0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.08 * side))[..., None]
    canvas[:] = (canvas * (1 - mask) + warped * mask).astype(np.uint8)
    return points * scale + np.array([matrix[0, 2], matrix[1, 2]])


def background(width: int, height: int, seed: int) -> np.ndarray:
    """A face-free textured background: smooth colour blobs with some fine noise."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 2)
    return cv2.addWeighted(coarse, 0.8, fine, 0.2, 0)


def composite_frame(faces, width: int, height: int, sides, seed: int):
    """A background of ``width`` x ``height`` with faces of ``faces`` (objects with .image,
    .landmarks), landmark box sides ``sides`` (px), pasted largest first at random places
    apart from each other; returns (frame, the pasted points in the order of ``sides``,
    None for a face that found no free place)."""
    rng = np.random.default_rng(seed)
    frame = background(width, height, seed)
    placed, points = [], [None] * len(sides)
    for index in sorted(range(len(sides)), key=lambda i: -sides[i]):
        side = sides[index]
        for _ in range(200):
            centre = rng.uniform([0.7 * side, 0.9 * side], [width - 0.7 * side, height - 0.7 * side])
            if all(np.linalg.norm(centre - c) > 0.85 * (side + s) for c, s in placed):
                break
        else:
            continue
        face = faces[int(rng.integers(len(faces)))]
        points[index] = paste_face(frame, face.image, face.landmarks, side, centre)
        placed.append((centre, side))
    return frame, points


def tiny_face_folder(root, face: np.ndarray, count: int = 12) -> Path:
    """``root/faces``: ``count`` noisy 128 px images, each with the 68-point ``face`` drawn as
    dots at a random place and scale, and its .pts file (a tiny training set; 2 per photo)."""
    from tracker.io.annotations import write_pts
    rng = np.random.default_rng(0)
    root = Path(root)
    (root / "faces").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = rng.integers(0, 40, (128, 128, 3)).astype(np.uint8)
        pts = (face - face.mean(0)) * rng.uniform(0.25, 0.35) + rng.uniform(50, 78, 2)
        for x, y in pts:
            cv2.circle(img, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
        cv2.imwrite(str(root / "faces" / f"{i // 2}_{i % 2}.jpg"), img)
        write_pts(root / "faces" / f"{i // 2}_{i % 2}.pts", pts)
    return root
