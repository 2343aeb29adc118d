"""Whole collections: ``facetrack batch`` tracks many videos, one CSV (and overlay) each.

Each video is a job. Its outputs are written under temporary names and renamed when
complete, so an output that exists is complete and a rerun skips it (resume). Every attempt
is one line of ``DIR/manifest.jsonl``: status ``ok``, ``error`` (the video itself is bad:
deterministic, not retried), ``crashed`` (the worker process died: retried) or ``timeout``
(killed after the per-video limit: not retried).

The jobs run on worker processes that load the model once (:class:`LocalPool`, sized to the
machine), or on a Ray cluster (:class:`RayPool`, each worker an actor). Thread counts in a
worker are set on purpose (the network's threads, OpenBLAS, Numba, one FFmpeg thread) and
each worker has its own Numba cache directory, seeded from the package's.

This module imports nothing heavy: worker processes set their environment first.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tracker.errors import FacetrackError, UsageError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
MANIFEST = "manifest.jsonl"
FAILED = ("error", "crashed", "timeout")


@dataclass(frozen=True)
class Job:
    """One video and where its outputs go."""

    video: str
    csv: str
    overlay: str | None = None

    def outputs(self) -> list[Path]:
        return [Path(p) for p in (self.csv, self.overlay) if p]

    def parts(self) -> dict[Path, Path]:
        """Each output and the temporary name it is written under (``NAME.part.csv``)."""
        return {path: path.with_name(f"{path.stem}.part{path.suffix}") for path in self.outputs()}

    def discard_parts(self) -> None:
        """Remove what an attempt that did not finish left under the temporary names."""
        for part in self.parts().values():
            part.unlink(missing_ok=True)

    def done(self) -> bool:
        """Whether every output exists (outputs appear only when complete)."""
        return all(p.is_file() for p in self.outputs())


@dataclass
class Settings:
    """What every worker runs with (picklable)."""

    model: str | None = None
    device: str = "cpu"
    config: str | None = None
    overrides: dict = field(default_factory=dict)     # {section: {key: value}}, as --set gives them
    threads: int = 1                 # the network's threads in each worker
    spread: bool = False


# ----------------------------------------------------------------------------- planning

def find_videos(inputs: Iterable) -> list[Path]:
    """Video files named, and those under named folders (recursively, sorted), once each."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                            and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    unique, seen = [], set()
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def plan_jobs(videos: list[Path], out_dir: Path, overlay: bool = False) -> list[Job]:
    """A job per video: ``DIR/NAME.csv`` (and ``DIR/NAME.mp4``), NAME the file's stem, made
    unique by a short hash of its path where two videos share a stem."""
    stems = [v.stem for v in videos]
    jobs = []
    for video, stem in zip(videos, stems):
        name = stem if stems.count(stem) == 1 else \
            f"{stem}-{hashlib.sha1(str(video.resolve()).encode()).hexdigest()[:8]}"
        jobs.append(Job(str(video), str(out_dir / f"{name}.csv"), str(out_dir / f"{name}.mp4") if overlay else None))
    return jobs


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """Video -> its last manifest line (lines that do not parse are skipped)."""
    last: dict[str, dict] = {}
    path = out_dir / MANIFEST
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                last[entry["video"]] = entry
            except (ValueError, KeyError, TypeError):
                continue
    return last


def to_run(jobs: list[Job], out_dir: Path, redo_failed: bool) -> tuple[list[Job], list[Job], list[Job]]:
    """(jobs to run, jobs done already, jobs that failed before and are left alone)."""
    last = read_manifest(out_dir)
    run, done, failed = [], [], []
    for job in jobs:
        if job.done():
            done.append(job)
        elif not redo_failed and last.get(job.video, {}).get("status") in FAILED:
            failed.append(job)
        else:
            run.append(job)
    return run, done, failed


# ----------------------------------------------------------------------------- one job

_TRACKER = None


def load_worker(settings: Settings) -> None:
    """Load the model once in this worker (the worker's first step)."""
    global _TRACKER
    from tracker.api import Tracker
    from tracker.config import load_track_config
    overrides = {section: dict(values) for section, values in settings.overrides.items()}
    overrides.setdefault("tracking", {}).update(threads=settings.threads, decode_threads=1)
    config = load_track_config(settings.config, overrides)
    _TRACKER = Tracker(settings.model, settings.device, config=config)


