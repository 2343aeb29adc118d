"""Face detectors on composite frames: recall by face size and ms per frame (output: measure.txt).

Run: .venv/bin/python docs/detectors/measure.py
Frames of 640x360 and 1280x720: a face-free textured background with four faces pasted in
(validation faces of the training sets, one per size band: 40-60, 60-80, 80-120, 120-160 px
landmark-box side), 12 frames per size. A face counts as found when a detection overlaps
its landmark box with IoU >= 0.3. Times: one thread, the median over the frames.
"""
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from clips import composite_frame  # noqa: E402

from tracker.detection.detectors import DlibCnnDetector, DlibHogDetector, HaarDetector
from tracker.geometry.boxes import landmark_box, match_detections
from tracker.training.data import load_faces, split_by_photo  # noqa: E402

BANDS = ((40, 60), (60, 80), (80, 120), (120, 160))
FRAMES = 12


def tiles(width: int, height: int, grid=(2, 2), overlap: float = 0.25):
    """Overlapping tiles (x0, y0, x1, y1) covering the frame."""
    cols, rows = grid
    tw, th = width / (cols - (cols - 1) * overlap), height / (rows - (rows - 1) * overlap)
    return [(int(c * tw * (1 - overlap)), int(r * th * (1 - overlap)),
             int(min(width, c * tw * (1 - overlap) + tw)), int(min(height, r * th * (1 - overlap) + th)))
            for r in range(rows) for c in range(cols)]


class Tiled:
    """A detector run on each tile (here all tiles of one frame; a scan policy spreads them)."""

    def __init__(self, detector, grid):
        self.detector, self.grid = detector, grid

    def detect(self, image):
        rows = []
        for x0, y0, x1, y1 in tiles(image.shape[1], image.shape[0], self.grid):
            found = self.detector.detect(image[y0:y1, x0:x1]).copy()
            found[:, [0, 2]] += x0
            found[:, [1, 3]] += y0
            rows.append(found)
        return np.concatenate(rows)


class Scaled:
    """A detector run on the frame resized by ``factor`` (boxes mapped back)."""

    def __init__(self, detector, factor):
        self.detector, self.factor = detector, factor

    def detect(self, image):
        big = cv2.resize(image, None, fx=self.factor, fy=self.factor, interpolation=cv2.INTER_LINEAR)
        rows = self.detector.detect(big).copy()
        rows[:, :4] /= self.factor
        return rows


def main():
    cv2.setNumThreads(1)
    faces = split_by_photo(load_faces(REPO.parent / "shared" / "data" / "300w-subset",
                                      ["afw", "helen-train", "lfpw-train"]), 0.1, 0)[1]
    detectors = {"dlib HOG, upsample 0": DlibHogDetector(0),
                 "dlib HOG, upsample 0, frame scaled 1.3x": Scaled(DlibHogDetector(0), 1.3),
                 "dlib HOG, upsample 0, frame scaled 1.5x": Scaled(DlibHogDetector(0), 1.5),
                 "dlib HOG, upsample 1": DlibHogDetector(1),
                 "OpenCV Haar (min 24 px)": HaarDetector(),
                 "dlib HOG upsample 1, 2x2 tiles (all four)": Tiled(DlibHogDetector(1), (2, 2)),
                 "dlib CNN (MMOD), upsample 0": DlibCnnDetector(0), "dlib CNN (MMOD), upsample 1": DlibCnnDetector(1)}
    lines = ["| detector | frame | recall 40-60 px | 60-80 | 80-120 | 120-160 | ms per frame (median) |",
             "|---|---|---|---|---|---|---|"]
    for width, height in ((640, 360), (1280, 720)):
        rng = np.random.default_rng(width)
        scenes = [composite_frame(faces, width, height, [rng.uniform(lo, hi) for lo, hi in BANDS], seed=width + k)
                  for k in range(FRAMES)]
        for name, det in detectors.items():
            if "CNN" in name and "upsample 1" in name and width > 640:
                continue                      # several seconds a frame: not a scan option
            found = np.zeros((FRAMES, len(BANDS)))
            ms = []
            for k, (frame, points) in enumerate(scenes):
                start = time.perf_counter()
                rows = det.detect(frame)
                ms.append((time.perf_counter() - start) * 1000)
                for b, p in enumerate(points):
                    found[k, b] = np.nan if p is None else float(match_detections(rows, landmark_box(p), 0.3) >= 0)
            recall = " | ".join(f"{r:.2f}" for r in np.nanmean(found, 0))
            lines.append(f"| {name} | {width}x{height} | {recall} | {np.median(ms):.0f} |")
            print(lines[-1], flush=True)
    cv2.imwrite(str(Path(__file__).with_name("composite.jpg")), scenes[0][0], [cv2.IMWRITE_JPEG_QUALITY, 80])
    Path(__file__).with_name("measure.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
