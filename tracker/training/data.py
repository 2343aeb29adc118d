"""Training data: faces from 300-W folders, pose-class templates, augmented crops.

Canonical frame: a shape is expressed relative to the square box a crop is centred on
(box side = 1, centre = 0). Templates are the training faces in their ground-truth
box, their mirror images, and jittered copies (shift, scale, roll) so that classes can
express a detector's misplacement, as the paper's synthetic 300W-LP copies did.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tracker.config import AugmentConfig, ClassesConfig
from tracker.errors import FacetrackError
from tracker.geometry.alignment import similarity_jitter
from tracker.geometry.boxes import landmark_box, shift_boxes
from tracker.geometry.crop import crop_matrix, transform_points, warp_crop
from tracker.geometry.shapes import flip_horizontal, to_canonical
from tracker.io.annotations import read_pts
from tracker.training.augment import augment_sample

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Face:
    image: np.ndarray          # HxWx3 uint8 BGR
    landmarks: np.ndarray      # (68, 2) 0-based pixels
    name: str                  # "<set>/<file stem>"

    @property
    def photo(self) -> str:
        """The source photograph: several faces of one photo share it (AFW and HELEN name
        faces <photo>_<face number>: 123_1, 123_2); a longer number is part of the photo's
        own name (LFPW: image_0006, one face per photo)."""
        return re.sub(r"_\d{1,2}$", "", self.name)


def resolve_root(root: str) -> Path:
    path = Path(root)
    if not path.is_absolute() and not path.exists():
        path = REPO / root
    if not path.is_dir():
        raise FacetrackError(f"data folder {root} not found (the shared 300-W subset)")
    return path


def load_faces(root, sets) -> list[Face]:
    """Every image with a .pts file in the given sub-folders of ``root``."""
    root = resolve_root(str(root))
    faces = []
    for name in sets:
        folder = root / name
        if not folder.is_dir():
            raise FacetrackError(f"{folder}: no such data folder")
        for pts in sorted(folder.glob("*.pts")):
            image = cv2.imread(str(pts.with_suffix(".jpg")), cv2.IMREAD_COLOR)
            if image is None:
                raise FacetrackError(f"{pts.with_suffix('.jpg')}: missing or unreadable image")
            faces.append(Face(image=image, landmarks=read_pts(pts), name=f"{name}/{pts.stem}"))
    return faces


def split_by_photo(faces: list[Face], val_fraction: float, seed: int) -> tuple[list[Face], list[Face]]:
    """Hold out whole photos (stable hash of the photo name) for validation."""
    def held_out(face: Face) -> bool:
        h = zlib.crc32(f"{seed}:{face.photo}".encode()) / 2**32
        return h < val_fraction
    val = [f for f in faces if held_out(f)]
    train = [f for f in faces if not held_out(f)]
    return train, val


def canonical_shape(face: Face) -> np.ndarray:
    return to_canonical(face.landmarks, landmark_box(face.landmarks))


def template_bank(faces: list[Face], cfg: ClassesConfig) -> np.ndarray:
    """Canonical shapes that define exemplar classes (or that k-means clusters)."""
    base = np.stack([canonical_shape(f) for f in faces])
    if cfg.flips:
        flipped = np.stack([to_canonical(m, landmark_box(m)) for m in
                            (flip_horizontal(f.landmarks, f.image.shape[1]) for f in faces)])
        base = np.concatenate([base, flipped])
    rng = np.random.default_rng(cfg.seed)
    copies = [similarity_jitter(base, rng, cfg.perturb_rotate_deg, cfg.perturb_scale, cfg.perturb_shift,
                                frame=(0.0, 1.0)) for _ in range(cfg.perturbed_copies)]
    return np.concatenate([base, *copies]).astype(np.float32)


def crop_to_canonical(points_in_crop: np.ndarray, crop_size: int, margin: float) -> np.ndarray:
    """Crop pixel coordinates -> canonical frame of the box the crop was centred on."""
    half = crop_size / 2.0
    return (points_in_crop - (half - 0.5)) / (crop_size / margin)


def canonical_to_crop(canonical: np.ndarray, crop_size: int, margin: float) -> np.ndarray:
    return canonical * (crop_size / margin) + (crop_size / 2.0 - 0.5)


class AugmentedFaces:
    """Random augmented training crops, with their canonical landmarks."""

    def __init__(self, faces: list[Face], crop_size: int, margin: float, augment: AugmentConfig, seed: int):
        self.faces = faces
        self.crop_size = crop_size
        self.margin = margin
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(size, S, S, 3) uint8 crops and (size, 68, 2) canonical landmarks, drawn with
        ``rng`` (default: the sampler's own stream)."""
        rng = self.rng if rng is None else rng
        idx = rng.integers(0, len(self.faces), size)
        crops, shapes = [], []
        for i in idx:
            f = self.faces[i]
            crop, pts = augment_sample(f.image, f.landmarks, landmark_box(f.landmarks),
                                       self.crop_size, self.margin, rng, self.augment)
            crops.append(crop)
            shapes.append(crop_to_canonical(pts, self.crop_size, self.margin))
        return np.stack(crops), np.stack(shapes).astype(np.float32)


def jittered_crops(faces: list[Face], crop_size: int, margin: float, jitter: float = 0.05,
                   seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation crops from ground-truth boxes shifted/scaled by up to ``jitter``."""
    rng = np.random.default_rng(seed)
    crops, shapes = [], []
    for f in faces:
        shift = rng.uniform(-jitter, jitter, 2)
        box = shift_boxes(landmark_box(f.landmarks), np.r_[shift, rng.uniform(-jitter, jitter)])
        m = crop_matrix(box, crop_size, margin)
        crops.append(warp_crop(f.image, m, crop_size))
        shapes.append(crop_to_canonical(transform_points(f.landmarks, m), crop_size, margin))
    return np.stack(crops), np.stack(shapes).astype(np.float32)
