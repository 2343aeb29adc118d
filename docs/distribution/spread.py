"""Does the posterior's per-landmark spread rank the per-landmark errors? (output: spread.txt)

Run: .venv/bin/python docs/distribution/spread.py
HELEN-test (report only), detection setup as `facetrack predict`: for every face, the
spread of each landmark under the mixture of eq. 3 (top-50 classes, each a spherical
Gaussian of its class width; `tracker.distribution.posterior.landmark_spread`, in pixels) against the
landmark's error after the regressors, in pixels. Spearman rank correlation over all
(face, landmark) pairs, and within faces (mean over faces of the correlation over their 68).
"""
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tracker.classifier.model import load_model  # noqa: E402
from tracker.detection.detectors import detector_chain, fallback_detectors
from tracker.distribution.posterior import Posterior, landmark_spread  # noqa: E402
from tracker.geometry.boxes import iou, landmark_box
from tracker.inference.landmarker import Landmarker  # noqa: E402
from tracker.training.data import load_faces  # noqa: E402


def ranks(x):
    order = np.argsort(x, kind="mergesort")
    out = np.empty(len(x))
    out[order] = np.arange(len(x))
    return out


def spearman(a, b):
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def main():
    torch.set_num_threads(1)
    model = load_model()
    landmarker = Landmarker(model, detector_chain("auto", upsample=1), fallback=fallback_detectors("auto"))
    faces = load_faces(REPO.parent / "shared" / "data" / "300w-subset", ["helen-test"])
    spreads, errors, within = [], [], []
    for face in faces:
        found = [e for e in landmarker(face.image) if iou(landmark_box(e.landmarks), landmark_box(face.landmarks)) > 0.3]
        if not found:
            continue
        est = found[0]
        post = Posterior(est.classes[None], est.probs[None], np.ones(1))
        spread = landmark_spread(post, model.templates, model.widths)[0] * (est.box[2] - est.box[0])
        error = np.linalg.norm(est.landmarks - face.landmarks, axis=1)
        spreads.append(spread)
        errors.append(error)
        within.append(spearman(spread, error))
    s, e = np.concatenate(spreads), np.concatenate(errors)
    lines = [f"HELEN-test: {len(spreads)} of {len(faces)} faces found; {len(s)} (face, landmark) pairs",
             f"Spearman(spread, error) over all pairs: {spearman(s, e):.3f}",
             f"Spearman within a face, mean over faces: {np.mean(within):.3f} (median {np.median(within):.3f})",
             f"Spearman of the per-landmark means over faces (68 points): "
             f"{spearman(np.mean(spreads, 0), np.mean(errors, 0)):.3f}"]
    (Path(__file__).with_name("spread.txt")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
