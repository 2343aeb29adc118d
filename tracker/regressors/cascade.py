"""Per-class cascaded shape regressors: the fine landmarks after the classifier (paper Sec. 3.4).

The classifier's estimate is the starting shape. Each face is resampled once into a
normalised grayscale crop where that shape is aligned (similarity) to the mean shape
at ``face_size`` px; a cascade of stages then moves the shape, each stage reading
pixels at points tied to the current landmarks (shape-indexed features) and adding the
update of a gradient-boosted forest of regression trees on pixel differences. Updates
are learned in the mean shape's frame, so they turn and scale with the face.

Pose classes are grouped into clusters (k-means of the templates); each cluster has its
own cascade, trained on every example whose membership set touches the cluster (the
paper's example sharing). The class the classifier or the HMM decides picks the cluster.
The fitting is :mod:`tracker.training.cascade`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kernels.ert import shape_features, stage_step
from tracker.detection.base import as_gray
from tracker.geometry.alignment import alignment_matrix, rotate, similarity_params
from tracker.geometry.crop import compose, invert, transform_points

# ---------------------------------------------------------------------------- geometry


def warp_gray(gray: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample a grayscale image through ``matrix`` into a size x size float32 crop.

    Where the crop shrinks the face, the region is first reduced by area averaging
    (a bare bilinear warp would alias a large face's texture)."""
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.7:
        corners = transform_points(np.array([[0, 0], [size, 0], [0, size], [size, size]], float), invert(matrix))
        h, w = gray.shape
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 2, 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 3, [x0 + 1, y0 + 1], [w, h])
        region = gray[y0:y1, x0:x1]
        out_w, out_h = max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))
        small = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
        fx, fy = out_w / region.shape[1], out_h / region.shape[0]
        # small pixel centres: x_small = (x - x0 + 0.5) * fx - 0.5
        to_small = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5]])
        gray, matrix = small, compose(matrix, invert(to_small))
    crop = cv2.warpAffine(gray, np.asarray(matrix, np.float64), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop.astype(np.float32)


def standardised(crop: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (pixel differences then ignore contrast)."""
    return ((crop - crop.mean()) / max(float(crop.std()), 1.0)).astype(np.float32)


# ---------------------------------------------------------------------------- the model


@dataclass
class TreeStage:
    """One cascade stage: where its pixels are read, and its forest.

    ``anchors`` (F,) landmark of each feature point, ``offsets`` (F, 2) from it in the
    mean frame (crop px); ``split_u``/``split_v`` (T, 2**d - 1) feature pairs and
    ``split_t`` thresholds per split node; ``leaves`` (T, 2**d, 2P) updates, float or int16
    quantised (the update is then ``leaves * leaf_scale``: half the memory of float32, 13 MB
    less for the packaged model's cascade)."""

    anchors: np.ndarray
    offsets: np.ndarray
    split_u: np.ndarray
    split_v: np.ndarray
    split_t: np.ndarray
    leaves: np.ndarray
    leaf_scale: float = 1.0

    def features(self, crops, image_of, shapes, mean_centered) -> np.ndarray:
        out = np.empty((len(shapes), len(self.anchors)), dtype=np.float32)
        return shape_features(crops, image_of, np.ascontiguousarray(shapes, np.float32), mean_centered,
                              self.anchors, self.offsets, out)

    def update(self, crops, image_of, shapes, mean_centered) -> np.ndarray:
        """The stage's step added to ``shapes`` (N, P, 2) in crop px."""
        shapes = np.ascontiguousarray(shapes, np.float32)
        return stage_step(crops, image_of, shapes, mean_centered, self.anchors, self.offsets, self.split_u,
                          self.split_v, self.split_t, self.leaves, float(self.leaf_scale), np.empty_like(shapes))

    @property
    def leaf_values(self) -> np.ndarray:
        """The leaves as float32 updates (dequantised)."""
        return self.leaves.astype(np.float32) * np.float32(self.leaf_scale)

    def to_dict(self) -> dict:
        import torch
        return {"anchors": torch.from_numpy(self.anchors.astype(np.int16)),
                "offsets": torch.from_numpy(self.offsets.astype(np.float32)),
                "split_u": torch.from_numpy(self.split_u.astype(np.int16)),
                "split_v": torch.from_numpy(self.split_v.astype(np.int16)),
                "split_t": torch.from_numpy(self.split_t.astype(np.float16)),
                "leaves": torch.from_numpy(self.leaf_values.astype(np.float16))}

    @classmethod
    def from_dict(cls, data: dict) -> "TreeStage":
        def arr(key, dtype):
            value = data[key]
            value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
            return np.ascontiguousarray(value.astype(dtype))
        leaves, scale = quantised(arr("leaves", np.float32))
        return cls(arr("anchors", np.int64), arr("offsets", np.float32), arr("split_u", np.int64),
                   arr("split_v", np.int64), arr("split_t", np.float32), leaves, scale)


def quantised(values: np.ndarray) -> tuple[np.ndarray, float]:
    """``values`` as int16 and the scale that maps them back (one scale for the array, a
    step of 1/32767 of its largest value)."""
    top = float(np.abs(values).max()) if values.size else 0.0
    scale = top / 32767 if top > 0 else 1.0
    return np.round(values / scale).astype(np.int16), scale


_SIFT = None


def sift_descriptors(crop: np.ndarray, points: np.ndarray, size: float) -> np.ndarray:
    """RootSIFT descriptors (P, 128) of a standardised crop at ``points`` (OpenCV's SIFT,
    upright keypoints of diameter ``size``; the crop is already aligned on the face)."""
    global _SIFT
    if _SIFT is None:
        _SIFT = cv2.SIFT_create()
    image = np.clip(crop * 48 + 128, 0, 255).astype(np.uint8)
    keypoints = [cv2.KeyPoint(float(x), float(y), float(size), 0) for x, y in points]
    kept, desc = _SIFT.compute(image, keypoints)
    if desc is None or len(kept) != len(points):
        raise RuntimeError("SIFT dropped keypoints")
    desc = desc.astype(np.float32)
    desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-6)
    return np.sqrt(desc)


@dataclass
class LinearStage:
    """The paper's stage: a linear map from appearance around each current landmark
    (RootSIFT here, HOG in the paper) to the shape update (mean frame)."""

    weights: np.ndarray          # (P * 128, 2P)
    bias: np.ndarray             # (2P,)
    size: float                  # SIFT keypoint diameter, crop px

    def features(self, crops, image_of, shapes, mean_centered=None) -> np.ndarray:
        return np.stack([sift_descriptors(crops[image_of[i]], shapes[i], self.size).reshape(-1)
                         for i in range(len(shapes))]) if len(shapes) else np.zeros((0, self.weights.shape[0]))

    def update(self, crops, image_of, shapes, mean_centered) -> np.ndarray:
        delta = self.features(crops, image_of, shapes) @ self.weights + self.bias
        a, b = similarity_params(mean_centered, shapes)
        return shapes + rotate(delta.reshape(shapes.shape), a, b)

    def to_dict(self) -> dict:
        import torch
        return {"kind": "linear", "weights": torch.from_numpy(self.weights.astype(np.float16)),
                "bias": torch.from_numpy(self.bias.astype(np.float32)), "size": float(self.size)}

    @classmethod
    def from_dict(cls, data: dict) -> "LinearStage":
        return cls(np.asarray(data["weights"].float().numpy() if hasattr(data["weights"], "numpy") else data["weights"],
                              np.float32),
                   np.asarray(data["bias"].numpy() if hasattr(data["bias"], "numpy") else data["bias"], np.float32),
                   float(data["size"]))


def stage_from_dict(data: dict):
    if data.get("kind") == "net":
        from tracker.regressors.net_stage import NetStage
        return NetStage.from_dict(data)
    return LinearStage.from_dict(data) if data.get("kind") == "linear" else TreeStage.from_dict(data)


@dataclass
class ShapeCascade:
    """Cascades per cluster of pose classes, and the normalised frame they work in."""

    mean_shape: np.ndarray        # (P, 2) canonical (landmark box side 1, centre 0)
    face_size: int
    crop_size: int
    class_cluster: np.ndarray     # (K,) cluster of each pose class
    cascades: list                # per cluster: list[TreeStage]

    @property
    def mean_px(self) -> np.ndarray:
        """The mean shape where faces are aligned in the normalised crop."""
        return (self.mean_shape * self.face_size + (self.crop_size - 1) / 2).astype(np.float32)

    @property
    def mean_centered(self) -> np.ndarray:
        m = self.mean_px
        return np.ascontiguousarray(m - m.mean(axis=0), np.float32)

    def face_crops(self, gray: np.ndarray, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised crops (N, R, R) aligned on ``shapes`` (N, P, 2), and their (N, 2, 3) matrices."""
        matrices = np.stack([alignment_matrix(s, self.mean_px) for s in shapes]) if len(shapes) \
            else np.zeros((0, 2, 3))
        crops = np.stack([standardised(warp_gray(gray, m, self.crop_size)) for m in matrices]) if len(shapes) \
            else np.zeros((0, self.crop_size, self.crop_size), np.float32)
        return crops, matrices

    def apply(self, image: np.ndarray, shapes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Landmarks (N, P, 2) in image px moved by the cascade of each face's class's cluster."""
        shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, len(self.mean_shape), 2)
        if len(shapes) == 0:
            return shapes
        crops, matrices = self.face_crops(as_gray(image), shapes)
        current = transform_points(shapes, matrices).astype(np.float32)
        clusters = self.class_cluster[np.asarray(classes, dtype=np.int64).reshape(-1)]
        mean_c = self.mean_centered
        for cluster in np.unique(clusters):
            rows = np.flatnonzero(clusters == cluster)
            image_of = np.arange(len(rows))
            part_crops, part = np.ascontiguousarray(crops[rows]), current[rows]
            for stage in self.cascades[cluster]:
                part = np.asarray(stage.update(part_crops, image_of, part, mean_c), np.float32)
            current[rows] = part
        return transform_points(current.astype(np.float64), invert(matrices))

    @property
    def n_trees(self) -> int:
        return sum(len(s.split_u) for c in self.cascades for s in c if isinstance(s, TreeStage))

    def to_dict(self) -> dict:
        import torch
        return {"format": "facetrack-cascade-1",
                "mean_shape": torch.from_numpy(self.mean_shape.astype(np.float32)),
                "face_size": int(self.face_size), "crop_size": int(self.crop_size),
                "class_cluster": torch.from_numpy(self.class_cluster.astype(np.int16)),
                "cascades": [[s.to_dict() for s in stages] for stages in self.cascades]}

    @classmethod
    def from_dict(cls, data: dict) -> "ShapeCascade":
        def arr(value):
            return value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        return cls(mean_shape=arr(data["mean_shape"]).astype(np.float64), face_size=int(data["face_size"]),
                   crop_size=int(data["crop_size"]), class_cluster=arr(data["class_cluster"]).astype(np.int64),
                   cascades=[[stage_from_dict(s) for s in stages] for stages in data["cascades"]])
