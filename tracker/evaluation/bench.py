"""Speed measurements for ``facetrack bench``: our tracker and the dlib baseline on one clip.

Both runs decode the same file with PyAV and write the same landmark CSV, in one
process, so their ratio is a like-for-like comparison on the machine at hand.
"""
from __future__ import annotations

import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2

from tracker.errors import FacetrackError
from tracker.io.landmark_csv import LandmarkCsvWriter
from tracker.io.sinks import CsvSink
from tracker.io.sources import VideoSource
from tracker.timing import timed

SAMPLE_CLIP = Path(__file__).resolve().parents[1] / "assets" / "sample" / "vid.mp4"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB. On Linux its own high-water mark
    (VmHWM): getrusage's ru_maxrss also keeps the peak of the process it was started from."""
    own = vmhwm_mb("self")
    if own is not None:
        return own
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def vmhwm_mb(pid="self") -> float | None:
    """A running process's peak resident memory (Linux's VmHWM) in MB; None where unreadable
    (not Linux, or the process has ended)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next((line for line in status if line.startswith("VmHWM:")), None)
    except OSError:
        return None
    return None if line is None else int(line.split()[1]) / 1024


def dlib_shape_model() -> Path:
    """dlib's 68-point predictor shipped by face_recognition_models, found without importing it
    (that package imports pkg_resources, gone from recent setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacetrackError("the dlib baseline needs face-recognition-models (pip install -e .[dlib])")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise FacetrackError(f"{path}: dlib's 68-point model is missing")
    return path


def run_tracker(clip, tracker, csv_path, max_frames: int | None = None) -> dict:
    """Our tracker end to end (decode thread, engine, temporal stage, CSV) with a
    :class:`tracker.api.Tracker`: fps and per-stage milliseconds per frame."""
    stream = tracker.track(clip)
    frames, faces = 0, 0
    start = time.perf_counter()
    with stream, CsvSink(csv_path) as sink:
        for result in stream:
            with timed(stream.times, "write"):
                sink.write(result)
            frames += 1
            faces += len(result.faces)
            if max_frames and frames >= max_frames:
                break
    wall = time.perf_counter() - start
    times = stream.times
    stages = {name: 1000 * sec / max(1, frames) for name, sec in times.seconds.items()}
    return {"frames": frames, "seconds": wall, "fps": frames / wall, "ms_per_frame": stages,
            "crops_per_frame": times.counts.get("classify", 0) / max(1, frames),
            "faces_per_frame": faces / max(1, frames),
            "crops_per_face": times.counts.get("classify", 0) / max(1, faces),
            "detector_runs": times.counts.get("detect", 0),
            "detector_frame_share": times.counts.get("detect", 0) / max(1, frames), "peak_rss_mb": peak_rss_mb(),
            **({"regress_ms_per_face": 1000 * times.seconds["regress"] / times.counts["regress"]}
               if times.counts.get("regress") else {})}


def decode_only(clip, decode_threads: int = 1, max_frames: int | None = None) -> dict:
    """Decoding alone (PyAV to BGR arrays, on this thread): the ceiling of any tracker reading the clip."""
    from tracker.io.sources import VideoSource
    frames = 0
    start = time.perf_counter()
    for _ in VideoSource(clip, decode_threads):
        frames += 1
        if max_frames and frames >= max_frames:
            break
    wall = time.perf_counter() - start
    return {"frames": frames, "seconds": wall, "fps": frames / max(wall, 1e-9), "decode_threads": decode_threads}


def dlib_landmarker(upsample: int = 1):
    """dlib's HOG detector + 68-point shape predictor as a function: BGR image -> the
    (face_id, confidence 1.0, 68 points) rows a LandmarkCsvWriter takes."""
    try:
        import dlib
    except ImportError:
        raise FacetrackError("the dlib baseline needs dlib-bin (pip install -e .[dlib])") from None
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_shape_model()))

    def faces(image):
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        shapes = [predictor(rgb, rect) for rect in detector(rgb, upsample)]
        return [(face_id, 1.0, [(s.part(i).x, s.part(i).y) for i in range(68)]) for face_id, s in enumerate(shapes)]
    return faces


