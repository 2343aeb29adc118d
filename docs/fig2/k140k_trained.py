"""A trained K = 140,000 model against the packaged default (K = 12,936): does K = 140,000
win on HELEN-test, and what does its HMM cost inside ``facetrack track`` on a real clip?

Both models come from the same recipe (configs/default.yaml and configs/k140k-cpu.yaml
differ only in the number of jittered copies per exemplar, hence K; tau is chosen per K on
the validation split by the same criterion; multi-label loss, 2,400 steps x 64 crops).

1. Prepare the K = 140,000 model as `facetrack calibrate` would: the HMM's pose-neighbour
   transitions stored in it, its confidence calibration fitted on its own validation split.
   It has no regressors of its own: it gets the packaged trees (a class's cluster is that of
   its nearest packaged class; the trees read the image, not the network) and no detection
   refinement (that one reads the network's features).
2. The readout's top-k for each model, chosen on the validation split (129 faces, crops
   from jittered ground-truth boxes), never on HELEN-test.
3. HELEN-test, detection setup, both models: classification alone at top-k 50 and at each
   one's chosen top-k, then + the trees (detection refinement off for both, to compare like
   with like).
4. The bundled clip: ``facetrack track`` with each model (HMM on, detection refinement off
   for both) scored against the pseudo-labels, and ``facetrack bench`` for the per-frame cost.

Run: .venv/bin/python docs/fig2/k140k_trained.py runs/k140k-cpu/model.pt   (about 15 min on
the 2-core CPU; writes k140k_trained.json here and prints the tables)
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from k140k_hmm import borrow_packaged_trees  # noqa: E402  (this folder's)

from tracker.api import Tracker  # noqa: E402
from tracker.classifier.model import DEFAULT_MODEL, confidence_path, load_model, load_regressors  # noqa: E402
from tracker.config import TemporalConfig, config_from_dict  # noqa: E402
from tracker.distribution.poses import nearest_template  # noqa: E402
from tracker.evaluation.accuracy import predict_folder, track_clip  # noqa: E402
from tracker.evaluation.scoring import evaluate  # noqa: E402
from tracker.temporal.hmm import pose_transitions  # noqa: E402
from tracker.training.classifier import validate  # noqa: E402
from tracker.training.data import jittered_crops, load_faces, split_by_photo  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
HELEN_TEST = SHARED / "300w-subset" / "helen-test"
CLIP = REPO / "tracker" / "assets" / "sample"
TOP_KS = (10, 25, 50, 100, 200, 500)
FACETRACK = [sys.executable, "-m", "tracker.cli"]


def prepare(path: Path) -> None:
    """Transitions, the packaged trees mapped onto its classes, and its confidence calibration."""
    model = load_model(path, "cpu", "torch")
    if model.transitions is None:
        tick = time.perf_counter()
        trans = pose_transitions(model.templates, TemporalConfig().neighbours)
        model.transitions = trans.to_dict()
        model.save(path)
        print(f"pose graph: {len(trans.indices):,} edges in {time.perf_counter() - tick:.1f} s", flush=True)
    if not load_regressors(path):
        nearest, _ = nearest_template(model.templates, load_model(DEFAULT_MODEL, "cpu", "torch").templates)
        borrow_packaged_trees(path, nearest)
    if not confidence_path(path).is_file():
        subprocess.run([*FACETRACK, "calibrate", "--model", str(path), "--confidence"], check=True)


def chosen_top_k(path) -> tuple[int, dict]:
    """The readout's top-k with the lowest validation NME (the model's own validation split)."""
    model = load_model(path, "cpu", "torch")
    cfg = config_from_dict(model.config)
    faces = load_faces(SHARED / "300w-subset", cfg.data.train_sets)
    _, val_faces = split_by_photo(faces, cfg.data.val_fraction, cfg.data.split_seed)
    crops, shapes = jittered_crops(val_faces, cfg.model.crop_size, cfg.model.margin)
    table = {k: validate(model.network, crops, shapes, model.templates, model.tau, k, "cpu") for k in TOP_KS}
    best = min(table, key=lambda k: table[k]["nme_topk"])
    return best, {k: {"nme": round(m["nme_topk"], 5), "auc": round(m["auc_topk"], 4)} for k, m in table.items()}


def slug(name: str) -> str:
    return "k" + "".join(c for c in name.split("(")[0] if c.isdigit())


def still_rows(name: str, path, top_k: int, out: Path) -> list[dict]:
    rows = []
    plan = [("classification, top-k 50", 50, False)]
    if top_k != 50:
        plan.append((f"classification, top-k {top_k} (chosen on validation)", top_k, False))
    plan.append((f"+ trees, top-k {top_k}", top_k, True))
    for label, k, trees in plan:
        tracker = Tracker(path, "cpu", temporal=False, threads=2, regressors="video" if trees else "off",
                          box_refinement=trees, top_k=k)
        tracker.landmarker.box_refiner = None
        csv = out / f"{slug(name)}-stills-{len(rows)}.csv"
        tick = time.perf_counter()
        predict_folder(tracker, HELEN_TEST, csv)
        rows.append({"model": name, "row": label, "seconds": round(time.perf_counter() - tick, 1),
                     **evaluate(csv, HELEN_TEST)[1]["all"].as_dict()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def clip_row(name: str, path, top_k: int, out: Path) -> dict:
    tracker = Tracker(path, "cpu", top_k=top_k)
    tracker.landmarker.box_refiner = None
    csv = out / f"{slug(name)}-clip.csv"
    track_clip(tracker, CLIP / "vid.mp4", csv)
    row = {"model": name, "row": f"track (HMM on), top-k {top_k}", **evaluate(csv, CLIP)[1]["all"].as_dict()}
    print(json.dumps(row), flush=True)
    return row


def bench(path) -> str:
    done = subprocess.run([*FACETRACK, "bench", "--model", str(path), "--no-baseline", "--hmm-states", "",
                           "--process-runs", "0"], capture_output=True, text=True)
    print(done.stdout + done.stderr[-2000:], flush=True)
    return done.stdout


def markdown(rows: list[dict], jitter: bool = False) -> str:
    lines = ["| model | row | NME diag | NME io (median) | AUC@0.08 | failure rate |" + (" jitter |" if jitter else ""),
             "|---" * (6 + jitter) + "|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['row']} | {r['nme_diag']:.4f} | {r['nme_io']:.4f} ({r['median_io']:.4f}) | "
                     f"{r['auc']:.3f} | {100 * r['failure_rate']:.2f} % |" + (f" {r['jitter']:.5f} |" if jitter else ""))
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1])
    out = Path("/tmp/facetrack-k140k-trained")
    out.mkdir(parents=True, exist_ok=True)
    prepare(path)
    models = {"K = 12,936 (default)": DEFAULT_MODEL, "K = 140,000": path}
    result = {"top_k": {}, "stills": [], "clip": [], "bench": {}}
    for name, p in models.items():
        k, table = chosen_top_k(p)
        result["top_k"][name] = {"chosen": k, "validation": table}
        print(name, "top-k on validation:", json.dumps(table), "->", k, flush=True)
    for name, p in models.items():
        result["stills"] += still_rows(name, p, result["top_k"][name]["chosen"], out)
    for name, p in models.items():
        result["clip"].append(clip_row(name, p, result["top_k"][name]["chosen"], out))
    for name, p in models.items():
        result["bench"][name] = bench(p)
    (HERE / "k140k_trained.json").write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result["stills"]))
    print(markdown(result["clip"], jitter=True))


if __name__ == "__main__":
    main()
