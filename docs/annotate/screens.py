"""The screenshots of README.md: the annotation window's picture, rendered headless.

Run from the repository root: ``.venv/bin/python docs/annotate/screens.py``. Of every 16th
frame of the bundled sample, the one whose suggested landmark is farthest from its label
(dlib pseudo-labels) is shown as predicted, during a drag of that landmark towards its
label, and after it was dropped there.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from tracker.api import Tracker
from tracker.apps.annotate import AnnotationSession, VideoItems
from tracker.evaluation.metrics import nme
from tracker.io.annotations import read_300vw

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1] / "tracker" / "assets" / "sample"
STEP = 16
OUT = Path(tempfile.gettempdir()) / "facetrack-annotate-screens"      # never saved to


def main() -> None:
    labels = read_300vw(SAMPLE).landmarks
    tracker = Tracker(None, "cpu", temporal=True, threads=1)
    session = AnnotationSession(tracker, VideoItems(SAMPLE / "vid.mp4", cached=2), OUT)
    worst, worst_position = -1.0, 0
    while True:
        if session.face is not None:
            face = session.face
            error = float(np.hypot(*(face.landmarks[face.suggestion] - labels[session.item.number][face.suggestion])))
            if error > worst:
                worst, worst_position = error, session.item.position
        if not all(session.next() for _ in range(STEP)):
            break
    session = AnnotationSession(tracker, VideoItems(SAMPLE / "vid.mp4", cached=2),
                                OUT)
    while session.item.position < worst_position:
        session.next()
    truth = labels[session.item.number]
    before = float(nme(session.face.landmarks, truth))
    write("1-predicted.png", session.render())
    j = session.face.suggestion
    start, end = session.face.landmarks[j], truth[j]
    session.press(*start)
    session.move(*(start + 0.6 * (end - start)))
    write("2-dragging.png", session.render())
    session.release(*end)
    after = float(nme(session.face.landmarks, truth))
    write("3-after-click.png", session.render())
    print(f"frame {session.item.number}: landmark {j} dragged {np.hypot(*(end - start)):.1f} px; "
          f"NME to the label {before:.4f} -> {after:.4f}; next suggestion {session.face.suggestion}")


def write(name: str, image: np.ndarray) -> None:
    cv2.imwrite(str(HERE / name), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(name, (HERE / name).stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
