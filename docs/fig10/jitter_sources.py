"""Where the jitter on still frames comes from, and why the decoded class alone does not lower it.

Tracks the clean wolfganglanger clip once (default configuration, per-frame estimates with
the classifier's distributions kept), decodes the pose classes with the default HMM, then
scores several ways of turning a decoded class into landmarks with the jitter measure of
occlusion.py (same frame pairs). Two variants also change the decoding, to see whether
the HMM can lower the jitter at all:

* box-drift compensation: the crop box moves between frames, which moves a still face's
  canonical shape by delta = (c_prev - c_now) / size; with RMS-Gaussian transitions the
  shifted kernel exp(-|T_j - T_i - delta|^2 / 2 sigma^2) differs from the stored one by
  a_j - a_i (a_k = <centroid of T_k, delta> / sigma^2) plus a constant, so the step is the
  stored one on (delta_prev - a) with observations (log_obs + a);
* lattice max-marginals: on the top-k classes of every frame, forward and backward
  max-product over the whole clip (with the drift compensation) and landmarks as the
  mean of the classes weighted by their max-marginals (the evidence of the neighbouring
  frames, pooled through the pose-neighbour transitions).

Also prints how far the crop box and the pseudo-labels themselves move on those pairs.

Run: .venv/bin/python docs/fig10/jitter_sources.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import occlusion as occ  # noqa: E402

from kernels import hmm  # noqa: E402
from tracker.config import TemporalConfig  # noqa: E402
from tracker.geometry.boxes import box_center_size
from tracker.geometry.shapes import box_diagonal, from_canonical
from tracker.io.annotations import read_300vw  # noqa: E402
from tracker.io.sources import VideoSource  # noqa: E402
from tracker.temporal.hmm import FixedLagDecoder, model_transitions  # noqa: E402
from tracker.temporal.stage import decoded_landmarks  # noqa: E402


def still_pairs(labels: dict, frames: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in zip(frames, frames[1:])
            if np.linalg.norm(labels[b] - labels[a], axis=1).mean() / box_diagonal(labels[a]) < occ.STILL]


def drift_terms(faces: dict, order: list[int], centroids: np.ndarray, sigma: float) -> list[np.ndarray]:
    """Per frame (from the second), the (K,) vector a of the box-drift compensation."""
    out = []
    for prev, now in zip(order, order[1:]):
        (c0, _), (c1, s1) = box_center_size(faces[prev].box), box_center_size(faces[now].box)
        out.append((centroids @ ((c0 - c1) / s1) / sigma ** 2).astype(np.float32))
    return out


def drift_viterbi(trans, obs: list[np.ndarray], drift: list[np.ndarray]) -> list[int]:
    """Whole-clip Viterbi whose step t uses the stored transitions shifted by drift[t - 1]."""
    size, frames = trans.num_states, len(obs)
    back = np.empty((frames, size), dtype=np.int32)
    delta, work = np.empty(size, np.float32), np.empty(size, np.float32)
    hmm.init_step(np.full(size, -np.log(size), np.float32), obs[0], delta)
    for t in range(1, frames):
        hmm.forward_step(delta - drift[t - 1], trans.indptr, trans.indices, trans.log_weight,
                         obs[t] + drift[t - 1], work, back[t])
        delta, work = work, delta
    path = np.empty(frames, dtype=np.int64)
    return list(hmm.backtrack(back, frames - 1, frames - 1, np.int64(np.argmax(delta)), path))


def edge_weights(trans, sources: np.ndarray, targets: np.ndarray, missing: float) -> np.ndarray:
    """(len(sources), len(targets)) log P(source -> target); ``missing`` where there is no edge."""
    out = np.full((len(sources), len(targets)), missing)
    for b, j in enumerate(targets):
        row = trans.indices[trans.indptr[j]:trans.indptr[j + 1]]
        pos = np.minimum(np.searchsorted(row, sources), len(row) - 1)
        hit = row[pos] == sources
        out[hit, b] = trans.log_weight[trans.indptr[j] + pos[hit]]
    return out


def lattice_landmarks(faces, order, trans, drift, templates, top=50, missing=-15.0) -> dict:
    """Landmarks from max-marginals on the top-``top`` lattice (see the module docstring)."""
    classes = [faces[i].classes[:top] for i in order]
    obs = [faces[i].log_probs[c].astype(np.float64) for i, c in zip(order, classes)]
    steps = [edge_weights(trans, classes[t - 1], classes[t], missing)
             + drift[t - 1][classes[t]][None, :] - drift[t - 1][classes[t - 1]][:, None]
             for t in range(1, len(order))]
    forward = [obs[0]]
    for t, w in enumerate(steps, 1):
        f = (forward[-1][:, None] + w).max(axis=0) + obs[t]
        forward.append(f - f.max())
    backward = [np.zeros(len(classes[-1]))]
    for t in range(len(order) - 1, 0, -1):
        b = (steps[t - 1] + (obs[t] + backward[0])[None, :]).max(axis=1)
        backward.insert(0, b - b.max())
    out = {}
    for t, i in enumerate(order):
        score = forward[t] + backward[t]
        p = np.exp(score - score.max())
        out[i] = from_canonical(np.einsum("k,kpd->pd", p / p.sum(), templates[classes[t]]), faces[i].box)
    return out


def main() -> None:
    if not occ.CLIP.exists():
        raise SystemExit(f"needs {occ.CLIP}")
    torch.set_num_threads(1)
    seq = read_300vw(occ.CLIP)
    labels, frames = seq.landmarks, seq.frames
    tcfg = TemporalConfig()
    model, faces = occ.per_frame_faces(VideoSource(occ.CLIP / "vid.mp4"))
    trans = model_transitions(model, tcfg.neighbours)
    decoder = FixedLagDecoder(trans, tcfg.lag, prune_top=tcfg.prune_top)
    order = sorted(faces)
    states = {}
    for index in order:
        states.update((order[k], s) for k, s in decoder.push(faces[index].log_probs))
    states.update((order[k], s) for k, s in decoder.flush())
    templates, tau = model.templates, model.tau
    ways = {
        "per frame (the classifier's top-k posterior mean)": lambda f, s, i: f.landmarks,
        "decoded class: posterior reweighted, width tau (default)": lambda f, s, i: decoded_landmarks(f, s, templates, tau),
        "decoded class: posterior reweighted, width tau / 2": lambda f, s, i: decoded_landmarks(f, s, templates, tau / 2),
        "decoded class: its template alone": lambda f, s, i: from_canonical(templates[s], f.box),
    }
    drift = drift_terms(faces, order, templates.mean(axis=1).astype(np.float64), trans.sigma)
    drifted = dict(zip(order, drift_viterbi(trans, [faces[i].log_probs for i in order], drift)))
    ways["box-drift compensated decoding, reweighted, width tau"] = \
        lambda f, s, i: decoded_landmarks(f, drifted[i], templates, tau)
    lattice = lattice_landmarks(faces, order, trans, drift, templates.astype(np.float64))
    ways["lattice max-marginals (top 50, drift compensated)"] = lambda f, s, i: lattice[i]
    for name, way in ways.items():
        pred = {i: way(faces[i], states[i], i) for i in order}
        j, pairs = occ.jitter(pred, labels, frames)
        print(f"{name:58s} jitter {j:.4f} ({pairs} pairs)  clean AUC {occ.scores(pred, labels, frames)['auc']:.3f}")
    pairs = [(a, b) for a, b in still_pairs(labels, frames) if a in faces and b in faces]
    box_steps = [np.linalg.norm(box_center_size(faces[b].box)[0] - box_center_size(faces[a].box)[0])
                 / box_diagonal(labels[a]) for a, b in pairs]
    print(f"crop box centre step on those pairs: {np.mean(box_steps):.4f} diagonals per frame")
    print(f"pseudo-labels' own step on those pairs: {occ.jitter(labels, labels, frames)[0]:.4f}")
    changes = sum(states[a] != states[b] for a, b in zip(order, order[1:]))
    print(f"decoded class changes: {changes} in {len(order)} frames")


if __name__ == "__main__":
    main()
