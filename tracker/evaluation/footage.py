"""Speed on real footage, as users run it: whole processes of ``facetrack track``, the dlib loop
and, where its environment can be made, the MediaPipe Face Mesh loop of ``../shared/peers/``,
on the bundled sample and the shared clips; with the frames each finds a face on, and our
detector share and classifier crops per face (from one run in this process)."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from tracker.evaluation.bench import SAMPLE_CLIP, dlib_command, process_run, run_tracker, scratch_csv, tracker_command

SHARED = Path(__file__).resolve().parents[3] / "shared"
CLIPS = ("hikers", "event", "selfie-rotated", "tears-of-steel")      # in SHARED/data/videos/NAME/vid.mp4


def footage(videos: Path | None = None) -> list[tuple[str, Path]]:
    """(name, path) of the bundled sample and of each shared clip present under ``videos``."""
    videos = SHARED / "data" / "videos" if videos is None else Path(videos)
    found = [(name, videos / name / "vid.mp4") for name in CLIPS]
    return [("sample", SAMPLE_CLIP)] + [(name, path) for name, path in found if path.is_file()]


def mediapipe_python(peers: Path) -> tuple[str | None, str]:
    """The MediaPipe peer's python (made by ``peers/setup-mediapipe.sh`` on first use), or
    None and why it cannot be had."""
    setup = peers / "setup-mediapipe.sh"
    if not setup.is_file():
        return None, f"{setup} not found"
    try:
        made = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{setup} failed: {exc}"
    python = made.stdout.strip().splitlines()[-1] if made.stdout.strip() else ""
    if made.returncode != 0 or not Path(python).is_file():
        last = (made.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{setup} failed (exit {made.returncode}): {last}"
    return python, ""


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
               dlib: bool) -> dict:
    """One clip: our whole process, the dlib loop's, MediaPipe's (when ``mediapipe`` is its
    (python, peers folder)), then our stage counts from a run in this process."""
    row = {"clip": name, "path": str(clip)}
    row["ours"] = run_peer("facetrack", tracker_command(clip, scratch_csv("ft"), extra), scratch_csv("ft"))
    if dlib:
        row["dlib"] = run_peer("dlib loop", dlib_command(clip, scratch_csv("dlib"), 0), scratch_csv("dlib"))
    if mediapipe is not None:
        row["mediapipe"] = run_peer("MediaPipe loop", mediapipe_command(*mediapipe, clip, scratch_csv("mp")),
                                    scratch_csv("mp"))
    stats = run_tracker(clip, tracker, scratch_csv("ft-in-process"))
    row.update(frames=stats["frames"], detector_share=stats["detector_frame_share"],
               crops_per_face=stats["crops_per_face"], fps_in_process=stats["fps"])
    return row


def format_footage(rows: list[dict], skipped: str) -> str:
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
    return "\n".join(lines)


def _secs(run: dict | None) -> str:
    return "-" if run is None else f"{run['seconds']:.1f} s"


def _ratio(peer: dict | None, ours: dict) -> str:
    """How many times faster than ``peer`` we are (its seconds over ours)."""
    return "-" if peer is None else f"{peer['seconds'] / ours['seconds']:.2f}x"


def _faces(run: dict | None) -> str:
    return "-" if run is None else str(run["faces_on"])
