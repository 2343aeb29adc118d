"""Where the jitter on still frames comes from, and why the decoded class alone does not lower it.

Tracks the clean wolfganglanger clip once (default configuration, per-frame estimates with
the classifier's distributions kept), decodes the pose classes with the default HMM, then
scores several ways of turning a decoded class into landmarks with the jitter measure of
occlusion.py (same frame pairs). Also prints how far the crop box and the pseudo-labels
themselves move on those pairs.

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
from tracker.cli import build_engine  # noqa: E402
from tracker.config import TemporalConfig, TrackingConfig  # noqa: E402
from tracker.io.annotations import read_300vw  # noqa: E402
from tracker.io.sources import VideoSource  # noqa: E402
from tracker.pipeline import track_frames  # noqa: E402
from tracker.shapes import box_center_size, box_diagonal, from_canonical  # noqa: E402
from tracker.smoothing import decoded_landmarks  # noqa: E402
from tracker.temporal import FixedLagDecoder, model_transitions  # noqa: E402


def still_pairs(labels: dict, frames: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in zip(frames, frames[1:])
            if np.linalg.norm(labels[b] - labels[a], axis=1).mean() / box_diagonal(labels[a]) < occ.STILL]


def main() -> None:
    if not occ.CLIP.exists():
        raise SystemExit(f"needs {occ.CLIP}")
    torch.set_num_threads(1)
    seq = read_300vw(occ.CLIP)
    labels, frames = seq.landmarks, seq.frames
    cfg, tcfg = TrackingConfig(), TemporalConfig()
    engine = build_engine(cfg, temporal=tcfg)
    faces = {r.frame.index: r.faces[0] for r in track_frames(VideoSource(occ.CLIP / "vid.mp4"), engine,
                                                             cfg.batch_size, cfg.queue_size, False, None)
             if r.faces}
    model = engine.landmarker.model
    decoder = FixedLagDecoder(model_transitions(model, tcfg.neighbours), tcfg.lag, prune_top=tcfg.prune_top)
    order = sorted(faces)
    states = {}
    for index in order:
        states.update((order[k], s) for k, s in decoder.push(faces[index].log_probs))
    states.update((order[k], s) for k, s in decoder.flush())
    templates, tau = model.templates, model.tau
    ways = {
        "per frame (the classifier's top-k posterior mean)": lambda f, s: f.landmarks,
        "decoded class: posterior reweighted, width tau (default)": lambda f, s: decoded_landmarks(f, s, templates, tau),
        "decoded class: posterior reweighted, width tau / 2": lambda f, s: decoded_landmarks(f, s, templates, tau / 2),
        "decoded class: its template alone": lambda f, s: from_canonical(templates[s], f.box),
    }
    for name, way in ways.items():
        pred = {i: way(faces[i], states[i]) for i in order}
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
