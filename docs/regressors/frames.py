"""Before/after overlays of the regressors on the bundled sample clip (issue 11).

Tracks the clip twice with the default settings (HMM + smoothing): classification alone
(``regressors="off", box_refinement=False``) and with the regressors, and writes side-by-side crops of the frames
where the pseudo-labelled mouth is open widest and where the classification-only jaw
is furthest from the pseudo-labels. Run: .venv/bin/python docs/regressors/frames.py
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import tracker
from tracker.evaluation.bench import SAMPLE_CLIP
from tracker.io.draw import annotate

HERE = Path(__file__).parent
JAW, MOUTH_TOP, MOUTH_BOTTOM = slice(0, 17), 62, 66


def tracked(refine: bool) -> dict:
    """frame index -> (image, landmarks of the first face)."""
    out = {}
    with tracker.Tracker(regressors="video" if refine else "off", box_refinement=refine, device="cpu") as t, t.track(SAMPLE_CLIP) as stream:
        for frame in stream:
            if frame.faces:
                out[frame.index] = (frame.image, frame.faces[0].landmarks, frame.faces[0].confidence)
    return out


def panel(image, points, confidence, box, label) -> np.ndarray:
    drawn = annotate(image.copy(), 0, points, confidence)
    x0, y0, x1, y1 = box
    crop = cv2.resize(drawn[y0:y1, x0:x1], (360, 360), interpolation=cv2.INTER_AREA)
    cv2.putText(crop, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    return crop


def main() -> None:
    labels = tracker.read_landmarks(SAMPLE_CLIP.parent)
    truth = {int(i): p for i, p in zip(labels.frame, labels.landmarks)}
    before, after = tracked(False), tracked(True)
    common = sorted(set(before) & set(after) & set(truth))
    opening = {i: np.linalg.norm(truth[i][MOUTH_TOP] - truth[i][MOUTH_BOTTOM]) for i in common}
    jaw_error = {i: np.linalg.norm(before[i][1][JAW] - truth[i][JAW], axis=1).mean() for i in common}
    picks = {"open-mouth": max(opening, key=opening.get), "worst-jaw": max(jaw_error, key=jaw_error.get)}
    for name, index in picks.items():
        image = before[index][0]
        points = truth[index]
        c, side = (points.min(0) + points.max(0)) / 2, (points.max(0) - points.min(0)).max() * 1.4
        box = np.clip(np.r_[c - side / 2, c + side / 2].astype(int), 0, [image.shape[1], image.shape[0]] * 2)
        row = np.concatenate([panel(image, before[index][1], before[index][2], box, "classification"),
                              panel(image, after[index][1], after[index][2], box, "+ regressors")], axis=1)
        path = HERE / f"{name}-frame{index}.jpg"
        cv2.imwrite(str(path), row, [cv2.IMWRITE_JPEG_QUALITY, 88])
        print(path, f"jaw error before {jaw_error[index]:.1f} px, after "
                    f"{np.linalg.norm(after[index][1][JAW] - truth[index][JAW], axis=1).mean():.1f} px")


if __name__ == "__main__":
    main()
