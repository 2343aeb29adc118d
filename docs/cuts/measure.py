"""The measurements behind tracker/inference/cuts.py's thresholds and its cost (output: measure.txt).

Run: .venv/bin/python docs/cuts/measure.py
Consecutive frames of the two shared clips (no cuts), consecutive *different* training
photos (AFW, HELEN-train, LFPW-train in file order; never HELEN-test), frames of one clip
against the other, and the summary's cost per frame at 640 x 360 and 1280 x 720.
"""
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tracker.inference.cuts import CUT_FRACTION, STILL_CUT_FRACTION, changed_fraction, frame_summary  # noqa: E402
from tracker.io.sources import VideoSource  # noqa: E402
from tracker.training.data import load_faces  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def consecutive(summaries):
    return np.array([changed_fraction(a, b) for a, b in zip(summaries, summaries[1:])])


def main():
    clips = {}
    for name in ("wolfganglanger", "pyfeat_single_face"):
        frames = [f.image for f in VideoSource(SHARED / "videos" / name / "vid.mp4")]
        clips[name] = frames
        d = consecutive([frame_summary(f) for f in frames])
        print(f"{name}: {len(frames)} frames, changed cells between consecutive frames: "
              f"max {d.max():.3f}, 99th pct {np.percentile(d, 99):.3f}")
    a = [frame_summary(f) for f in clips["wolfganglanger"][::20]]
    b = [frame_summary(f) for f in clips["pyfeat_single_face"][::6]]
    cross = np.array([changed_fraction(x, y) for x in a for y in b])
    print(f"one clip against the other ({len(cross)} pairs): min {cross.min():.3f}, 1st pct {np.percentile(cross, 1):.3f}")
    faces = load_faces(SHARED / "300w-subset", ["afw", "helen-train", "lfpw-train"])
    s = [frame_summary(f.image) for f in faces]
    d = np.array([changed_fraction(s[i], s[i + 1]) for i in range(len(s) - 1) if faces[i].photo != faces[i + 1].photo])
    print(f"consecutive different training photos ({len(d)} pairs): changed cells 1st pct {np.percentile(d, 1):.3f}, "
          f"5th {np.percentile(d, 5):.3f}, median {np.median(d):.3f}")
    for t in (0.6, 0.5, 0.4, 0.3, 0.2):
        mark = " (video threshold)" if t == CUT_FRACTION else " (image-file threshold)" if t == STILL_CUT_FRACTION else ""
        print(f"  pairs under {t:.1f} (missed cuts at that threshold): {(d < t).mean() * 100:.2f} %{mark}")
    for size in ((640, 360), (1280, 720)):
        image = cv2.resize(clips["wolfganglanger"][0], size)
        frame_summary(image)
        start = time.perf_counter()
        for _ in range(500):
            frame_summary(image)
        print(f"summary + decision cost at {size[0]}x{size[1]}: {(time.perf_counter() - start) / 500 * 1000:.3f} ms per frame")


if __name__ == "__main__":
    main()
