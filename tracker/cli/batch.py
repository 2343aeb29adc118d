"""facetrack batch: track many videos, one CSV (and overlay) each, with a manifest and resume."""
from __future__ import annotations

import sys
from pathlib import Path

from tracker.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    add_overrides,
    command_parser,
    fail,
    int_at_least,
    parse_overrides,
    run_command,
    warn,
)
from tracker.errors import UsageError

SUMMARY = "track many videos (files or folders): a CSV each, a manifest, resume, retries, timeouts"


def parser(prog: str = "facetrack batch"):
    p = command_parser(prog, "Track every face through many videos: DIR/NAME.csv per video (and DIR/NAME.mp4 with "
                             "--overlay), every attempt a line of DIR/manifest.jsonl. Outputs are written under "
                             "temporary names and renamed when complete; a rerun skips videos whose outputs exist "
                             "and, unless --redo-failed, those that failed before.")
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER",
                   help="video files, and folders searched (recursively) for videos")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--overlay", action="store_true", help="also an overlay video per input")
    p.add_argument("--spread", action="store_true", help="also each landmark's spread (columns s_0..s_67)")
    p.add_argument("--redo-failed", action="store_true", help="run again the videos that failed before")
    p.add_argument("--workers", type=int_at_least(1),
                   help="worker processes (default: one per two cores), each loading the model once")
    p.add_argument("--threads", type=int_at_least(1),
                   help="network threads per worker (default: the cores divided among the workers)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="per-video limit: a video still running after it is killed and marked timeout")
    p.add_argument("--retries", type=int_at_least(0), default=1,
                   help="new attempts for a video whose worker died (default 1); errors are not retried")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local worker processes, or a Ray cluster (pip install facetrack[ray])")
    p.add_argument("--ray-address", metavar="ADDRESS", help="the Ray cluster to join (implies --executor ray)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="Ray: GPUs reserved per worker (fractions share a GPU; default 0: CPU workers)")
    p.add_argument("--config", help="tracking YAML (default: built-in values, as in configs/track.yaml)")
    add_overrides(p, "tracking.upsample=0")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack batch") -> int:
    return run_command(prog, _batch, argv)


def _batch(argv: list[str], prog: str) -> int:
    from tracker.apps.batch import (
        VIDEO_SUFFIXES,
        LocalPool,
        Settings,
        default_cache_root,
        find_videos,
        plan_jobs,
        run_batch,
        to_run,
        worker_counts,
    )
    from tracker.config import load_track_config
    from tracker.io.sinks import check_writable
    p = parser(prog)
    if not argv:
        p.print_usage(sys.stderr)
        return EXIT_USAGE
    args = p.parse_args(argv)
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    overrides = parse_overrides(args.set)
    load_track_config(args.config, overrides)                  # a bad setting fails here, not in every worker
    videos = find_videos(args.inputs)
    if not videos:
        raise UsageError(f"no videos found in {', '.join(args.inputs)} (looked for {', '.join(VIDEO_SUFFIXES)})")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out / "manifest.jsonl")
    jobs = plan_jobs(videos, out, args.overlay)
    workers, threads = worker_counts(args.workers, args.threads)
    settings = Settings(model=args.model, device=args.device, config=args.config, overrides=overrides,
                        threads=threads, spread=args.spread)
    if args.executor == "ray" or args.ray_address:
        from tracker.apps.batch import RayPool
        pool = RayPool(settings, address=args.ray_address, workers=args.workers, timeout=args.timeout,
                       retries=args.retries, gpus=args.gpus_per_worker)
    else:
        pool = LocalPool(settings, workers, timeout=args.timeout, retries=args.retries,
                         cache_root=default_cache_root())
    bar = _progress(len(to_run(jobs, out, args.redo_failed)[0]), not args.no_progress)
    summary = run_batch(jobs, out, pool, args.redo_failed, progress=lambda s: _advance(bar, s))
    bar.close()
    for video, status, error in summary.failed:
        warn(prog, f"{status}: {error or video}")
    counts = f"{summary.ok} done now, {summary.skipped} done before, {len(summary.failed)} failed"
    if summary.failed_before:
        counts += f", {summary.failed_before} failed before (--redo-failed runs them again)"
    print(f"{counts}; manifest: {out / 'manifest.jsonl'}", file=sys.stderr)
    if not summary.all_ok:
        return fail(prog, f"{len(summary.failed) + summary.failed_before} of {len(jobs)} videos did not succeed",
                    EXIT_INPUT)
    return EXIT_OK


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, disable=not enabled, unit="video", file=sys.stderr, dynamic_ncols=True)


def _advance(bar, summary) -> None:
    bar.set_postfix(ok=summary.ok, failed=len(summary.failed), refresh=False)
    bar.update(1)
