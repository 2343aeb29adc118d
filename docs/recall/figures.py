"""The faces behind docs/recall.md's precision and recall: crops of the faces a tracker's CSV
puts where the reference detector sees none ("counted wrong") and of the reference faces the
CSV misses, each labelled frame/face id/confidence, in one image per clip.

usage: python docs/recall/figures.py CLIP CSV CENTERFACE.onnx OUT.jpg [--every N]
(CENTERFACE.onnx: ../shared/peers/setup-centerface.sh prints its path)
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from tracker.evaluation.recall import MIN_WIDTH, STRONG, CenterFace, inside_box, reference_faces
from tracker.io.landmark_csv import read_landmark_csv
from tracker.io.sources import open_source

TILE = 96          # px: each crop's side in the figure
PER_ROW = 10
MOST = 40          # crops of each kind at most


def counted_wrong_and_missed(csv_path, reference):
    """([(frame, box, label)] of CSV faces outside every reference box, [(frame, box, label)] of reference faces missed)."""
    wrong, missed, by_frame = [], [], {}
    for row in read_landmark_csv(csv_path):
        if row.success and row.frame in reference:
            by_frame.setdefault(row.frame, []).append(row)
    for frame, boxes in sorted(reference.items()):
        rows = by_frame.get(frame, [])
        for row in rows:
            if not any(inside_box(row.points.mean(axis=0), box) for box in boxes):
                lo, hi = row.points.min(axis=0), row.points.max(axis=0)
                wrong.append((frame, np.r_[lo, hi], f"{frame}/{row.face_id} c{row.confidence:.2f}"))
        for box in boxes[(boxes[:, 4] >= STRONG) & (boxes[:, 2] - boxes[:, 0] >= MIN_WIDTH)]:
            if not any(inside_box(row.points.mean(axis=0), box) for row in rows):
                missed.append((frame, box[:4], f"{frame} s{box[4]:.2f}"))
    return wrong[:MOST], missed[:MOST]


def crops(clip, wanted) -> list[np.ndarray]:
    """The labelled crops of ``wanted`` (frame, box, label), the box grown by half its side."""
    frames = {frame for frame, _, _ in wanted}
    out = []
    source = open_source(str(clip))
    try:
        for frame in source:
            for index, box, label in wanted:
                if index != frame.index:
                    continue
                side = max(box[2] - box[0], box[3] - box[1])
                x0, y0 = (np.asarray(box[:2]) - side / 2).astype(int).clip(0)
                x1, y1 = (np.asarray(box[2:]) + side / 2).astype(int)
                tile = cv2.resize(frame.image[y0:y1, x0:x1], (TILE, TILE))
                cv2.putText(tile, label, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 255, 255), 1, cv2.LINE_AA)
                out.append(tile)
            if frame.index >= max(frames, default=0):
                break
    finally:
        source.close()
    return out


def sheet(title: str, tiles: list[np.ndarray]) -> np.ndarray:
    head = np.zeros((18, TILE * PER_ROW, 3), np.uint8)
    cv2.putText(head, title, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    blank = np.zeros((TILE, TILE, 3), np.uint8)
    rows = [np.concatenate((tiles[i:i + PER_ROW] + [blank] * PER_ROW)[:PER_ROW], axis=1)
            for i in range(0, max(len(tiles), 1), PER_ROW)]
    return np.concatenate([head, *rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip")
    p.add_argument("csv")
    p.add_argument("onnx")
    p.add_argument("out")
    p.add_argument("--every", type=int, default=10)
    args = p.parse_args()
    reference, _ = reference_faces(args.clip, CenterFace(args.onnx), args.every)
    wrong, missed = counted_wrong_and_missed(args.csv, reference)
    image = np.concatenate([sheet(f"ours, counted wrong ({len(wrong)}): frame/id confidence", crops(args.clip, wrong)),
                            sheet(f"reference faces missed ({len(missed)}): frame score", crops(args.clip, missed))])
    cv2.imwrite(args.out, image, [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    main()
