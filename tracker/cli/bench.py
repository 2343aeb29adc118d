"""facetrack bench: frames per second of our tracker and of the dlib baseline on one clip."""
from __future__ import annotations

import json
from pathlib import Path

from tracker.cli.common import (
    EXIT_OK,
    add_overrides,
    add_renamed_option,
    command_parser,
    int_list,
    parse_overrides,
    run_command,
)
from tracker.errors import UsageError

SUMMARY = "speed: our tracker against the dlib baseline on one clip, per-stage times, peak memory, HMM decoder"


def parser(prog: str = "facetrack bench"):
    p = command_parser(prog, "Frames per second of our tracker and of the dlib baseline (HOG detector + 68-point "
                             "shape predictor on every frame) on one clip, in one process; per-stage times, "
                             "peak memory.")
    p.add_argument("clip", nargs="?", help="video file (default: the bundled sample clip)")
    p.add_argument("--footage", nargs="?", const="", metavar="DIR",
                   help="real footage instead of one clip: the bundled sample and the clips DIR/NAME/vid.mp4 "
                        "(hikers, event, selfie-rotated, tears-of-steel; default ../shared/data/videos), each as "
                        "whole processes of facetrack track, the dlib loop and the MediaPipe loop "
                        "(../shared/peers/setup-mediapipe.sh makes its environment; skipped, saying why, where "
                        "it cannot), with the frames each finds a face on, our detector share and crops per face")
    p.add_argument("--peers", metavar="DIR", help="the peers folder for --footage (default ../shared/peers)")
    p.add_argument("--reference", metavar="ONNX",
                   help="for --footage: recall and precision of every tracker against this CenterFace model "
                        "(default: the one ../shared/peers/setup-centerface.sh fetches; 'none' skips)")
    p.add_argument("--reference-every", type=int, default=10, metavar="N",
                   help="the reference detector runs on one frame in N (default 10)")
    p.add_argument("--frames", type=int, help="stop after this many frames (default: the whole clip)")
    p.add_argument("--config", help="tracking YAML (default: built-in values)")
    add_overrides(p, "tracking.batch_size=1")
    p.add_argument("--batch-sizes", default="", metavar="N,N,...",
                   help="also run ours at these batch sizes (e.g. 8,64,256 on a GPU)")
    p.add_argument("--overlap-too", action="store_true",
                   help="also run ours with tracking.overlap the other way (the engine a batch ahead of the "
                        "temporal stage, or not)")
    p.add_argument("--baseline-upsample", default="1,0", metavar="U,U",
                   help="dlib detector upsampling for the baseline runs (1 is dlib's documented example)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--process-runs", type=int, default=1, metavar="N",
                   help="also N alternating pairs of whole processes as a user runs them, started fresh: "
                        "'facetrack track CLIP --csv' and the dlib loop at --process-upsample (0: skip)")
    p.add_argument("--process-upsample", type=int, default=0, metavar="U",
                   help="dlib detector upsampling of the whole-process baseline (default 0, its fastest)")
    p.add_argument("--hmm-states", default="10000,140000", metavar="K,K",
                   help="also time the HMM decoder alone at these numbers of states (n from the config; '' skips)")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_renamed_option(p, "--multi-face", "--footage (real clips)")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack bench") -> int:
    return run_command(prog, _bench, argv)


