"""The paper's Fig. 10 experiment on our data: does the pose HMM carry a face through occlusion?

On both shared clips (../shared/data/videos/wolfganglanger and pyfeat_single_face), seeded
synthetic occluders of three sizes (0.5, 0.75 and 1.0 x the face box side) cover the face
for runs of frames. We track the occluded clip with and without the temporal stage
and score every frame against the pseudo-labels of the clean clip (NME by box diagonal,
AUC@0.08, failure = NME > 0.08; a frame without an estimate is a failure). Jitter is the
mean landmark displacement between consecutive frames, over the box diagonal, on frame
pairs where the pseudo-labels barely move (mean point motion < 0.5 % of the diagonal),
measured on the clean clip.

Run: .venv/bin/python docs/fig10/occlusion.py   (writes results.md, results.json, occlusion.png here)
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tracker.api import Tracker  # noqa: E402
from tracker.config import TemporalConfig, TrackConfig, TrackingConfig  # noqa: E402
from tracker.evaluation.metrics import auc, failure_rate, nme  # noqa: E402
from tracker.geometry.boxes import bounding_box
from tracker.geometry.shapes import box_diagonal
from tracker.inference.pipeline import track_frames  # noqa: E402
from tracker.io.annotations import read_300vw  # noqa: E402
from tracker.io.sources import Frame, VideoSource  # noqa: E402
from tracker.temporal.stage import RegressStage, TemporalStage, ThreeFrameSmoother  # noqa: E402

VIDEOS = REPO.parent / "shared" / "data" / "videos"
CLIPS = ("wolfganglanger", "pyfeat_single_face")
CLIP = VIDEOS / CLIPS[0]   # the clip of pruning.py and jitter_sources.py
SEED = 10
RUNS = 6                 # occluded stretches (fewer on a short clip)
RUN_LENGTH = (6, 14)     # frames per stretch (inclusive range)
COVERS = (0.5, 0.75, 1.0)  # occluder side as a share of the face box side
STILL = 0.005            # "barely moves": mean pseudo-label motion below this share of the diagonal


def occlusion_plan(n_frames: int, rng: np.random.Generator) -> dict[int, tuple[float, float, int]]:
    """Frame index -> (centre offset x, y in face-box units, texture seed) for occluded frames."""
    plan: dict[int, tuple[float, float, int]] = {}
    # every 40th frame between 30 and n - 30 (on a short clip: every 20th between 10 and n - 10)
    candidates = np.arange(30, n_frames - 30, 40) if n_frames > 200 else np.arange(10, n_frames - 10, 20)
    starts = np.sort(rng.choice(candidates, min(RUNS, len(candidates)), replace=False))
    for start in starts:
        length = int(rng.integers(RUN_LENGTH[0], RUN_LENGTH[1] + 1))
        dx, dy = rng.uniform(-0.12, 0.12, 2)
        texture = int(rng.integers(1 << 30))
        for i in range(start, min(start + length, n_frames + 1)):
            plan[int(i)] = (float(dx), float(dy), texture)
    return plan


def occlude(image: np.ndarray, points: np.ndarray, dx: float, dy: float, texture: int, cover: float) -> np.ndarray:
    """A textured block (blurred colour noise, like a hand or an object) of side ``cover`` x the face box."""
    x0, y0, x1, y1 = bounding_box(points)
    side = cover * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2 + dx * (x1 - x0), (y0 + y1) / 2 + dy * (y1 - y0)
    a, b = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = int(round(side))
    rng = np.random.default_rng(texture)
    block = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 4)
    out = image.copy()
    ya, yb, xa, xb = max(b, 0), min(b + size, out.shape[0]), max(a, 0), min(a + size, out.shape[1])
    out[ya:yb, xa:xb] = block[ya - b:yb - b, xa - a:xb - a]
    return out


class Frames:
    """The clip's frames, occluded where the plan says (an iterable source for track_frames)."""

    live = False

    def __init__(self, frames: list[Frame], labels: dict, plan: dict, cover: float = 0.75):
        self.frames, self.labels, self.plan, self.cover = frames, labels, plan, cover

    def __iter__(self):
        for f in self.frames:
            if f.index in self.plan:
                yield dataclasses.replace(f, image=occlude(f.image, self.labels[f.index], *self.plan[f.index],
                                                           self.cover))
            else:
                yield f


def tracker_for(temporal_cfg: TemporalConfig) -> Tracker:
    """The default tracker with these temporal settings (the packaged model loaded once)."""
    global _MODEL
    tracker = Tracker(_MODEL, "cpu", config=TrackConfig(TrackingConfig(), temporal_cfg))
    _MODEL = tracker.model
    return tracker


_MODEL = None


def track(frames, temporal_cfg: TemporalConfig, hold) -> dict[int, np.ndarray]:
    """Frame index -> landmarks of the first face of each frame (the clip has one)."""
    cfg = TrackingConfig()
    tracker = tracker_for(temporal_cfg)
    engine = tracker.new_engine()
    if hold:
        engine.hold_frames = TemporalConfig().hold_frames
    temporal = TemporalStage(None, ThreeFrameSmoother(), RegressStage(tracker.landmarker.regress)) \
        if hold == "smoothing only" else tracker.new_temporal_stage(live=False)
    out = {}
    for result in track_frames(frames, engine, cfg.batch_size, cfg.queue_size, False, temporal):
        if result.faces:
            out[result.frame.index] = result.faces[0].landmarks
    return out


