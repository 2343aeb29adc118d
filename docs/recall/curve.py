"""The scan schedule's trade-off behind docs/recall.md: for each setting, one process tracks
each shared clip (in this process, the model loaded once) and scores its CSV against the
reference detector on every 2nd frame: seconds, classifier crops per face written, the share
of frames the detector ran on, recall and precision.

usage: python docs/recall/curve.py CENTERFACE.onnx [SETTINGS_JSON ...]
(default settings: the defaults, faint_faces false, redetect_every 16 and 4)
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from tracker.api import Tracker
from tracker.evaluation.footage import SHARED
from tracker.evaluation.recall import CenterFace, reference_faces, score_csv
from tracker.io.sinks import CsvSink

CLIPS = ("hikers", "event", "tears-of-steel", "selfie-rotated")
SETTINGS = ({}, {"faint_faces": False}, {"redetect_every": 16}, {"redetect_every": 4})


def run(settings: dict, reference: CenterFace) -> None:
    with Tracker(**settings) as tracker:
        for name in CLIPS:
            clip = SHARED / "data" / "videos" / name / "vid.mp4"
            csv_path = Path(tempfile.gettempdir()) / f"facetrack-curve-{name}.csv"
            start = time.perf_counter()
            frames = faces = 0
            with tracker.track(clip) as stream, CsvSink(csv_path) as sink:
                for result in stream:
                    sink.write(result)
                    frames += 1
                    faces += len(result.faces)
                counts = stream.times.counts
            seconds = time.perf_counter() - start
            score = score_csv(csv_path, reference_faces(clip, reference, every=2)[0])
            print(json.dumps({"settings": settings, "clip": name, "seconds": round(seconds, 1),
                              "crops_per_face": round(counts.get("classify", 0) / max(faces, 1), 2),
                              "detector_share": round(counts.get("detect", 0) / frames, 3),
                              "recall": round(score.recall, 3), "precision": round(score.precision, 3),
                              "reference_faces": score.reference_faces}), flush=True)


if __name__ == "__main__":
    detector = CenterFace(sys.argv[1])
    for text in sys.argv[2:] or [json.dumps(s) for s in SETTINGS]:
        run(json.loads(text), detector)