def _bench(argv: list[str], prog: str) -> int:
    import dataclasses

    from tracker.api import Tracker
    from tracker.config import load_track_config
    from tracker.evaluation.bench import (
        SAMPLE_CLIP,
        decode_only,
        decoder_benchmarks,
        peak_rss_mb,
        run_dlib_baseline,
        run_tracker,
        scratch_csv,
    )
    args = parser(prog).parse_args(argv)
    batch_sizes = int_list(args.batch_sizes, "--batch-sizes", low=1)
    upsamples = int_list(args.baseline_upsample, "--baseline-upsample")
    hmm_states = int_list(args.hmm_states, "--hmm-states", low=2)
    if args.frames is not None and args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    clip = args.clip or str(SAMPLE_CLIP)
    config = load_track_config(args.config, parse_overrides(args.set))
    if args.footage is not None:
        return _bench_footage(args, config)
    processes = whole_processes(clip, args, args.process_runs)        # first, before this process loads anything
    tracker = Tracker(args.model, args.device, config=config)
    run_tracker(clip, tracker, scratch_csv("warmup"), max_frames=16)      # first-call costs
    report = {"clip": clip, "device": str(tracker.device), "backend": tracker.backend, "threads": tracker.threads,
              "batch_size": tracker.batch_size, "device_crops": tracker.landmarker.device_crops,
              "overlap": tracker.overlap,
              "processes": processes,
              "config": dataclasses.asdict(config.tracking), "temporal": dataclasses.asdict(config.temporal),
              "ours": run_tracker(clip, tracker, scratch_csv("ours"), args.frames)}
    report["ours_runs"] = []
    for size in batch_sizes:
        variant = Tracker(tracker.model, args.device, config=config, batch_size=size, gpu_batch_size=size,
                          latency=False)
        report["ours_runs"].append({"batch_size": size, **run_tracker(clip, variant, scratch_csv("ours"),
                                                                      args.frames)})
    if args.overlap_too:
        variant = Tracker(tracker.model, args.device, config=config, overlap="off" if tracker.overlap else "on")
        report["ours_runs"].append({"batch_size": variant.batch_size, "overlap": variant.overlap,
                                    **run_tracker(clip, variant, scratch_csv("ours"), args.frames)})
    if tracker.backend == "torch" and tracker.device.type == "cuda":
        import torch
        report["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    report["decode_only"] = decode_only(clip, config.tracking.decode_threads, args.frames)
    report["baseline"] = [] if args.no_baseline else [
        run_dlib_baseline(clip, scratch_csv(f"dlib{u}"), u, args.frames) for u in upsamples]
    report["hmm"] = decoder_benchmarks(tracker.model, config.temporal, hmm_states)
    report["peak_rss_mb_end"] = peak_rss_mb()
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return EXIT_OK


def _bench_footage(args, config) -> int:
    """``--footage``: the footage table (:mod:`tracker.evaluation.footage`)."""
    from tracker.api import Tracker
    from tracker.evaluation.footage import SHARED, bench_clip, footage, format_footage, mediapipe_python
    if args.footage and not Path(args.footage).is_dir():
        raise UsageError(f"--footage: {args.footage}: no such folder")
    peers = Path(args.peers) if args.peers else SHARED / "peers"
    if args.reference_every < 1:
        raise UsageError(f"--reference-every: expected 1 or more, got {args.reference_every}")
    python, skipped = mediapipe_python(peers)
    reference, reference_skipped = _reference_detector(args.reference, peers)
    tracker = Tracker(args.model, args.device, config=config)
    rows = []
    for name, clip in footage(Path(args.footage) if args.footage else None):
        try:
            rows.append(bench_clip(name, clip, tracker, _process_options(args), None if python is None else
                                   (python, peers), dlib=not args.no_baseline, reference=reference,
                                   every=args.reference_every))
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
    print(json.dumps({"clips": rows, "mediapipe_skipped": skipped, "reference_skipped": reference_skipped,
                      "reference_every": args.reference_every}, indent=1) if args.json
          else format_footage(rows, skipped, reference_skipped, args.reference_every))
    return EXIT_OK


def _reference_detector(option: str | None, peers):
    """The reference detector for recall (:class:`tracker.evaluation.recall.CenterFace`), or
    None and why not: ``option`` is its ONNX file, 'none', or None (the peers' setup script)."""
    from tracker.evaluation.footage import centerface_file
    from tracker.evaluation.recall import CenterFace
    if option == "none":
        return None, "--reference none"
    if option is None:
        option, why = centerface_file(peers)
        if option is None:
            return None, why
    if not Path(option).is_file():
        raise UsageError(f"--reference: {option}: no such file")
    try:
        return CenterFace(option), ""
    except Exception as exc:          # OpenCV's error for a file that is not an ONNX model
        raise UsageError(f"--reference: {option}: not a model OpenCV can read ({str(exc).splitlines()[0]})") from None


def _process_options(args) -> tuple[str, ...]:
    """The options of ``facetrack track`` that repeat this bench's own."""
    extra = ["--device", args.device]
    if args.model:
        extra += ["--model", args.model]
    if args.config:
        extra += ["--config", args.config]
    for item in args.set or ():
        extra += ["--set", item]
    return tuple(extra)


def whole_processes(clip: str, args, runs: int) -> list[dict]:
    """``runs`` alternating pairs (ours first, then the dlib loop) of fresh processes."""
    from tracker.evaluation.bench import dlib_command, process_run, scratch_csv, tracker_command
    extra = _process_options(args)
    pairs = []
    for _ in range(max(0, runs)):
        ours = process_run(tracker_command(clip, scratch_csv("process-ours"), extra), scratch_csv("process-ours"))
        dlib = process_run(dlib_command(clip, scratch_csv("process-dlib"), args.process_upsample),
                           scratch_csv("process-dlib"))
        for run in (ours, dlib):
            if run["returncode"] != 0:
                raise UsageError(f"a benchmark process failed (exit {run['returncode']}): {run['stderr'].strip()}")
        pairs.append({"ours": ours, "dlib": dlib, "upsample": args.process_upsample})
    return pairs


def format_processes(r: dict) -> list[str]:
    lines = []
    for i, pair in enumerate(r.get("processes", []), 1):
        ours, dlib = pair["ours"], pair["dlib"]
        lines.append(f"whole process {i} (fresh interpreter, start-up included): facetrack track {ours['seconds']:.2f} s "
                     f"(first frame written at {ours['first_frame_s']:.2f} s, peak RSS {ours['peak_rss_mb']:.0f} MB, "
                     f"{ours['rows']} rows) vs dlib loop (upsample {pair['upsample']}) {dlib['seconds']:.2f} s "
                     f"(first frame {dlib['first_frame_s']:.2f} s, peak RSS {dlib['peak_rss_mb']:.0f} MB): "
                     f"{dlib['seconds'] / ours['seconds']:.2f}x")
    return lines


def format_report(r: dict) -> str:
    ours = r["ours"]
    mode = "latency (1 frame per call)" if r["config"]["latency"] else \
        f"batch {r.get('batch_size', r['config']['batch_size'])}" + (", crops on the device" if r.get("device_crops") else "") \
        + (", engine a batch ahead of the temporal stage" if r.get("overlap") else "")
    lines = [f"clip {r['clip']}  device {r['device']}  backend {r.get('backend', 'torch')}  threads {r['threads']}  "
             f"{mode}", *format_processes(r),
             f"{'run':<44} {'frames':>7} {'fps':>8} {'ratio':>7}",
             f"{'facetrack (decode thread + tracker + CSV)':<44} {ours['frames']:>7d} {ours['fps']:>8.1f} {'1.00':>7}"]
    for run in r.get("ours_runs", []):
        name = f"facetrack, batch {run['batch_size']}" + (
            "" if "overlap" not in run else ", engine ahead" if run["overlap"] else ", engine not ahead")
        lines.append(f"{name:<44} {run['frames']:>7d} {run['fps']:>8.1f} {run['fps'] / ours['fps']:>7.2f}")
    if "decode_only" in r:
        dec = r["decode_only"]
        lines.append(f"{'decoding alone (the ceiling)':<44} {dec['frames']:>7d} {dec['fps']:>8.1f} "
                     f"{dec['fps'] / ours['fps']:>7.2f}")
    for base in r["baseline"]:
        name = f"dlib HOG (upsample {base['upsample']}) + 68-pt predictor"
        lines.append(f"{name:<44} {base['frames']:>7d} {base['fps']:>8.1f} {base['fps'] / ours['fps']:>7.2f}")
    for base in r["baseline"]:
        lines.append(f"speed-up over dlib (upsample {base['upsample']}): {ours['fps'] / base['fps']:.2f}x")
    stages = "  ".join(f"{k} {v:.2f}" for k, v in sorted(ours["ms_per_frame"].items()))
    lines.append(f"our stages, ms per frame (decode runs on its own thread; temporal includes regress): {stages}")
    regress = r["ours"].get("regress_ms_per_face")
    if regress is not None:
        lines.append(f"regressors, ms per face: {regress:.2f}")
    lines.append(f"crops classified per frame {ours['crops_per_frame']:.2f} ({ours['faces_per_frame']:.2f} faces per "
                 f"frame: {ours['crops_per_face']:.2f} crops per face), detector runs {ours['detector_runs']} "
                 f"(on {100 * ours['detector_frame_share']:.1f} % of the frames)")
    lines.append(f"peak RSS after our run {ours['peak_rss_mb']:.0f} MB (whole process)"
                 + (f", CUDA peak {r['cuda_peak_mb']:.0f} MB" if "cuda_peak_mb" in r else ""))
    for h in r.get("hmm", []):
        graph = "the model's graph" if h["model"] else f"synthetic graph built in {h['build_s']:.1f} s"
        how = f"top-{h['prune_top']} pruning" if h["prune_top"] else \
            f"exact, {h['threads'] if h['parallel'] else 1} thread{'s' if h['parallel'] else ''}"
        lines.append(f"HMM decoder alone, K = {h['K']:,}, n = {h['n']} ({h['edges']:,} edges, {graph}), {how}: "
                     f"{h['ms_per_frame']:.2f} ms per frame (median {h['ms_per_frame_median']:.2f}), "
                     f"30-frame window {h['window_mb']:.1f} MB, transitions {h['transitions_mb']:.1f} MB")
    return "\n".join(lines)
