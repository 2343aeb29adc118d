"""Reading the posterior (issue 11): which readout of the softmax over K pose classes gives
the best landmarks, measured on the model's validation split (never on HELEN-test).

Each validation face is cropped three times from its ground-truth box shifted and scaled
by up to 5 % (as in training's validation), classified once; the readouts are computed
from the same scores:
- top-k mean at temperature T: the templates of the k most probable classes averaged with
  softmax(scores / T) renormalised over the k (the default readout is k = 50, T = 1);
- neighbourhood mode: the template whose tau-neighbourhood (among the top 400) holds the
  most probability (the probability that the truth lies within tau of it);
- neighbourhood-weighted mean: the top-k mean with each class's probability multiplied by
  its neighbourhood mass.
Scores: NME by the box diagonal, AUC@0.08, failure rate (300VW protocol).

Run: .venv/bin/python docs/readouts/readouts.py [MODEL]   (writes results-<config name>.md here)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tracker.classifier.model import load_model  # noqa: E402
from tracker.config import config_from_dict  # noqa: E402
from tracker.evaluation.metrics import auc, failure_rate  # noqa: E402
from tracker.training.classifier import landmark_errors, predict_scores  # noqa: E402
from tracker.training.data import jittered_crops, load_faces, split_by_photo  # noqa: E402

TOP = 400                   # classes kept per face for every readout
KS = (1, 10, 25, 50, 100, 200, 400)
TEMPERATURES = (0.5, 1.0, 1.5, 2.0, 3.0)


def validation_crops(model, repeats: int = 3):
    cfg = config_from_dict(model.config)
    _, val = split_by_photo(load_faces(cfg.data.root, cfg.data.train_sets), cfg.data.val_fraction,
                            cfg.data.split_seed)
    parts = [jittered_crops(val, cfg.model.crop_size, cfg.model.margin, seed=1234 + r) for r in range(repeats)]
    return np.concatenate([c for c, _ in parts]), np.concatenate([s for _, s in parts]), len(val)


def top_mean(scores: torch.Tensor, templates: np.ndarray, k: int, temperature: float,
             extra_weight: np.ndarray | None = None) -> np.ndarray:
    top = torch.topk(scores, k, dim=1)
    weights = torch.softmax(top.values / temperature, dim=1).numpy().astype(np.float64)
    if extra_weight is not None:
        weights = weights * extra_weight[:, :k]
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("nk,nkpd->npd", weights, templates[top.indices.numpy()])


def neighbourhood_mass(scores: torch.Tensor, templates: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, TOP) classes by score and, for each, the probability mass within tau of its template."""
    probs = torch.softmax(scores, dim=1)
    top = torch.topk(probs, TOP, dim=1)
    classes, p = top.indices.numpy(), top.values.numpy().astype(np.float64)
    mass = np.empty_like(p)
    for n in range(len(classes)):
        flat = templates[classes[n]].reshape(TOP, -1)
        sq = (flat ** 2).sum(1)
        d2 = (sq[:, None] + sq[None] - 2 * flat @ flat.T) / (flat.shape[1] // 2)    # squared RMS distances
        mass[n] = (d2 <= tau ** 2) @ p[n]
    return classes, mass


def score_row(name: str, shapes_pred: np.ndarray, shapes_true: np.ndarray) -> dict:
    err = landmark_errors(shapes_pred, shapes_true)
    return {"readout": name, "nme": float(err.mean()), "auc": auc(err), "fr": failure_rate(err)}


def main() -> None:
    torch.set_num_threads(2)
    model = load_model(sys.argv[1] if len(sys.argv) > 1 else None)
    crops, shapes, n_faces = validation_crops(model)
    scores = predict_scores(model.network, crops, "cpu")
    templates = model.templates.astype(np.float64)
    rows = [score_row(f"top-{k} mean, T = {t:g}", top_mean(scores, templates, k, t), shapes)
            for t in TEMPERATURES for k in KS]
    classes, mass = neighbourhood_mass(scores, templates, model.tau)
    mode = templates[classes[np.arange(len(classes)), mass.argmax(1)]]
    rows.append(score_row("neighbourhood mode", mode, shapes))
    for k in (25, 50, 100, 200):
        rows.append(score_row(f"neighbourhood-weighted top-{k} mean, T = 1",
                              top_mean(scores, templates, k, 1.0, mass), shapes))
    rows.sort(key=lambda r: -r["auc"])
    lines = [f"Model {sys.argv[1] if len(sys.argv) > 1 else 'packaged default'}: K = {model.num_classes}, "
             f"tau = {model.tau:.3f}; {n_faces} validation faces x 3 jittered crops = {len(shapes)} crops.", "",
             "| readout | NME diag | AUC@0.08 | FR % |", "|---|---|---|---|"]
    lines += [f"| {r['readout']} | {r['nme']:.4f} | {r['auc']:.4f} | {100 * r['fr']:.2f} |" for r in rows]
    text = "\n".join(lines)
    (HERE / f"results-{model.config.get('name', 'model')}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