def run_job(job: Job, settings: Settings) -> dict:
    """Track one video into its outputs (temporary names, renamed when complete): a result
    dict with ``status`` ok or error, ``frames``, ``seconds``, ``error``/``warning``."""
    from tracker.io.draw import render
    from tracker.io.sinks import CsvSink, VideoSink
    from tracker.io.sources import open_source
    if _TRACKER is None:
        load_worker(settings)
    start = time.perf_counter()
    csv, overlay = Path(job.csv), Path(job.overlay) if job.overlay else None
    parts = job.parts()
    frames = 0
    try:
        for path in parts:
            path.parent.mkdir(parents=True, exist_ok=True)
        source = open_source(job.video, 1)
        with CsvSink(str(parts[csv]), spread=settings.spread) as sink, _TRACKER.track(source) as stream:
            video = VideoSink(str(parts[overlay]), fps=source.fps, time_base=source.time_base) if overlay else None
            with video or nullcontext():
                for result in stream:
                    sink.write(result)
                    if video is not None:
                        video.write(result, render(result))
                    frames += 1
            damage = stream.damage
        if frames == 0:
            raise FacetrackError(f"{job.video}: no frame could be read")
        for path, part in parts.items():
            os.replace(part, path)
    except (FacetrackError, OSError) as exc:
        job.discard_parts()
        message = str(exc) if isinstance(exc, FacetrackError) else f"{job.video}: {exc.strerror or exc}"
        return {"status": "error", "frames": frames, "seconds": time.perf_counter() - start, "error": message}
    out = {"status": "ok", "frames": frames, "seconds": time.perf_counter() - start}
    if damage:
        out["warning"] = damage
    return out


# ----------------------------------------------------------------------------- workers' environment

def worker_environment(threads: int, cache_dir: Path | None) -> dict[str, str]:
    """Environment variables of a worker: thread pools sized on purpose, its own Numba cache."""
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": str(threads), "NUMBA_THREADING_LAYER": "workqueue"}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return env


def seed_numba_cache(cache_dir: Path) -> Path:
    """Give a worker's Numba cache directory the package's compiled kernels (where numba would
    look for them under ``NUMBA_CACHE_DIR``), so that a new worker does not compile them again."""
    from numba.core.caching import _CacheLocator
    kernels = Path(__file__).resolve().parents[2] / "kernels"
    target = cache_dir / _CacheLocator.get_suitable_cache_subpath(str(kernels / "hmm.py"))
    target.mkdir(parents=True, exist_ok=True)
    source = kernels / "__pycache__"
    if source.is_dir():
        for path in source.iterdir():
            if path.suffix in (".nbi", ".nbc") and not (target / path.name).exists():
                shutil.copy2(path, target / path.name)
    return cache_dir


def default_cache_root() -> Path:
    from tracker.cache import user_cache
    return user_cache("numba")


