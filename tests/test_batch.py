"""facetrack batch: generated clips, a corrupt file, a worker that dies and one that hangs;
the manifest, resume, --redo-failed, and the command's bad-input errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clips import moving_face_frames, write_clip
from tracker.apps.batch import (
    LocalPool,
    Settings,
    find_videos,
    plan_jobs,
    read_manifest,
    run_batch,
    run_job,
    seed_numba_cache,
)

REPO = Path(__file__).resolve().parents[1]


def dying_or_hanging(job, settings):
    """The job function of the tests' workers: a video named *die* kills its worker, *hang* never ends."""
    name = Path(job.video).name
    for part in job.parts().values():            # as if it had started writing
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text("half")
    if "die" in name:
        os._exit(7)
    if "hang" in name:
        time.sleep(600)
    return run_job(job, settings)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    frames, _ = moving_face_frames(6, step=2.0)
    (root / "sub").mkdir()
    for name in ("a.mkv", "sub/b.mkv", "die.mkv", "hang.mkv"):
        write_clip(root / name, frames)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    (root / "notes.txt").write_text("not a video")
    return root


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_find_videos_and_unique_names(tmp_path, videos):
    found = find_videos([videos])
    assert sorted(p.name for p in found) == ["a.mkv", "b.mkv", "corrupt.mp4", "die.mkv", "hang.mkv"]
    assert find_videos([videos / "a.mkv", videos]) == find_videos([videos])[:0] + [videos / "a.mkv"] + \
        [p for p in find_videos([videos]) if p.name != "a.mkv"]
    twin = tmp_path / "other"
    twin.mkdir()
    (twin / "a.mkv").write_bytes((videos / "a.mkv").read_bytes())
    names = [Path(j.csv).name for j in plan_jobs([videos / "a.mkv", twin / "a.mkv", videos / "sub/b.mkv"], tmp_path)]
    assert names[2] == "b.csv" and names[0] != names[1] and all(n.startswith("a-") for n in names[:2])


@pytest.mark.slow
def test_good_corrupt_dying_and_hanging_videos_then_a_rerun(tmp_path, videos):
    out = tmp_path / "out"
    jobs = plan_jobs(find_videos([videos]), out)
    pool = LocalPool(Settings(overrides={"tracking": {"upsample": 0}}), workers=2, timeout=8, retries=1,
                     cache_root=tmp_path / "numba", work=dying_or_hanging)
    summary = run_batch(jobs, out, pool)
    status = {Path(v).name: s for v, s, _ in summary.failed}
    assert summary.ok == 2 and status == {"corrupt.mp4": "error", "die.mkv": "crashed", "hang.mkv": "timeout"}
    assert (out / "a.csv").is_file() and (out / "b.csv").is_file()
    assert not list(out.glob("*.part*"))                       # nothing half-written is left
    lines = manifest_lines(out)
    by_video = {}
    for line in lines:
        by_video.setdefault(Path(line["video"]).name, []).append((line["status"], line["attempt"]))
    assert by_video["die.mkv"] == [("crashed", 1), ("crashed", 2)]     # retried once, then given up
    assert by_video["corrupt.mp4"] == [("error", 1)]                   # deterministic: not retried
    assert by_video["hang.mkv"] == [("timeout", 1)]
    assert by_video["a.mkv"] == [("ok", 1)] and lines[0]["seconds"] >= 0
    rows = (out / "a.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("frame")             # a header and one row per frame
    # the rerun skips what is done and what failed; --redo-failed tries the failures again
    again = run_batch(jobs, out, pool)
    assert (again.ok, again.skipped, again.failed_before, again.failed) == (0, 2, 3, [])
    assert len(manifest_lines(out)) == len(lines)
    (out / "b.csv").unlink()
    redo = run_batch(jobs, out, LocalPool(Settings(), workers=1, timeout=8, retries=0,
                                          cache_root=tmp_path / "numba", work=dying_or_hanging), redo_failed=True)
    assert redo.ok == 1 and redo.skipped == 1 and len(redo.failed) == 3
    assert read_manifest(out)[str(videos / "sub" / "b.mkv")]["status"] == "ok"


def test_worker_cache_is_seeded_from_the_package(tmp_path):
    cache = seed_numba_cache(tmp_path / "w0")
    copied = list(cache.rglob("*.nbi"))
    package = list((REPO / "kernels" / "__pycache__").glob("*.nbi")) if (REPO / "kernels" / "__pycache__").is_dir() else []
    assert len(copied) == len(package)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tracker.cli", "batch", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=300)


@pytest.mark.slow
def test_the_command_end_to_end_and_its_bad_inputs(tmp_path, videos):
    out = tmp_path / "out"
    done = run_cli(videos / "a.mkv", videos / "corrupt.mp4", "--out", out, "--no-progress", "--overlay", "--set",
                   "tracking.upsample=0")
    assert done.returncode == 3 and "1 of 2 videos did not succeed" in done.stderr
    assert (out / "a.csv").is_file() and (out / "a.mp4").stat().st_size > 0 and "Traceback" not in done.stderr
    ok = run_cli(videos / "a.mkv", "--out", out, "--no-progress")
    assert ok.returncode == 0 and "1 done before" in ok.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no video here")
    for args, words, code in [((tmp_path / "missing.mp4", "--out", out), "no such file or folder", 2),
                              ((empty, "--out", tmp_path / "o2"), "no videos found", 2),
                              ((videos / "a.mkv", "--out", videos / "a.mkv"), "not a folder", 2),
                              ((videos / "a.mkv", "--out", out, "--timeout", "0"), "--timeout", 2),
                              ((videos / "a.mkv", "--out", out, "--set", "tracking.batch_size=0"), "batch_size", 3)]:
        bad = run_cli(*args)                       # a bad config value is bad input (3), as in facetrack track
        assert bad.returncode == code, (args, bad.stderr)
        assert words in bad.stderr and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_ray_executor_runs_the_same_jobs(tmp_path, videos):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install facetrack[ray]); the Ray executor "
                                            "is tested where it is")
    from tracker.apps.batch import RayPool
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}})
    try:
        out = tmp_path / "out"
        jobs = plan_jobs([videos / n for n in ("a.mkv", "corrupt.mp4", "die.mkv", "hang.mkv")], out)
        pool = RayPool(Settings(overrides={"tracking": {"upsample": 0}}), workers=2, timeout=8, retries=1,
                       work=dying_or_hanging)
        summary = run_batch(jobs, out, pool)
        status = {Path(v).name: s for v, s, _ in summary.failed}
        assert summary.ok == 1 and status == {"corrupt.mp4": "error", "die.mkv": "crashed", "hang.mkv": "timeout"}
        attempts = [(line["status"], line["attempt"]) for line in manifest_lines(out) if "die" in line["video"]]
        assert attempts == [("crashed", 1), ("crashed", 2)]
        assert run_batch(jobs, out, pool).skipped == 1
    finally:
        ray.shutdown()
