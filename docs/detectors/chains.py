"""The shared clips tracked in one process with each detector chain: frames with a face,
detector share, classifier crops per face, wall time (in-process, start-up excluded).

usage: .venv/bin/python docs/detectors/chains.py [CHAIN ...]   (default: auto dlib+haar; one JSON line per run)"""
import json
import sys
import time

from tracker.api import Tracker

CLIPS = ("hikers", "tears-of-steel", "event", "selfie-rotated")


def measure(tracker: Tracker, clip: str) -> dict:
    """One clip through ``tracker``."""
    with tracker.track(f"../shared/data/videos/{clip}/vid.mp4") as stream:
        start = time.perf_counter()
        frames = with_face = faces = 0
        for result in stream:
            frames += 1
            with_face += bool(result.faces)
            faces += len(result.faces)
        wall = time.perf_counter() - start
        counts = stream.times.counts
    return {"frames": frames, "faces_on": with_face, "detector_share": round(counts.get("detect", 0) / frames, 3),
            "crops_per_face": round(counts.get("classify", 0) / max(1, faces), 2), "wall_s": round(wall, 1)}


if __name__ == "__main__":
    for chain in sys.argv[1:] or ["auto", "dlib+haar"]:
        with Tracker(detector=chain) as tracker:
            for clip in CLIPS:
                print(json.dumps({"detector": chain, "clip": clip, **measure(tracker, clip)}), flush=True)
