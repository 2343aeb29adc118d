"""What the K = 140,000 HMM costs inside ``facetrack track`` on a real clip, before a
K = 140,000 model is trained (that needs a GPU: configs/k140k.yaml).

The classes are the 140,000 exemplars configs/k140k.yaml builds. The network is the packaged
model's with its head widened: each exemplar class gets the head row of the packaged
model's nearest class, and its bias lowered by the log of how many exemplars share that
class, so that the posterior over the old classes is unchanged and is spread over their
exemplars. This measures cost (the classifier's K-way head, top-k, the HMM over the
140,000-state pose graph with the configured top-512 pruning); its accuracy says nothing
about a trained K = 140,000 model. The regressors and the confidence calibration are the
packaged ones (a class's cluster is its nearest old class's).

Run: .venv/bin/python docs/fig2/k140k_hmm.py   (builds /tmp/facetrack-k140k/model.pt, then
     runs facetrack bench and facetrack track + evaluate on the bundled sample with it)
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tracker.classifier.model import DEFAULT_MODEL, confidence_path, load_model, load_regressors, save_regressors  # noqa: E402
from tracker.config import load_config  # noqa: E402
from tracker.distribution.poses import nearest_template  # noqa: E402
from tracker.temporal.hmm import pose_transitions  # noqa: E402
from tracker.training.classifier import exemplar_subset  # noqa: E402
from tracker.training.data import load_faces, split_by_photo, template_bank  # noqa: E402

OUT = Path("/tmp/facetrack-k140k")
SAMPLE = REPO / "tracker" / "assets" / "sample"


def build() -> Path:
    start = time.perf_counter()
    cfg = load_config(REPO / "configs" / "k140k.yaml", {"data": {"root": str(REPO.parent / "shared" / "data" / "300w-subset")}})
    faces = load_faces(cfg.data.root, cfg.data.train_sets)
    train_faces, _ = split_by_photo(faces, cfg.data.val_fraction, cfg.data.split_seed)
    templates = exemplar_subset(template_bank(train_faces, cfg.classes), cfg.classes.k, cfg.classes.seed)
    base = load_model(None, "cpu", "torch")
    nearest, _ = nearest_template(templates, base.templates)
    share = np.bincount(nearest, minlength=len(base.templates))
    head = base.network.head
    wide = torch.nn.Linear(head.in_features, len(templates))
    with torch.no_grad():
        wide.weight.copy_(head.weight[torch.from_numpy(nearest)])
        wide.bias.copy_(head.bias[torch.from_numpy(nearest)] - torch.from_numpy(np.log(share[nearest])).float())
    base.network.head = wide
    print(f"classes {len(templates):,}, old classes used {int((share > 0).sum()):,}, "
          f"built in {time.perf_counter() - start:.1f} s", flush=True)
    tick = time.perf_counter()
    trans = pose_transitions(templates, 32)
    print(f"pose graph: {len(trans.indices):,} edges in {time.perf_counter() - tick:.1f} s", flush=True)
    model = dataclasses.replace(base, templates=templates.astype(np.float32),
                                widths=np.asarray(base.widths)[nearest],
                                transitions={"indptr": trans.indptr, "indices": trans.indices,
                                             "log_weight": trans.log_weight, "n": trans.n, "sigma": trans.sigma},
                                meta={**base.meta, "derived": "packaged model, head widened to 140,000 exemplars "
                                                              "(docs/fig2/k140k_hmm.py): for cost, not accuracy"})
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "model.pt"
    model.save(path)
    borrow_packaged_trees(path, nearest, with_box=True)
    shutil.copy(confidence_path(DEFAULT_MODEL), confidence_path(path))
    return path


def borrow_packaged_trees(path, nearest: np.ndarray, with_box: bool = False) -> None:
    """Write the packaged cascade beside the model at ``path``, class k taking the cluster of
    packaged class ``nearest[k]`` (the trees read the image, not the network); the packaged
    detection refinement too when ``with_box`` (it reads the network's features)."""
    refiners = load_regressors(DEFAULT_MODEL)
    cascade = refiners["cascade"]
    cascade = dataclasses.replace(cascade, class_cluster=np.asarray(cascade.class_cluster)[nearest])
    save_regressors(path, cascade, refiners.get("box") if with_box else None)


def main() -> None:
    path = OUT / "model.pt"
    if not path.is_file():
        path = build()
    facetrack = [sys.executable, "-m", "tracker.cli"]
    for command in ([*facetrack, "bench", "--model", str(path), "--no-baseline", "--hmm-states", ""],
                    [*facetrack, "bench", "--no-baseline", "--hmm-states", ""]):
        print("$", " ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)
    csv = OUT / "sample.csv"
    subprocess.run([*facetrack, "track", str(SAMPLE / "vid.mp4"), "--model", str(path), "--csv", str(csv),
                    "--no-progress"], check=True)
    subprocess.run([*facetrack, "evaluate", "--pred", str(csv), "--gt", str(SAMPLE)], check=True)


if __name__ == "__main__":
    main()