def per_frame_faces(frames):
    """(model, frame index -> first face) tracked with the default settings and no temporal
    stage, each face keeping the classifier's log-softmax (the HMM's observations)."""
    cfg = TrackingConfig()
    tracker = tracker_for(TemporalConfig())
    results = track_frames(frames, tracker.new_engine(), cfg.batch_size, cfg.queue_size, False, None)
    return tracker.model, {r.frame.index: r.faces[0] for r in results if r.faces}


def scores(pred: dict, labels: dict, subset: list[int]) -> dict:
    errors = np.array([nme(pred[i], labels[i]) if i in pred else np.inf for i in subset])
    return {"n": len(subset), "nme": float(np.mean(errors[np.isfinite(errors)])), "auc": float(auc(errors)),
            "failure_rate": float(failure_rate(errors)), "missing": int(np.sum(~np.isfinite(errors)))}


def jitter(pred: dict, labels: dict, frames: list[int]) -> tuple[float, int]:
    """Mean landmark step between consecutive frames over the diagonal, where the labels stand still."""
    steps = []
    for a, b in zip(frames, frames[1:]):
        diag = box_diagonal(labels[a])
        if np.linalg.norm(labels[b] - labels[a], axis=1).mean() / diag < STILL and a in pred and b in pred:
            steps.append(np.linalg.norm(pred[b] - pred[a], axis=1).mean() / diag)
    return float(np.mean(steps)), len(steps)


def main() -> None:
    missing = [c for c in CLIPS if not (VIDEOS / c).exists()]
    if missing:
        raise SystemExit(f"needs {VIDEOS / missing[0]}")
    torch.set_num_threads(1)
    on = TemporalConfig()
    methods = {
        "per frame (--no-temporal)": (dataclasses.replace(on, enabled=False), False),
        "per frame, faces held": (dataclasses.replace(on, enabled=False), True),
        "per frame + 3-frame smoothing, no HMM": (on, "smoothing only"),
        "HMM, no smoothing": (dataclasses.replace(on, smoothing=False), True),
        "HMM + 3-frame smoothing (default)": (on, True),
    }
    results, sections = {"seed": SEED, "covers": list(COVERS), "clips": {}}, []
    for clip in CLIPS:
        seq = read_300vw(VIDEOS / clip)
        labels = seq.landmarks
        clean = list(VideoSource(VIDEOS / clip / "vid.mp4"))
        plan = occlusion_plan(len(clean), np.random.default_rng(SEED))
        occluded_ids = sorted(plan)
        rows, curves = [], {}
        for name, (tcfg, hold) in methods.items():
            pred_clean = track(Frames(clean, labels, {}), tcfg, hold)
            j, pairs = jitter(pred_clean, labels, seq.frames)
            row = {"method": name, "clean_all": scores(pred_clean, labels, seq.frames), "jitter_clean": j,
                   "jitter_pairs": pairs, "covers": {}}
            for cover in COVERS:
                pred = track(Frames(clean, labels, plan, cover), tcfg, hold)
                row["covers"][str(cover)] = {"occluded": scores(pred, labels, occluded_ids),
                                             "all": scores(pred, labels, seq.frames)}
                if cover == 0.75:
                    curves[name] = [nme(pred[i], labels[i]) if i in pred else np.nan for i in seq.frames]
            rows.append(row)
            print(clip, json.dumps(row), flush=True)
        results["clips"][clip] = {"occluded_frames": occluded_ids, "rows": rows}
        sections.append(f"### {clip} ({len(seq.frames)} frames, {len(occluded_ids)} occluded)\n\n"
                        + table(rows, COVERS))
        plot(curves, seq.frames, plan, HERE / ("occlusion.png" if clip == CLIPS[0] else f"occlusion_{clip}.png"))
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "results.md").write_text("\n\n".join(sections) + "\n")


def table(rows: list[dict], covers) -> str:
    head = " | ".join(f"cover {c}: occluded FR % / AUC" for c in covers)
    lines = [f"| method | {head} | clean clip: AUC@0.08 | jitter (clean, still frames) |",
             "|---|" + "---|" * len(covers) + "---|---|"]
    for r in rows:
        cells = " | ".join(f"{100 * r['covers'][str(c)]['occluded']['failure_rate']:.1f} / "
                           f"{r['covers'][str(c)]['occluded']['auc']:.3f}" for c in covers)
        lines.append(f"| {r['method']} | {cells} | {r['clean_all']['auc']:.3f} | "
                     f"{r['jitter_clean']:.4f} ({r['jitter_pairs']} pairs) |")
    return "\n".join(lines)


def plot(curves: dict, frames: list[int], plan: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=120)
    for i in plan:
        ax.axvspan(i - 0.5, i + 0.5, color="0.85", lw=0)
    for name in ("per frame, faces held", "HMM + 3-frame smoothing (default)"):
        ax.plot(frames, curves[name], lw=1, label=name)
    ax.axhline(0.08, color="k", lw=0.6, ls="--")
    ax.set_ylim(0, 0.2)
    ax.set_xlabel("frame (grey: occluded)")
    ax.set_ylabel("NME (box diagonal)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
