"""Speed on real footage, as users run it: whole processes of ``facetrack track``, the dlib loop
and, where its environment can be made, the MediaPipe Face Mesh loop of ``../shared/peers/``,
on the bundled sample and the shared clips; with the frames each finds a face on, and our
detector share and classifier crops per face (from one run in this process)."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from tracker.evaluation.bench import SAMPLE_CLIP, dlib_command, process_run, run_tracker, scratch_csv, tracker_command
from tracker.evaluation.recall import EVERY, MIN_WIDTH, STRONG, WEAK, reference_faces, score_csv

SHARED = Path(__file__).resolve().parents[3] / "shared"
CLIPS = ("hikers", "event", "selfie-rotated", "tears-of-steel")      # in SHARED/data/videos/NAME/vid.mp4


def footage(videos: Path | None = None) -> list[tuple[str, Path]]:
    """(name, path) of the bundled sample and of each shared clip present under ``videos``."""
    videos = SHARED / "data" / "videos" if videos is None else Path(videos)
    found = [(name, videos / name / "vid.mp4") for name in CLIPS]
    return [("sample", SAMPLE_CLIP)] + [(name, path) for name, path in found if path.is_file()]


def made_by(setup: Path) -> tuple[str | None, str]:
    """The path a peers setup script prints last (it makes what is missing, on first use), or
    None and why it cannot be had."""
    if not setup.is_file():
        return None, f"{setup} not found"
    try:
        made = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{setup} failed: {exc}"
    path = made.stdout.strip().splitlines()[-1] if made.stdout.strip() else ""
    if made.returncode != 0 or not Path(path).is_file():
        last = (made.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{setup} failed (exit {made.returncode}): {last}"
    return path, ""


def mediapipe_python(peers: Path) -> tuple[str | None, str]:
    """The MediaPipe peer's python (made by ``peers/setup-mediapipe.sh``), or None and why not."""
    return made_by(peers / "setup-mediapipe.sh")


def centerface_file(peers: Path) -> tuple[str | None, str]:
    """The reference detector's ONNX file (fetched by ``peers/setup-centerface.sh``), or None and why not."""
    return made_by(peers / "setup-centerface.sh")


def mediapipe_command(python: str, peers: Path, clip, csv_path) -> list[str]:
    """The MediaPipe loop (tracking mode, its 468 points mapped to the 68) writing our CSV layout."""
    return [python, str(peers / "mediapipe_loop.py"), str(clip), str(csv_path), "--map", str(peers / "mediapipe_map.npy")]


def frames_with_a_face(csv_path) -> int:
    """Frames with at least one face row (``success`` 1) in a landmark CSV."""
    try:
        with open(csv_path, newline="") as handle:
            return len({row["frame"] for row in csv.DictReader(handle) if row.get("success") == "1"})
    except OSError:
        return 0


def run_peer(name: str, argv: list[str], csv_path: str) -> dict:
    """One whole process of a tracker writing ``csv_path``; raises RuntimeError when it fails."""
    run = process_run(argv, csv_path)
    if run["returncode"] != 0:
        raise RuntimeError(f"the {name} process failed (exit {run['returncode']}): {run['stderr'].strip()}")
    return {**run, "faces_on": frames_with_a_face(csv_path)}