def run_dlib_baseline(clip, csv_path, upsample: int = 1, max_frames: int | None = None) -> dict:
    """What a user writes with dlib: HOG detector + 68-point shape predictor on every frame."""
    faces = dlib_landmarker(upsample)
    frames = 0
    start = time.perf_counter()
    with LandmarkCsvWriter(csv_path) as writer:
        for frame in VideoSource(clip):
            writer.write_frame(frame.index, frame.timestamp, faces(frame.image))
            frames += 1
            if max_frames and frames >= max_frames:
                break
    wall = time.perf_counter() - start
    return {"frames": frames, "seconds": wall, "fps": frames / wall, "upsample": upsample}


def scratch_csv(name: str) -> str:
    return str(Path(tempfile.gettempdir()) / f"facetrack-bench-{name}.csv")


def decoder_benchmarks(model, cfg, sizes: list[int]) -> list[dict]:
    """The HMM decoder alone: the model's own graph, then synthetic graphs of the given
    sizes, each exact and (when the config prunes) with the config's top-M pruning."""
    from tracker.temporal.hmm import decode_benchmark, model_transitions
    prunes = [None] + ([cfg.prune_top] if cfg.prune_top else [])
    own = model_transitions(model, cfg.neighbours)
    rows = [decode_benchmark(own.num_states, cfg.neighbours, lag=30, prune_top=m, transitions=own) for m in prunes]
    return rows + [decode_benchmark(k, cfg.neighbours, lag=30, prune_top=m) for k in sizes for m in prunes]


# ----------------------------------------------------------------------------- whole processes

def process_run(argv: list[str], csv_path, poll: float = 0.005, timeout: float = 600.0) -> dict:
    """Run ``argv`` (a command writing the landmark CSV ``csv_path``) as a user would, from a
    fresh interpreter: wall seconds, seconds until the first frame's row is in the CSV (the
    file polled every ``poll`` s), the exit code and the child's peak resident memory (MB: its
    VmHWM, read at each poll, on Linux)."""
    import os
    import subprocess
    path = Path(csv_path)
    path.unlink(missing_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        first, seen = None, None
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)      # reaps it with its own rusage
            if pid:
                break
            # its own high-water mark (it only grows) while it runs: its ru_maxrss would also hold ours
            seen = vmhwm_mb(child.pid) or seen
            if first is None and _has_a_row(path):
                first = time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                child.kill()
            time.sleep(poll)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-300:]
    returncode = os.waitstatus_to_exitcode(status)
    if first is None and _has_a_row(path):
        first = wall
    rows = max(0, sum(1 for _ in open(path)) - 1) if path.is_file() else 0
    peak = seen if seen is not None else usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"seconds": wall, "first_frame_s": first, "returncode": returncode, "rows": rows,
            "peak_rss_mb": peak, "stderr": stderr}


def _has_a_row(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).count(b"\n") >= 2
    except OSError:
        return False


def tracker_command(clip, csv_path, extra: tuple[str, ...] = ()) -> list[str]:
    """``facetrack track CLIP --csv CSV`` in a fresh interpreter, as a user runs it."""
    return [sys.executable, "-m", "tracker.cli", "track", str(clip), "--csv", str(csv_path), "--no-progress", *extra]


def dlib_command(clip, csv_path, upsample: int = 0) -> list[str]:
    """The dlib loop (:func:`run_dlib_baseline`) in a fresh interpreter."""
    return [sys.executable, "-m", "tracker.evaluation.bench", "dlib", str(clip), str(csv_path), str(upsample)]


if __name__ == "__main__":            # python -m tracker.evaluation.bench dlib CLIP CSV UPSAMPLE: the baseline as a process
    if len(sys.argv) != 5 or sys.argv[1] != "dlib":
        sys.exit("usage: python -m tracker.evaluation.bench dlib CLIP CSV UPSAMPLE")
    run_dlib_baseline(sys.argv[2], sys.argv[3], int(sys.argv[4]))
