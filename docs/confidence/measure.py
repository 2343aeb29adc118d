"""How honest the confidence is, on faces it was not fitted on (output: measure.txt, reliability.png).

Run: .venv/bin/python docs/confidence/measure.py
HELEN-test faces (report only: the calibration was fitted on the model's validation split,
by `facetrack calibrate --confidence`), each cropped from 8 perturbed boxes as in the fit
(half moved a little, half a lot, so that some fail), run through the landmarker as a fresh
detection (two passes, regressors). Failure: NME (box diagonal) > 0.08. Reported: the area
under the ROC curve for predicting failure from the confidence (and from the raw posterior
mass near the estimate, the confidence before), the Brier score, and reliability bins.
dlib's predictor gives no confidence, so there is nothing of dlib's to compare.
"""
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tracker.classifier.model import load_model  # noqa: E402
from tracker.distribution.confidence import reliability, roc_auc  # noqa: E402
from tracker.inference.landmarker import Landmarker  # noqa: E402
from tracker.training.calibration import confidence_examples  # noqa: E402
from tracker.training.data import load_faces  # noqa: E402

OUT = Path(__file__).resolve().parent


def main():
    torch.set_num_threads(1)
    model = load_model()
    faces = load_faces(REPO.parent / "shared" / "data" / "300w-subset", ["helen-test"])
    features, success, errors = confidence_examples(Landmarker(model), faces, seed=1)
    prob = model.confidence.probability(features)
    near = features[:, 0]
    fail = ~success
    lines = [f"HELEN-test, {len(faces)} faces x 8 perturbed boxes = {len(success)} crops; "
             f"failure rate {fail.mean() * 100:.1f} %",
             f"ROC AUC for predicting failure: calibrated confidence {roc_auc(-prob, fail):.4f}, "
             f"raw posterior mass near the estimate {roc_auc(-near, fail):.4f}",
             f"Brier score: calibrated {np.mean((prob - success) ** 2):.4f}, "
             f"raw mass read as a probability {np.mean((near - success) ** 2):.4f}",
             "reliability (predicted probability of success -> observed success rate):"]
    bins = reliability(prob, success)
    lines += [f"  {b['lo']:.1f}-{b['hi']:.1f}: n {b['n']:4d}, predicted {b['predicted']:.3f}, observed {b['observed']:.3f}"
              for b in bins if b["n"]]
    lines.append("the raw mass near the estimate (the confidence before), binned the same way:")
    lines += [f"  {b['lo']:.1f}-{b['hi']:.1f}: n {b['n']:4d}, mean {b['predicted']:.3f}, observed success {b['observed']:.3f}"
              for b in reliability(near, success) if b["n"]]
    (OUT / "measure.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    kept = [b for b in bins if b["n"]]
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot([b["predicted"] for b in kept], [b["observed"] for b in kept], "o-", label="calibrated confidence")
    raw = [b for b in reliability(near, success) if b["n"]]
    ax.plot([b["predicted"] for b in raw], [b["observed"] for b in raw], "s-", alpha=0.6, label="raw mass near the estimate")
    ax.set_xlabel("predicted probability that NME <= 0.08")
    ax.set_ylabel("observed fraction")
    ax.set_title(f"HELEN-test, perturbed crops (n = {len(success)})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "reliability.png", dpi=110)


if __name__ == "__main__":
    main()
