"""Fitting the cascaded regressors of :mod:`tracker.regressors.cascade` for a classifier model.

Starting shapes must look like what the regressors will be given at test time, so they
are the classifier's own estimates: each training face is cut from boxes jittered as
the detector's calibrated boxes scatter, and classified as a fresh detection is (the
same passes). Neighbouring exemplars' shapes placed in the classifier's box add the
paper's template starts. Mirrored faces double the data.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracker.config import FitConfig, config_to_dict
from tracker.detection.base import as_gray
from tracker.geometry.alignment import similarity_jitter
from tracker.geometry.boxes import landmark_box, shift_boxes
from tracker.geometry.crop import transform_points
from tracker.geometry.shapes import from_canonical, to_canonical
from tracker.inference.landmarker import Landmarker
from tracker.regressors.cascade import ShapeCascade
from tracker.training.augment import flip_sample
from tracker.training.cascade import canonical_mean_shape, cluster_classes, fit_cascade, sample_clusters, shape_error
from tracker.training.data import Face, load_faces, split_by_photo


@dataclass
class Examples:
    """Regressor training examples: normalised crops and, per start, its crop and shapes."""

    crops: np.ndarray          # (M, R, R) float32
    image_of: np.ndarray       # (N,) crop of each start
    starts: np.ndarray         # (N, P, 2) crop px
    truths: np.ndarray         # (N, P, 2) crop px
    classes: np.ndarray        # (N,) the classifier's top class at the start (-1 for template starts)
    truth_canonical: np.ndarray  # (M, P, 2) each crop's truth in its landmark box

    def joined(self, other: "Examples") -> "Examples":
        return Examples(np.concatenate([self.crops, other.crops]),
                        np.concatenate([self.image_of, other.image_of + len(self.crops)]),
                        np.concatenate([self.starts, other.starts]), np.concatenate([self.truths, other.truths]),
                        np.concatenate([self.classes, other.classes]),
                        np.concatenate([self.truth_canonical, other.truth_canonical]))

    def subset(self, rows: np.ndarray) -> "Examples":
        used, image_of = np.unique(self.image_of[rows], return_inverse=True)
        return Examples(np.ascontiguousarray(self.crops[used]), image_of.astype(np.int64), self.starts[rows],
                        self.truths[rows], self.classes[rows], self.truth_canonical[used])


def mirrored(face: Face) -> Face:
    """The face flipped left-right, its landmarks renumbered."""
    image, points = flip_sample(face.image, face.landmarks)
    return Face(image, points, face.name + "/mirrored")


def augmented(face: Face, index: int, cfg, rng) -> Face:
    """A copy of the face rolled, rescaled and recoloured (blur, noise, contrast) like the
    classifier's training crops, framed as the 300-W crops are (face box half the image)."""
    from tracker.config import AugmentConfig
    from tracker.training.augment import augment_sample
    settings = AugmentConfig(flip_p=0.0, rotate_deg=cfg.augment_rotate_deg, scale=cfg.augment_scale, shift=0.05,
                             brightness=0.3, contrast=0.3, saturation=0.2, blur_p=0.3, blur_max_sigma=1.5,
                             occlude_p=0.0, grayscale_p=0.1, noise_std=3.0)
    size = face.image.shape[1]
    image, points = augment_sample(face.image, face.landmarks, out_size=size, margin=2.0, rng=rng, cfg=settings)
    return Face(image, points.astype(np.float64), f"{face.name}/augmented{index}")


def classifier_starts(landmarker: Landmarker, face: Face, count: int, spread, rng):
    """The classifier's estimates (count, P, 2) from boxes around the face's landmark box, jittered
    like the detector's calibrated boxes: centre shifted and side scaled by Gaussian amounts of the
    detector's residual spread (x, y in sides, log scale)."""
    shifts = rng.normal(0, 1, (count, 2)) * np.asarray(spread[:2])
    offsets = np.column_stack([shifts, rng.normal(0, 1, count) * spread[2]])
    boxes = shift_boxes(landmark_box(face.landmarks), offsets)
    estimates = landmarker.from_boxes(face.image, boxes)
    return np.stack([e.landmarks for e in estimates]), np.array([int(e.classes[0]) for e in estimates])


def perturbed_shapes(shapes: np.ndarray, count: int, cfg, rng) -> np.ndarray:
    """``count`` copies of randomly chosen ``shapes`` (N, P, 2), each turned, scaled and
    shifted about its centroid by a random similarity."""
    picked = shapes[rng.integers(0, len(shapes), count)]
    return similarity_jitter(picked, rng, cfg.perturb_rotate_deg, cfg.perturb_scale, cfg.perturb_shift)