@contextmanager
def environment(values: dict[str, str]):
    """``os.environ`` with ``values`` set, restored afterwards (a spawned child inherits it)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ----------------------------------------------------------------------------- local pool

def _worker_loop(conn, settings: Settings, work: Callable = run_job) -> None:
    """A worker process: load the model, say ready, then run ``work(job, settings)`` on each
    job it is sent until told to stop."""
    try:
        load_worker(settings)
    except Exception as exc:                 # noqa: BLE001 - reported to the supervisor, which stops the batch
        conn.send({"init_error": str(exc) or type(exc).__name__})
        return
    conn.send({"ready": True})
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            result = work(job, settings)
        except Exception as exc:             # noqa: BLE001 - an unexpected failure of this video: reported as error
            result = {"status": "error", "frames": 0, "seconds": 0.0, "error": f"{type(exc).__name__}: {exc}"}
        conn.send(result)


@dataclass
class _Slot:
    index: int
    process: object = None
    conn: object = None
    ready: bool = False
    job: Job | None = None
    attempt: int = 0
    started: float = 0.0


class LocalPool:
    """``workers`` worker processes on this machine (spawned, each loading the model once).

    A worker that dies takes only its own job with it: the job is retried (``retries``
    times) on a fresh worker; a job past ``timeout`` seconds is killed with its worker.
    ``work`` (a module-level function, as the workers import it) runs one job: :func:`run_job`."""

    def __init__(self, settings: Settings, workers: int, timeout: float | None = None, retries: int = 1,
                 cache_root: Path | None = None, work: Callable = run_job):
        self.settings, self.workers, self.timeout, self.retries = settings, max(1, workers), timeout, retries
        self.cache_root, self.work = cache_root, work

    def run(self, jobs: list[Job], report: Callable[[Job, dict], None]) -> None:
        import multiprocessing as mp
        from multiprocessing.connection import wait
        ctx = mp.get_context("spawn")
        pending = deque((job, 1) for job in jobs)
        slots = [_Slot(i) for i in range(min(self.workers, len(jobs)))]
        try:
            while pending or any(s.job is not None for s in slots):
                for slot in slots:
                    if slot.process is None and pending:
                        self._start(ctx, slot)
                    if slot.ready and slot.job is None and pending:
                        slot.job, slot.attempt = pending.popleft()
                        slot.started = time.monotonic()
                        slot.conn.send(slot.job)
                live = [s for s in slots if s.process is not None]
                if not live:
                    break
                ready = wait([s.conn for s in live] + [s.process.sentinel for s in live],
                             timeout=self._wait_for(live))
                for slot in live:
                    self._check(slot, ready, pending, report)
        except BaseException:                   # interrupted: the workers go now, not after their video
            for slot in slots:
                self._stop(slot, kill=True)
            raise
        finally:
            for slot in slots:
                self._stop(slot)

    def _wait_for(self, live: list[_Slot]) -> float | None:
        if self.timeout is None:
            return None
        busy = [s.started + self.timeout - time.monotonic() for s in live if s.job is not None]
        return max(0.05, min(busy)) if busy else None

    def _check(self, slot: _Slot, ready, pending, report) -> None:
        if slot.conn in ready:
            try:
                message = slot.conn.recv()
            except (EOFError, OSError):
                message = None
            if message is not None:
                if "init_error" in message:
                    raise FacetrackError(f"a worker could not start: {message['init_error']}")
                if message.get("ready"):
                    slot.ready = True
                    return
                report(slot.job, {**message, "attempt": slot.attempt})
                slot.job = None
                return
        if slot.process.sentinel in ready or not slot.process.is_alive():
            self._crashed(slot, pending, report)
        elif slot.job is not None and self.timeout is not None and time.monotonic() - slot.started > self.timeout:
            job, attempt = slot.job, slot.attempt
            self._stop(slot, kill=True)
            job.discard_parts()
            report(job, {"status": "timeout", "attempt": attempt, "seconds": self.timeout,
                         "error": f"{job.video}: no result after {self.timeout:g} s (killed)"})

    def _crashed(self, slot: _Slot, pending, report) -> None:
        job, attempt, ready, code = slot.job, slot.attempt, slot.ready, slot.process.exitcode
        seconds = time.monotonic() - slot.started
        self._stop(slot, kill=True)
        if job is None:
            if not ready:
                raise FacetrackError(f"a worker died while loading the model (exit code {code})")
            return                               # an idle worker: a new one starts when there is work
        job.discard_parts()
        if attempt <= self.retries:
            pending.appendleft((job, attempt + 1))
        report(job, {"status": "crashed", "attempt": attempt, "seconds": seconds, "final": attempt > self.retries,
                     "error": f"the worker died (exit code {code})"})

    def _start(self, ctx, slot: _Slot) -> None:
        parent, child = ctx.Pipe()
        cache = None
        if self.cache_root is not None:
            cache = seed_numba_cache(self.cache_root / f"worker-{slot.index}")
        with environment(worker_environment(self.settings.threads, cache)):
            process = ctx.Process(target=_worker_loop, args=(child, self.settings, self.work), daemon=True,
                                  name=f"facetrack-batch-{slot.index}")
            process.start()
        child.close()
        slot.process, slot.conn, slot.ready, slot.job = process, parent, False, None

    def _stop(self, slot: _Slot, kill: bool = False) -> None:
        if slot.process is None:
            return
        if kill:
            slot.process.kill()
        else:
            try:
                slot.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        slot.process.join(timeout=10)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join()
        slot.conn.close()
        slot.process, slot.conn, slot.ready, slot.job = None, None, False, None


# ----------------------------------------------------------------------------- Ray

class _RayWorker:
    """A Ray actor: the model loaded once in ``__init__``, one job per ``run`` call."""

    def __init__(self, settings: Settings, work: Callable, cache_dir: str | None):
        if cache_dir:
            seed_numba_cache(Path(cache_dir))
        self.settings, self.work = settings, work
        load_worker(settings)

    def ready(self) -> bool:
        return True

    def run(self, job: Job) -> dict:
        return self.work(job, self.settings)


class RayPool:
    """The same jobs on a Ray cluster (``address`` None: a local one, or the one already
    initialised). Each worker is an actor that loads the model once, with ``threads`` CPUs
    (``settings.threads``) and ``gpus`` GPUs (fractions share one). Ray's own retries are off
    (``max_restarts=0``, ``max_task_retries=0``): a video that kills its actor is retried
    here, ``retries`` times, on a fresh actor, and a poison video fails alone; a job past
    ``timeout`` seconds is killed with its actor."""

    def __init__(self, settings: Settings, address: str | None = None, workers: int | None = None,
                 timeout: float | None = None, retries: int = 1, gpus: float = 0.0, work: Callable = run_job):
        try:
            import ray
        except ImportError:
            raise UsageError("the Ray executor needs Ray: pip install facetrack[ray]") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.settings, self.timeout, self.retries, self.gpus, self.work = settings, timeout, retries, gpus, work
        self.workers = workers or max(1, cpus // max(1, settings.threads))
        self._count = 0

    def _actor(self):
        ray = self.ray
        self._count += 1
        cache = str(default_cache_root() / f"ray-worker-{self._count}")
        env = worker_environment(self.settings.threads, cache)
        actor = ray.remote(_RayWorker).options(
            num_cpus=self.settings.threads, num_gpus=self.gpus, max_restarts=0, max_task_retries=0,
            runtime_env={"env_vars": env}).remote(self.settings, self.work, cache)
        try:
            ray.get(actor.ready.remote())
        except ray.exceptions.RayError as exc:
            raise FacetrackError(f"a Ray worker could not start: {_ray_message(exc)}") from None
        return actor

    def run(self, jobs: list[Job], report: Callable[[Job, dict], None]) -> None:
        ray = self.ray
        pending = deque((job, 1) for job in jobs)
        idle = []
        running: dict = {}                       # ref -> (actor, job, attempt, started)
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    actor = idle.pop() if idle else self._actor()
                    job, attempt = pending.popleft()
                    running[actor.run.remote(job)] = (actor, job, attempt, time.monotonic())
                wait = None
                if self.timeout is not None:
                    wait = max(0.05, min(s + self.timeout - time.monotonic() for *_, s in running.values()))
                done, _ = ray.wait(list(running), num_returns=1, timeout=wait)
                for ref in done:
                    actor, job, attempt, started = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.ActorDiedError as exc:
                        job.discard_parts()
                        if attempt <= self.retries:
                            pending.appendleft((job, attempt + 1))
                        report(job, {"status": "crashed", "attempt": attempt, "final": attempt > self.retries,
                                     "error": f"the worker died ({_ray_message(exc)})"})
                        continue
                    except ray.exceptions.RayTaskError as exc:
                        result = {"status": "error", "frames": 0, "seconds": time.monotonic() - started,
                                  "error": _ray_message(exc)}
                    report(job, {**result, "attempt": attempt})
                    idle.append(actor)
                if self.timeout is not None:
                    for ref, (actor, job, attempt, started) in list(running.items()):
                        if time.monotonic() - started > self.timeout:
                            running.pop(ref)
                            ray.kill(actor, no_restart=True)
                            job.discard_parts()
                            report(job, {"status": "timeout", "attempt": attempt, "seconds": self.timeout,
                                         "error": f"{job.video}: no result after {self.timeout:g} s (killed)"})
        finally:
            for actor in idle + [a for a, *_ in running.values()]:
                ray.kill(actor, no_restart=True)


def _ray_message(exc) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


# ----------------------------------------------------------------------------- the batch

@dataclass
class Summary:
    ok: int = 0
    skipped: int = 0
    failed_before: int = 0
    failed: list = field(default_factory=list)     # (video, status, error)

    @property
    def all_ok(self) -> bool:
        return not self.failed and not self.failed_before


def run_batch(jobs: list[Job], out_dir: Path, pool, redo_failed: bool = False,
              progress: Callable[[Summary], None] | None = None) -> Summary:
    """Run what is not done yet on ``pool``, appending every attempt to the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run, done, failed_before = to_run(jobs, out_dir, redo_failed)
    summary = Summary(skipped=len(done), failed_before=len(failed_before))
    manifest = open(out_dir / MANIFEST, "a", buffering=1)

    def report(job: Job, result: dict) -> None:
        entry = {"video": job.video, "csv": job.csv, **({"overlay": job.overlay} if job.overlay else {}),
                 "status": result["status"], "attempt": result.get("attempt", 1),
                 "seconds": round(float(result.get("seconds", 0.0)), 3), "frames": result.get("frames", 0),
                 "error": result.get("error"), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if result.get("warning"):
            entry["warning"] = result["warning"]
        manifest.write(json.dumps(entry) + "\n")
        if result["status"] == "ok":
            summary.ok += 1
        elif result["status"] != "crashed" or result.get("final", True):
            summary.failed.append((job.video, result["status"], result.get("error")))
        else:
            return                                  # retried: no progress yet
        if progress is not None:
            progress(summary)

    try:
        if run:
            pool.run(run, report)
    finally:
        manifest.close()
    return summary


def worker_counts(workers: int | None = None, threads: int | None = None, cpus: int | None = None) -> tuple[int, int]:
    """(worker processes, network threads each) for this machine: by default a worker per two
    cores, the cores divided among the workers."""
    cpus = cpus or os.cpu_count() or 1
    workers = workers or max(1, cpus // 2)
    return workers, threads or max(1, cpus // workers)
