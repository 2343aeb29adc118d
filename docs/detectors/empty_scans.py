"""How often to scan the whole frame while no face is followed (tracking.empty_scan_every):
frames with a face, detector runs and seconds, and wall time in-process, on three shared clips.

usage: .venv/bin/python docs/detectors/empty_scans.py 1,3,6   (one JSON line per setting and clip)"""
import json
import sys
import time

from tracker.api import Tracker

CLIPS = {"hikers": "../shared/data/videos/hikers/vid.mp4", "tears-of-steel": "../shared/data/videos/tears-of-steel/vid.mp4",
         "event": "../shared/data/videos/event/vid.mp4"}


def measure(every: int, clip: str) -> dict:
    """One clip tracked with ``empty_scan_every`` = ``every``."""
    with Tracker(empty_scan_every=every) as tracker, tracker.track(clip) as stream:
        start = time.perf_counter()
        frames = with_face = 0
        for result in stream:
            frames += 1
            with_face += bool(result.faces)
        wall = time.perf_counter() - start
        times = stream.times
    return {"frames": frames, "faces_on": with_face, "wall_s": round(wall, 1),
            "detector_runs": times.counts.get("detect", 0), "detector_s": round(times.seconds.get("detect", 0), 1)}


if __name__ == "__main__":
    for every in (int(x) for x in sys.argv[1].split(",")):
        for name, clip in CLIPS.items():
            print(json.dumps({"empty_scan_every": every, "clip": name, **measure(every, clip)}), flush=True)