def neighbour_table(canonical: np.ndarray, photos: list[str], rank: int) -> np.ndarray:
    """(M, rank): each shape's nearest other shapes (other photos only), nearest first."""
    flat = canonical.reshape(len(canonical), -1)
    sq = (flat ** 2).sum(1)
    d2 = sq[:, None] + sq[None] - 2 * flat @ flat.T
    same = np.array(photos)[:, None] == np.array(photos)[None]
    d2[same] = np.inf
    rank = min(rank, len(flat) - 1)
    return np.argsort(d2, axis=1)[:, :max(rank, 1)]


def build_examples(landmarker: Landmarker, faces: list[Face], cascade: ShapeCascade, cfg: FitConfig,
                   spread, rng, neighbours: int | None = None, log=print, augment: bool = False) -> Examples:
    """Examples for ``faces`` (mirrored copies included when ``cfg.starts.flips``); with
    ``augment``, for ``cfg.starts.augmented`` augmented copies of each instead."""
    starts_cfg = cfg.starts
    versions = [v for f in faces for v in ((f, mirrored(f)) if starts_cfg.flips else (f,))]
    photos = [f.photo for f in faces for _ in range(2 if starts_cfg.flips else 1)]
    if augment:
        photos = [p for p in photos for _ in range(starts_cfg.augmented)]
        versions = [augmented(v, k, starts_cfg, rng) for v in versions for k in range(starts_cfg.augmented)]
    truth_canonical = np.stack([to_canonical(f.landmarks, landmark_box(f.landmarks)) for f in versions])
    n_neighbours = starts_cfg.neighbours if neighbours is None else neighbours
    table = neighbour_table(truth_canonical, photos, starts_cfg.neighbour_rank) if n_neighbours else None
    crops, image_of, starts, truths, classes = [], [], [], [], []
    began = time.perf_counter()
    for index, face in enumerate(versions):
        shapes, top = classifier_starts(landmarker, face, max(1, starts_cfg.classifier), spread, rng)
        shapes, top = shapes[:starts_cfg.classifier], top[:starts_cfg.classifier]
        if starts_cfg.perturbed and len(shapes):
            shapes = np.concatenate([shapes, perturbed_shapes(shapes, starts_cfg.perturbed, starts_cfg, rng)])
            top = np.concatenate([top, np.full(starts_cfg.perturbed, -1)])
        if n_neighbours:
            picks = table[index, rng.integers(0, table.shape[1], n_neighbours)]
            box = landmark_box(shapes[0]) if len(shapes) else landmark_box(face.landmarks)
            placed = from_canonical(truth_canonical[picks], box)
            shapes = np.concatenate([shapes, placed]) if len(shapes) else placed
            top = np.concatenate([top, np.full(n_neighbours, -1)])
        frame_crops, matrices = cascade.face_crops(as_gray(face.image), shapes[:1])
        crops.append(frame_crops[0])
        starts.append(transform_points(shapes, matrices[0]))
        truths.append(np.repeat(transform_points(face.landmarks, matrices[0])[None], len(shapes), axis=0))
        image_of.append(np.full(len(shapes), index))
        classes.append(top)
        if (index + 1) % 500 == 0:
            log({"examples": index + 1, "of": len(versions), "seconds": round(time.perf_counter() - began, 1)})
    return Examples(np.stack(crops), np.concatenate(image_of), np.concatenate(starts).astype(np.float32),
                    np.concatenate(truths).astype(np.float32), np.concatenate(classes), truth_canonical)


def cache_key(cfg: FitConfig, model_path: Path, *parts: str) -> str:
    """A name for what depends only on the model file and the given config sections."""
    stat = Path(model_path).stat()
    text = json.dumps([str(Path(model_path).resolve()), stat.st_size, int(stat.st_mtime),
                       [config_to_dict(getattr(cfg, p)) if dataclasses.is_dataclass(getattr(cfg, p)) else getattr(cfg, p)
                        for p in parts]], default=str, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def fitted_box_refiner(cfg: FitConfig, landmarker: Landmarker, train, val, cache: Path | None, model_path, log):
    """The detection refinement for the landmarker's model (read from ``cache`` when fitted before)."""
    import torch

    from tracker.detection.box_refinement import BoxRefiner
    from tracker.training.box_refinement import fit_box_refiner
    path = None if cache is None else cache / f"box-{cache_key(cfg, model_path, 'data', 'box_refinement')}.pt"
    if path is not None and path.is_file():
        log({"box_refiner": str(path), "cached": True})
        return BoxRefiner.from_dict(torch.load(path, weights_only=True))
    refiner, stats = fit_box_refiner(landmarker, train, val, lams=cfg.box_refinement.lams, rescales=cfg.box_refinement.rescales,
                                     jitters=cfg.box_refinement.jitters, seed=cfg.box_refinement.seed)
    log({"box_refiner": stats})
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(refiner.to_dict(), path)
    return refiner


def cached_examples(path: Path | None, build) -> Examples:
    """``build()``, or what it returned before (stored at ``path``, crops as float16)."""
    if path is not None and path.is_file():
        data = np.load(path)
        return Examples(data["crops"].astype(np.float32), data["image_of"], data["starts"], data["truths"],
                        data["classes"], data["truth_canonical"])
    examples = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, crops=examples.crops.astype(np.float16), image_of=examples.image_of, starts=examples.starts,
                 truths=examples.truths, classes=examples.classes, truth_canonical=examples.truth_canonical)
    return examples


