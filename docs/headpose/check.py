"""Does the head pose of the class distribution agree with the pose of the true landmarks? (output: check.txt)

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/headpose/check.py
HELEN-test (report only, nothing tuned on it), detection setup as `facetrack predict`
(as docs/distribution/spread.py): for every face found, the mean and standard deviation of
(yaw, pitch, roll) under its top-50 class distribution (`tracker.distribution.head_pose.pose_moments` over
`class_poses` of the model's templates) against `pose_of_shapes` of the 68 ground-truth
points; for reference also against the pose of the final predicted landmarks (after the
regressors), and the pose of the predicted landmarks against the ground truth's.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tracker.classifier.model import load_model  # noqa: E402
from tracker.detection.detectors import detector_chain, fallback_detectors
from tracker.distribution.head_pose import class_poses, pose_moments, pose_of_shapes  # noqa: E402
from tracker.geometry.boxes import iou, landmark_box
from tracker.inference.landmarker import Landmarker  # noqa: E402
from tracker.training.data import load_faces  # noqa: E402

NAMES = ("yaw", "pitch", "roll")


def table(title, a, b):
    d = np.abs(a - b)
    rows = [title, f"  {'':6s} {'mean |diff|':>12s} {'median':>8s} {'p90':>7s} {'Pearson r':>10s}"]
    for j, name in enumerate(NAMES):
        r = np.corrcoef(a[:, j], b[:, j])[0, 1]
        rows.append(f"  {name:6s} {d[:, j].mean():12.2f} {np.median(d[:, j]):8.2f} "
                    f"{np.percentile(d[:, j], 90):7.2f} {r:10.3f}")
    return rows


def main():
    torch.set_num_threads(1)
    start = time.time()
    model = load_model()
    poses = class_poses(model.templates)
    landmarker = Landmarker(model, detector_chain("auto", upsample=1), fallback=fallback_detectors("auto"))
    faces = load_faces(REPO.parent / "shared" / "data" / "300w-subset", ["helen-test"])
    means, stds, truth, predicted = [], [], [], []
    for face in faces:
        found = [e for e in landmarker(face.image) if iou(landmark_box(e.landmarks), landmark_box(face.landmarks)) > 0.3]
        if not found:
            continue
        est = found[0]
        mean, std = pose_moments(est.classes, est.probs, poses)
        means.append(mean)
        stds.append(std)
        truth.append(face.landmarks)
        predicted.append(est.landmarks)
    means, stds = np.array(means), np.array(stds)
    gt = pose_of_shapes(np.array(truth))
    pred = pose_of_shapes(np.array(predicted))
    gt_pnp = pose_of_shapes(np.array(truth), method="pnp")
    lines = [f"HELEN-test: {len(means)} of {len(faces)} faces found (top-{len(est.classes)} classes, "
             f"K = {len(poses)}); degrees, pose_of_shapes = scaled-orthographic fit of tracker/assets/face3d.txt",
             "ground-truth pose: " + ", ".join(f"{n} {gt[:, j].mean():+.1f} +- {gt[:, j].std():.1f} "
                                               f"[{gt[:, j].min():+.0f}, {gt[:, j].max():+.0f}]"
                                               for j, n in enumerate(NAMES)),
             ""]
    lines += table("distribution mean vs ground-truth landmarks' pose:", means, gt)
    lines += ["  mean predicted std: " + ", ".join(f"{n} {stds[:, j].mean():.2f}" for j, n in enumerate(NAMES)),
              "  share of faces with |diff| <= 1 predicted std / <= 2 std: "
              + ", ".join(f"{n} {(np.abs(means - gt)[:, j] <= stds[:, j]).mean():.2f} / "
                          f"{(np.abs(means - gt)[:, j] <= 2 * stds[:, j]).mean():.2f}" for j, n in enumerate(NAMES)),
              ""]
    lines += table("distribution mean vs predicted landmarks' pose (reference):", means, pred)
    lines += [""]
    lines += table("predicted landmarks' pose vs ground-truth landmarks' pose (reference):", pred, gt)
    lines += [""]
    lines += table("ground truth: pnp fit (pinhole, focal 4 face sizes) vs the orthographic fit (reference):",
                   gt_pnp, gt)
    lines += ["", f"({time.time() - start:.0f} s)"]
    (Path(__file__).with_name("check.txt")).write_text("\n".join(lines[:-1]) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