def bench_clip(name: str, clip: Path, tracker, extra: tuple[str, ...], mediapipe: tuple[str, Path] | None,
               dlib: bool, reference=None, every: int = EVERY) -> dict:
    """One clip: our whole process, the dlib loop's, MediaPipe's (when ``mediapipe`` is its
    (python, peers folder)), then our stage counts from a run in this process. With a
    ``reference`` detector (:class:`tracker.evaluation.recall.CenterFace`), each one's recall
    and precision against it (MediaPipe's loop reads a turned clip as stored: not scored there)."""
    row = {"clip": name, "path": str(clip)}
    faces, turned = reference_faces(clip, reference, every) if reference is not None else (None, False)
    runs = [("ours", "facetrack", tracker_command(clip, scratch_csv("ft"), extra), scratch_csv("ft"))]
    if dlib:
        runs.append(("dlib", "dlib loop", dlib_command(clip, scratch_csv("dlib"), 0), scratch_csv("dlib")))
    if mediapipe is not None:
        runs.append(("mediapipe", "MediaPipe loop", mediapipe_command(*mediapipe, clip, scratch_csv("mp")),
                     scratch_csv("mp")))
    for key, what, argv, csv_path in runs:
        row[key] = run_peer(what, argv, csv_path)
        if faces is not None and not (turned and key == "mediapipe"):
            row[key]["reference"] = score_csv(csv_path, faces).as_dict()
    stats = run_tracker(clip, tracker, scratch_csv("ft-in-process"))
    row.update(frames=stats["frames"], detector_share=stats["detector_frame_share"],
               crops_per_face=stats["crops_per_face"], fps_in_process=stats["fps"])
    return row


def format_footage(rows: list[dict], skipped: str, reference_skipped: str = "", every: int = EVERY) -> str:
    """The footage table (markdown), a note on any peer left out."""
    head = ("| clip | frames | facetrack | dlib loop | MediaPipe loop | vs dlib | vs MediaPipe "
            "| faces on (ft / dlib / MP) | detector on | crops per face | first frame | peak RSS |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        ours, dlib, mp = r["ours"], r.get("dlib"), r.get("mediapipe")
        lines.append(
            f"| {r['clip']} | {r['frames']} | {ours['seconds']:.1f} s | {_secs(dlib)} | {_secs(mp)} "
            f"| {_ratio(dlib, ours)} | {_ratio(mp, ours)} "
            f"| {ours['faces_on']} / {_faces(dlib)} / {_faces(mp)} | {100 * r['detector_share']:.1f} % "
            f"| {r['crops_per_face']:.2f} | {ours['first_frame_s']:.2f} s | {ours['peak_rss_mb']:.0f} MB |")
    if skipped:
        lines.append(f"\nMediaPipe loop skipped: {skipped}")
    if any("reference" in r["ours"] for r in rows):
        lines += ["", *format_recall(rows, every)]
    elif reference_skipped:
        lines.append(f"\nRecall not measured: {reference_skipped}")
    return "\n".join(lines)


def format_recall(rows: list[dict], every: int = EVERY) -> list[str]:
    """The recall table (markdown lines): each tracker's faces against the reference detector."""
    lines = ["| clip | reference faces | recall (ft / dlib / MP) | precision (ft / dlib / MP) | faces missed (frame: px) |",
             "|---|---|---|---|---|"]
    for r in rows:
        ours = r["ours"].get("reference")
        if ours is None:
            continue
        scores = [r.get(k, {}).get("reference") for k in ("ours", "dlib", "mediapipe")]
        missed = ", ".join(f"{frame}: {px}" for frame, px in ours["missed"][:8]) + (" ..." * (len(ours["missed"]) > 8))
        lines.append(f"| {r['clip']} | {ours['reference_faces']} | {_scores(scores, 'recall')} "
                     f"| {_scores(scores, 'precision')} | {missed or '-'} |")
    lines.append(f"\nReference: CenterFace at full resolution on one frame in {every}; a face counts from {MIN_WIDTH} px "
                 f"wide and score {STRONG}, ours are right inside a box of score {WEAK}. It misses some small, turned "
                 "and blurred faces, which then count against precision. MediaPipe is not scored on a clip stored "
                 "turned (it reads it as stored).")
    return lines


def _scores(scores: list, key: str) -> str:
    return " / ".join("-" if s is None else f"{s[key]:.2f}" for s in scores)


def _secs(run: dict | None) -> str:
    return "-" if run is None else f"{run['seconds']:.1f} s"


def _ratio(peer: dict | None, ours: dict) -> str:
    """How many times faster than ``peer`` we are (its seconds over ours)."""
    return "-" if peer is None else f"{peer['seconds'] / ours['seconds']:.2f}x"


def _faces(run: dict | None) -> str:
    return "-" if run is None else str(run["faces_on"])