def fit_regressors(cfg: FitConfig, landmarker: Landmarker, model_path: Path, log=print,
                cache: Path | None = None):
    """Fit the detection refinement and the cascades of ``cfg`` for the landmarker's model
    (a landmarker without regressors). Returns (ShapeCascade, BoxRefiner or None).

    With ``cache`` (a folder), the refinement and the training examples, which depend
    only on the model and the data, box and starts sections, are kept there for reuse."""
    rng = np.random.default_rng(cfg.cascade.seed)
    faces = load_faces(cfg.data.root, cfg.data.train_sets)
    train, val = split_by_photo(faces, cfg.data.val_fraction, cfg.data.split_seed)
    model = landmarker.model
    spread = model.calibration.get("dlib", {}).get("spread", (0.09, 0.05, 0.09))
    mean_shape = canonical_mean_shape(np.stack([f.landmarks for f in train]))
    class_cluster = cluster_classes(model.templates, cfg.cascade.clusters, cfg.cascade.seed)
    cascade = ShapeCascade(mean_shape, cfg.cascade.face_size, cfg.cascade.crop_size, class_cluster, [])
    log({"train_faces": len(train), "val_faces": len(val), "clusters": cfg.cascade.clusters,
         "config": config_to_dict(cfg)})
    box_refiner = fitted_box_refiner(cfg, landmarker, train, val, cache, model_path, log) if cfg.box_refinement.enabled else None
    landmarker.box_refiner = box_refiner          # starts come the way test-time estimates do
    plain = dataclasses.replace(cfg, starts=dataclasses.replace(cfg.starts, augmented=0))
    geometry = f"-{cfg.cascade.face_size}-{cfg.cascade.crop_size}"
    key = cache_key(plain, model_path, "data", "box_refinement", "starts") + geometry
    examples = cached_examples(None if cache is None else cache / f"examples-{key}.npz",
                               lambda: build_examples(landmarker, train, cascade, cfg, spread, rng, log=log))
    if cfg.starts.augmented:
        augmented_key = cache_key(cfg, model_path, "data", "box_refinement", "starts") + geometry
        more = cached_examples(None if cache is None else cache / f"augmented-{augmented_key}.npz",
                               lambda: build_examples(landmarker, train, cascade, cfg, spread,
                                                      np.random.default_rng(cfg.cascade.seed + 1), log=log, augment=True))
        examples = examples.joined(more)
    val_cfg = dataclasses.replace(cfg, starts=dataclasses.replace(cfg.starts, classifier=1, neighbours=0,
                                                                   perturbed=0, flips=False))
    held = cached_examples(None if cache is None else cache / f"val-{key}.npz",
                           lambda: build_examples(landmarker, val, cascade, val_cfg, spread, rng, neighbours=0, log=log))
    log({"train_examples": len(examples.starts), "val_examples": len(held.starts),
         "val_start_error": shape_error(held.starts, held.truths, cfg.cascade.face_size)})
    touches = sample_clusters(examples.truth_canonical, model.templates, class_cluster, model.tau)
    held_cluster = class_cluster[held.classes]
    for cluster in range(cfg.cascade.clusters):
        rows = np.flatnonzero([cluster in touches[i] for i in examples.image_of])
        part = examples.subset(rows)
        val_rows = np.flatnonzero(held_cluster == cluster)
        val_part = held.subset(val_rows) if len(val_rows) else None
        log({"cluster": cluster, "examples": len(rows), "val_examples": len(val_rows)})
        stages = fit_cascade(part.crops, part.image_of, part.starts, part.truths, cascade.mean_px, cfg.cascade, rng,
                             log=lambda row, c=cluster: log({"cluster": c, **row}),
                             val=None if val_part is None else (val_part.crops, val_part.image_of,
                                                                val_part.starts, val_part.truths))
        cascade.cascades.append(stages)
    return cascade, box_refiner


def jsonl_logger(path: Path):
    """A log function writing one JSON line per call (and echoing it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")

    def log(row: dict) -> None:
        line = json.dumps(row, default=str)
        handle.write(line + "\n")
        handle.flush()
        print(line, flush=True)
    return log
