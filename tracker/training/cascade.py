"""Fitting the cascaded shape regressors of :mod:`tracker.regressors.cascade`: the clusters of
pose classes, which training examples each cluster's cascade shares (the membership sets of
eq. 6), and the stages (gradient-boosted trees on pixel differences, or the paper's ridge on
RootSIFT; network stages are :mod:`tracker.training.net_stage`'s)."""
from __future__ import annotations

import time

import numpy as np

from kernels.ert import group_sums, split_sums
from tracker.config import CascadeConfig
from tracker.detection.box_refinement import fit_ridge
from tracker.distribution.poses import kmeans_templates, membership_sets, nearest_template
from tracker.geometry.alignment import similarity_params, unrotate
from tracker.geometry.boxes import landmark_box
from tracker.geometry.shapes import to_canonical
from tracker.regressors.cascade import LinearStage, TreeStage

# ---------------------------------------------------------------------------- clusters


def cluster_classes(templates: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """(K,) cluster of each pose class: k-means of the templates with roll, shift and scale
    removed (clusters of pose and expression, not of the detector's misplacement)."""
    if n_clusters <= 1:
        return np.zeros(len(templates), dtype=np.int64)
    aligned = procrustes_normalised(templates)
    centres = kmeans_templates(aligned, n_clusters, seed=seed)
    return np.asarray(nearest_template(aligned, centres)[0], dtype=np.int64)


def procrustes_normalised(shapes: np.ndarray) -> np.ndarray:
    """Shapes (N, P, 2) each similarity-aligned onto their mean (iterated once)."""
    shapes = np.asarray(shapes, dtype=np.float64)
    ref = shapes.mean(axis=0)
    for _ in range(2):
        ref_c = ref - ref.mean(axis=0)
        ref_c /= np.sqrt((ref_c ** 2).sum())
        centred = shapes - shapes.mean(axis=1, keepdims=True)
        a, b = similarity_params(ref_c, centred)     # ref -> each shape
        out = unrotate(centred, a, b)
        ref = out.mean(axis=0)
    return out


def sample_clusters(truth_canonical: np.ndarray, templates: np.ndarray, class_cluster: np.ndarray,
                    tau: float) -> list[np.ndarray]:
    """For each training example (canonical truth (N, P, 2)), the clusters its membership set
    touches (eq. 6: the classes within RMS distance tau, or the nearest class when none is;
    :func:`tracker.distribution.poses.membership_sets`)."""
    if int(class_cluster.max()) + 1 == 1:
        return [np.zeros(1, np.int64) for _ in range(len(truth_canonical))]
    member = membership_sets(truth_canonical, templates, tau)
    return [np.unique(class_cluster[member.row(i)]) for i in range(len(member))]


# ---------------------------------------------------------------------------- stages


def feature_pool(mean_px: np.ndarray, size: int, pad: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """``size`` points uniform over the mean shape's box grown by ``pad`` of its side, each
    tied to its nearest landmark: (anchors (F,), offsets (F, 2))."""
    lo, hi = mean_px.min(0), mean_px.max(0)
    grow = pad * (hi - lo)
    points = rng.uniform(lo - grow, hi + grow, size=(size, 2))
    anchors = np.argmin(((points[:, None] - mean_px[None]) ** 2).sum(-1), axis=1)
    return anchors.astype(np.int64), (points - mean_px[anchors]).astype(np.float32)


def draw_pairs(positions: np.ndarray, count: int, scale: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """``count`` feature pairs (u != v), nearby ones favoured: P(u, v) ~ exp(-|pu - pv| / scale)."""
    us, vs, have = [], [], 0
    while have < count:
        u = rng.integers(0, len(positions), 8 * count + 16)
        v = rng.integers(0, len(positions), len(u))
        d = np.linalg.norm(positions[u] - positions[v], axis=1)
        keep = (u != v) & (rng.random(len(u)) < np.exp(-d / scale))
        us.append(u[keep])
        vs.append(v[keep])
        have += int(keep.sum())
    return np.concatenate(us)[:count], np.concatenate(vs)[:count]


def _segments(local: np.ndarray, n_nodes: int):
    order = np.argsort(local, kind="stable")
    sorted_nodes = local[order]
    starts = np.searchsorted(sorted_nodes, np.arange(n_nodes), side="left")
    ends = np.searchsorted(sorted_nodes, np.arange(n_nodes), side="right")
    return order, starts, ends


def fit_tree(features: np.ndarray, residuals: np.ndarray, depth: int, n_candidates: int,
             positions: np.ndarray, pair_scale: float, shrinkage: float, rng):
    """One regression tree on pixel-difference splits, greedily by squared-error reduction.

    Returns (split_u, split_v, split_t, leaves) and each sample's leaf."""
    n, dim = residuals.shape
    n_split = 2 ** depth - 1
    split_u = np.zeros(n_split, np.int64)
    split_v = np.zeros(n_split, np.int64)
    split_t = np.zeros(n_split, np.float32)
    node = np.zeros(n, np.int64)
    rows = np.arange(n)
    for level in range(depth):
        first, count = 2 ** level - 1, 2 ** level
        local = node - first
        order, starts, ends = _segments(local, count)
        parent_sums, parent_counts = group_sums(residuals, local, count)
        cand_node = np.repeat(np.arange(count), n_candidates)
        u, v = draw_pairs(positions, len(cand_node), pair_scale, rng)
        sizes = ends - starts
        pick = starts[cand_node] + (rng.random(len(cand_node)) * np.maximum(sizes[cand_node], 1)).astype(np.int64)
        sample = order[np.minimum(pick, n - 1)]
        thresholds = np.where(sizes[cand_node] > 0, features[sample, u] - features[sample, v], 0).astype(np.float32)
        sums = np.zeros((len(cand_node), dim), np.float64)
        counts = np.zeros(len(cand_node), np.int64)
        split_sums(features, residuals, order, starts, ends, cand_node, u, v, thresholds, sums, counts)
        right_sums = parent_sums[cand_node] - sums
        right_counts = parent_counts[cand_node] - counts
        gain = (sums ** 2).sum(1) / np.maximum(counts, 1) + (right_sums ** 2).sum(1) / np.maximum(right_counts, 1)
        best = np.argmax(gain.reshape(count, n_candidates), axis=1) + np.arange(count) * n_candidates
        split_u[first:first + count], split_v[first:first + count] = u[best], v[best]
        split_t[first:first + count] = thresholds[best]
        s = first + local
        left = features[rows, split_u[s]] - features[rows, split_v[s]] > split_t[s]
        node = np.where(left, 2 * node + 1, 2 * node + 2)
    leaf = node - n_split
    leaf_sums, leaf_counts = group_sums(residuals, leaf, 2 ** depth)
    leaves = (shrinkage * leaf_sums / np.maximum(leaf_counts, 1)[:, None]).astype(np.float32)
    return split_u, split_v, split_t, leaves, leaf


def fit_stage(crops, image_of, shapes, truths, mean_px, cfg: CascadeConfig, rng) -> TreeStage:
    """One stage's forest, boosted on the residuals (mean frame) of ``shapes`` to ``truths``."""
    mean_c = np.ascontiguousarray(mean_px - mean_px.mean(0), np.float32)
    anchors, offsets = feature_pool(mean_px, cfg.feature_pool, 0.1, rng)
    stage = TreeStage(anchors, offsets, *(np.zeros((0, 1)),) * 3, np.zeros((0, 1, 1)))
    features = stage.features(crops, image_of, shapes, mean_c)
    a, b = similarity_params(mean_c, shapes)
    residuals = unrotate(truths - shapes, a, b).reshape(len(shapes), -1).astype(np.float32)
    positions = mean_px[anchors] + offsets
    trees = [[], [], [], []]
    for _ in range(cfg.trees):
        u, v, t, leaves, leaf = fit_tree(features, residuals, cfg.depth, cfg.candidate_splits, positions,
                                         cfg.pair_prior * cfg.face_size, cfg.shrinkage, rng)
        residuals -= leaves[leaf]
        for store, value in zip(trees, (u, v, t, leaves)):
            store.append(value)
    stage.split_u, stage.split_v, stage.split_t, stage.leaves = (np.stack(x) for x in trees)
    stage.split_t = stage.split_t.astype(np.float32)
    return stage


def fit_linear_stage(crops, image_of, shapes, truths, mean_px, cfg: CascadeConfig) -> LinearStage:
    """One ridge stage from RootSIFT at the current landmarks to the residual (mean frame)."""
    mean_c = np.ascontiguousarray(mean_px - mean_px.mean(0), np.float32)
    stage = LinearStage(np.zeros((1, 1), np.float32), np.zeros(1, np.float32), cfg.descriptor_size)
    features = stage.features(crops, image_of, shapes)
    a, b = similarity_params(mean_c, shapes)
    residuals = unrotate(truths - shapes, a, b).reshape(len(shapes), -1)
    stage.weights, stage.bias = (x.astype(np.float32) for x in fit_ridge(features, residuals, cfg.ridge))
    return stage


def shape_error(shapes: np.ndarray, truths: np.ndarray, face_size: float) -> float:
    """Mean point error in units of the mean shape's box side."""
    return float(np.linalg.norm(shapes - truths, axis=-1).mean() / face_size)


def fit_cascade(crops, image_of, starts, truths, mean_px, cfg: CascadeConfig, rng, log=print,
                val=None) -> list[TreeStage]:
    """A cascade of ``cfg.net_stages`` network stages then ``cfg.stages`` stages of ``cfg.kind``;
    ``val`` (crops, image_of, starts, truths) is scored per stage."""
    stages, shapes = [], starts.astype(np.float32)
    mean_c = np.ascontiguousarray(mean_px - mean_px.mean(0), np.float32)
    val_shapes = None if val is None else val[2].astype(np.float32)
    log({"stage": 0, "train_error": shape_error(shapes, truths, cfg.face_size),
         **({} if val is None else {"val_error": shape_error(val_shapes, val[3], cfg.face_size)})})
    if cfg.net_stages:
        from tracker.training.net_stage import fit_net_stage
    for index in range(cfg.net_stages + cfg.stages):
        start = time.perf_counter()
        if index < cfg.net_stages:
            net_val = None if val is None else (val[0], val[1], val_shapes, val[3])
            stage = fit_net_stage(crops, image_of, shapes, truths, mean_px, cfg, rng,
                                  log=lambda row: log({"stage": index + 1, **row}), val=net_val)
        elif cfg.kind == "trees":
            stage = fit_stage(crops, image_of, shapes, truths, mean_px, cfg, rng)
        else:
            stage = fit_linear_stage(crops, image_of, shapes, truths, mean_px, cfg)
        shapes = stage.update(crops, image_of, shapes, mean_c).astype(np.float32)
        row = {"stage": index + 1, "train_error": shape_error(shapes, truths, cfg.face_size),
               "seconds": round(time.perf_counter() - start, 1)}
        if val is not None:
            val_shapes = stage.update(val[0], val[1], val_shapes, mean_c).astype(np.float32)
            row["val_error"] = shape_error(val_shapes, val[3], cfg.face_size)
        log(row)
        stages.append(stage)
    return stages


def canonical_mean_shape(truths_img: np.ndarray) -> np.ndarray:
    """The mean of the training shapes, each in its own landmark box (canonical frame)."""
    return np.mean([to_canonical(t, landmark_box(t)) for t in truths_img], axis=0)
