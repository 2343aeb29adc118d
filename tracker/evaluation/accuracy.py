"""The README's accuracy table, measured in one run (``facetrack accuracy``).

On an annotated image folder, in the detection setup (a face the detector misses counts
as a failure): classification alone, + box refinement, + the regressors (track's,
then predict's: the stills cascade and test-time mirroring), and dlib
(HOG detector + its 68-point predictor) beside them. On an annotated clip: the same
stages per frame, then with the temporal stage (HMM + smoothing), with each row's jitter.
"""
from __future__ import annotations

from pathlib import Path

from tracker.api import Tracker
from tracker.evaluation.bench import dlib_landmarker
from tracker.evaluation.scoring import evaluate
from tracker.io.landmark_csv import LandmarkCsvWriter
from tracker.io.sinks import CsvSink
from tracker.io.sources import open_source
from tracker.results import FrameResult

STILL_ROWS = (("classification", {"regressors": "off", "box_refinement": False}, False),
              ("+ box refinement", {}, True),
              ("+ regressors (trees: track's cascade)", {}, False),
              ("+ the stills regressors (network stage + trees)", {"regressors": "stills"}, False),
              ("+ test-time mirroring (facetrack predict's default)", {"regressors": "stills", "flip_average": True},
               False))
CLIP_ROWS = (("classification", {"regressors": "off", "box_refinement": False, "temporal": False}),
             ("+ box refinement + regressors", {"temporal": False}),
             ("+ temporal (HMM, smoothing)", {}))


def predict_folder(tracker: Tracker, folder, csv_path) -> None:
    """Every image's faces, each found afresh by the detector, to a landmark CSV."""
    source = open_source(folder)
    with CsvSink(csv_path, ("file",)) as sink:
        for frame in source:
            sink.write(FrameResult(frame, tuple(tracker.predict(frame.image))))


def track_clip(tracker: Tracker, clip, csv_path) -> None:
    with tracker.track(clip) as stream, CsvSink(csv_path) as sink:
        for result in stream:
            sink.write(result)


def dlib_folder(folder, csv_path, upsample: int = 1) -> None:
    """dlib's HOG detector and 68-point predictor on every image (the reference row)."""
    faces = dlib_landmarker(upsample)
    with LandmarkCsvWriter(csv_path, extra_columns=("file",)) as writer:
        for frame in open_source(folder):
            writer.write_frame(frame.index, frame.timestamp, faces(frame.image), {"file": frame.name})


def still_rows(model, folder, out: Path, with_dlib: bool = True) -> list[dict]:
    rows = []
    for name, settings, box_only in STILL_ROWS:
        tracker = Tracker(model, "cpu", temporal=False, threads=2, **settings)
        if box_only:
            tracker.landmarker.cascade = None
        csv = out / f"stills-{len(rows)}.csv"
        predict_folder(tracker, folder, csv)
        rows.append({"row": name, **evaluate(csv, folder)[1]["all"].as_dict()})
    if with_dlib:
        csv = out / "stills-dlib.csv"
        dlib_folder(folder, csv)
        rows.append({"row": "dlib (HOG + ERT 68-point predictor)", **evaluate(csv, folder)[1]["all"].as_dict()})
    return rows


def clip_rows(model, clip_dir, out: Path) -> list[dict]:
    clip = next(p for p in sorted(Path(clip_dir).iterdir()) if p.stem == "vid")
    rows = []
    for name, settings in CLIP_ROWS:
        csv = out / f"clip-{len(rows)}.csv"
        track_clip(Tracker(model, "cpu", **settings), clip, csv)
        rows.append({"row": name, **evaluate(csv, clip_dir)[1]["all"].as_dict()})
    rows.append({"row": "its dlib pseudo-labels (the reference, as predictions)",
                 **evaluate(clip_dir, clip_dir)[1]["all"].as_dict()})
    return rows


def markdown(rows: list[dict], jitter: bool = False) -> str:
    head = "| | NME diag | NME io (median) | AUC@0.08 | failure rate |" + (" jitter |" if jitter else "")
    lines = [head, "|---" * (5 + jitter) + "|"]
    for r in rows:
        line = (f"| {r['row']} | {r['nme_diag']:.4f} | {r['nme_io']:.4f} ({r['median_io']:.4f}) | {r['auc']:.3f} | "
                f"{100 * r['failure_rate']:.2f} % |")
        lines.append(line + (f" {r['jitter']:.5f} |" if jitter else ""))
    return "\n".join(lines)
