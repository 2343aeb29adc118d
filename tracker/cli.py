"""Command-line entry points: argument parsing, messages and exit codes.

This is the only module that prints. Every command returns an exit code:
0 success, 1 unexpected internal error, 2 usage error, 3 bad input,
4 output cannot be written, 5 finished but the input was damaged (unreadable parts
skipped), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import FacetrackError, OutputError, UsageError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_DAMAGED = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def _fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """After the reader of our stdout went away, keep Python's exit flush from complaining."""
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_command(prog: str, body, argv) -> int:
    """Run ``body(argv)`` turning known failures into one line on stderr and an exit code."""
    try:
        return body(argv)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", EXIT_INTERRUPTED)
    except OutputError as exc:
        return _fail(prog, str(exc), EXIT_OUTPUT)
    except UsageError as exc:
        return _fail(prog, str(exc), EXIT_USAGE)
    except FacetrackError as exc:
        return _fail(prog, str(exc), EXIT_INPUT)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except MemoryError:
        return _fail(prog, "out of memory", EXIT_INTERNAL)


# ---------------------------------------------------------------- evaluate

def _evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate",
        description="Score landmark predictions against ground truth (300VW protocol: "
                    "NME by box diagonal and by outer-eye distance, AUC@0.08, failure rate).")
    p.add_argument("--pred", action="append", required=True, metavar="P",
                   help="landmark CSV or folder of .pts; repeat to compare several")
    p.add_argument("--gt", required=True, metavar="G",
                   help="folder of .pts files or a 300VW sequence folder (vid.* + annot/)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="label for each --pred, in order (default: the file name)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="PNG", help="write the CED curves (0 to 0.08) to this image")
    p.add_argument("--hard-fraction", type=float, default=0.1,
                   help="size of the hard subset, frames deviating most from the mean shape")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _format_table(rows: list[dict]) -> str:
    head = f"{'prediction':<24} {'subset':<6} {'NME diag':>9} {'NME io':>9} {'AUC@0.08':>9} {'FR %':>7} {'n':>6} {'missing':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['pred'][:24]:<24} {r['subset']:<6} {r['nme_diag']:>9.4f} {r['nme_io']:>9.4f} "
                     f"{r['auc']:>9.4f} {100 * r['failure_rate']:>7.2f} {r['n']:>6d} {r['missing']:>8d}")
    return "\n".join(lines)


def _evaluate(argv) -> int:
    from .evaluation import evaluate
    args = _evaluate_parser().parse_args(argv)
    names = args.name or []
    if len(names) > len(args.pred):
        raise FacetrackError("more --name than --pred")
    names = names + [Path(p).name for p in args.pred[len(names):]]
    rows, curves = [], []
    for name, pred in zip(names, args.pred):
        scored, summaries = evaluate(pred, args.gt, args.hard_fraction)
        if summaries["all"].missing == summaries["all"].n:
            print(f"evaluate: warning: no prediction in {pred} matches a ground-truth frame", file=sys.stderr)
        rows += [{"pred": name, "subset": subset, **s.as_dict()} for subset, s in summaries.items()]
        curves.append((name, scored.err_diag))
    if args.plot:
        _plot_ced(curves, args.plot)
    if args.json:
        print(json.dumps({"gt": str(args.gt), "threshold": 0.08, "results": rows}, allow_nan=True))
    else:
        print(_format_table(rows))
    return EXIT_OK


def _plot_ced(curves, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from .metrics import auc, ced
    thresholds = np.linspace(0, 0.08, 161)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, errors in curves:
        ax.plot(thresholds, ced(errors, thresholds), label=f"{name} (AUC {auc(errors):.3f})")
    ax.set_xlabel("NME (box diagonal)")
    ax.set_ylabel("fraction of frames")
    ax.set_xlim(0, 0.08)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def evaluate_main(argv: list[str] | None = None) -> int:
    return run_command("evaluate", _evaluate, argv)


# ---------------------------------------------------------------- train

class _TqdmReporter:
    """Progress bar with loss and speed, validation lines above it."""

    def __init__(self, enabled: bool, prefix: str = ""):
        self.enabled = enabled
        self.prefix = prefix
        self.bar = None

    def start(self, total: int, done: int) -> None:
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=done, disable=not self.enabled, unit="step", desc=self.prefix or None,
                        dynamic_ncols=True, file=sys.stderr)

    def step(self, step: int, loss: float, images_per_s: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.0f}")

    def validation(self, step: int, m: dict) -> None:
        self.message(f"step {step}: val NME top-k {m['nme_topk']:.4f} argmax {m['nme_argmax']:.4f} "
                     f"AUC {m['auc_topk']:.3f} FR {100 * m['fr_topk']:.1f}% class acc {m['class_acc']:.3f} "
                     f"train err {m['train_error']:.3f}")

    def message(self, text: str) -> None:
        from tqdm import tqdm
        tqdm.write(f"[{self.prefix}] {text}" if self.prefix else text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", description="Train the K-way pose classifier from a YAML config.")
    p.add_argument("--config", required=True, help="YAML file under configs/")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (YAML syntax), e.g. --set train.steps=100")
    p.add_argument("--no-progress", action="store_true")
    return p


def _parse_overrides(items: list[str]) -> dict:
    """--set SECTION.KEY=VALUE items -> {section: {key: value}} (values in YAML syntax)."""
    import yaml
    overrides: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise FacetrackError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        section, name = key.split(".", 1)
        overrides.setdefault(section, {})[name] = yaml.safe_load(raw)
    return overrides


def _train(argv) -> int:
    from .config import load_config
    from .train import train
    args = _train_parser().parse_args(argv)
    cfg = load_config(args.config, _parse_overrides(args.set))
    out = Path(args.out or Path("runs") / cfg.name)
    train(cfg, out, resume=args.resume, reporter=_TqdmReporter(not args.no_progress))
    print(f"model written to {out / 'model.pt'}")
    return EXIT_OK


def train_main(argv: list[str] | None = None) -> int:
    return run_command("train", _train, argv)



# ---------------------------------------------------------------- predict

def _predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="predict",
        description="Landmarks for every face of every frame, found independently per frame "
                    "(detector, calibrated box, K-way classifier, re-crop pass). Writes the landmark CSV; "
                    "image inputs get a 'file' column.")
    p.add_argument("input", help="an image, a folder of images, or a video file")
    p.add_argument("--csv", required=True, help="output CSV ('-' for standard output)")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--detector", default="auto", choices=("auto", "dlib", "haar"),
                   help="auto: dlib's HOG detector, OpenCV's Haar cascade where dlib finds nothing")
    p.add_argument("--upsample", type=int, default=1, help="dlib detector upsampling (0 is 4x faster, finds faces over 80 px)")
    p.add_argument("--passes", type=int, default=2,
                   help="classifier passes; each re-crops around the last landmarks (default 2)")
    p.add_argument("--top-k", type=int, default=50, help="classes averaged for the landmarks")
    p.add_argument("--flip-average", action="store_true",
                   help="also classify the mirrored crop and average (twice the compute)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _predict(argv) -> int:
    import torch
    from tqdm import tqdm
    from .detect import DetectorUnavailable, detector_chain
    from .io.landmark_csv import LandmarkCsvWriter
    from .io.sources import ImageSource, open_source
    from .landmarker import Landmarker
    from .model import load_model, pick_device
    args = _predict_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    source = open_source(args.input)
    extra = ("file",) if isinstance(source, ImageSource) else ()
    device = pick_device(args.device)
    try:
        detectors = detector_chain(args.detector, upsample=args.upsample)
    except DetectorUnavailable as exc:
        raise FacetrackError(str(exc)) from None
    landmarker = Landmarker(load_model(args.model, device), detectors, device, top_k=args.top_k,
                            passes=args.passes, flip_average=args.flip_average)
    csv_path = "/dev/stdout" if args.csv == "-" else args.csv
    try:
        sink = LandmarkCsvWriter(csv_path, extra_columns=extra).__enter__()
    except FacetrackError as exc:
        raise OutputError(str(exc)) from None
    with sink:
        total = len(source) if isinstance(source, ImageSource) else source.frame_count or None
        for frame in tqdm(source, total=total, disable=args.no_progress, unit="frame", file=sys.stderr):
            faces = [(i, face.confidence, face.landmarks) for i, face in enumerate(landmarker(frame.image))]
            sink.write_frame(frame.index, frame.timestamp, faces, {"file": frame.name})
    return EXIT_OK


def predict_main(argv: list[str] | None = None) -> int:
    return run_command("predict", _predict, argv)


# ---------------------------------------------------------------- track

def _track_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="track",
        description="Follow every face through a video file, an image folder or a webcam and write its "
                    "68 landmarks: CSV, overlay video, live window and/or JSON lines.",
        epilog="exit codes: 0 done, 2 usage, 3 bad input, 4 output not writable, 5 done but the input was "
               "damaged (unreadable parts skipped), 130 interrupted, 143 terminated")
    p.add_argument("input", help="video file, image file, folder of images, or a webcam index (0, 1, ...)")
    p.add_argument("--csv", metavar="CSV", help="landmark CSV, one row per face per frame ('-' for stdout)")
    p.add_argument("-o", "--output", metavar="VIDEO", help="overlay video (.mp4 .mov .mkv .avi .webm)")
    p.add_argument("--show", action="store_true", help="live window with the overlay (q or Esc quits)")
    p.add_argument("--jsonl", metavar="PATH", help="one JSON object per frame ('-' for stdout)")
    p.add_argument("--config", help="tracking YAML (default: built-in values, as in configs/track.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set tracking.batch_size=1")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--no-temporal", action="store_true",
                   help="per-frame estimates only: no HMM over pose classes, no smoothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


class _StopSignals:
    """Ctrl-C and SIGTERM end the run after the frame being written (so no output holds half a
    frame); a second signal stops at once."""

    def __init__(self):
        import signal
        self.received = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt()
        self.received = signum

    @property
    def exit_code(self) -> int:
        import signal
        return EXIT_TERMINATED if self.received == signal.SIGTERM else EXIT_INTERRUPTED


def _track_outputs(args) -> None:
    """Check the chosen outputs before any work starts."""
    from .io.sinks import VIDEO_CODECS, check_writable
    if not (args.csv or args.output or args.show or args.jsonl):
        raise UsageError("choose at least one output: --csv, -o/--output, --show or --jsonl")
    if args.csv == "-" and args.jsonl == "-":
        raise UsageError("--csv - and --jsonl - cannot both use standard output")
    for path in (args.csv, args.output, args.jsonl):
        if path and path != "-" and Path(path).exists() and Path(args.input).exists() \
                and Path(path).resolve() == Path(args.input).resolve():
            raise UsageError(f"{path}: an output would overwrite the input")
    for path in (args.csv, args.jsonl):
        if path and path != "-":
            check_writable(path)
    if args.output:
        check_writable(args.output, tuple(VIDEO_CODECS))


def _open_sinks(args, source, stack) -> tuple[list, list]:
    """(sinks taking results, sinks taking results and the drawn overlay), entered on ``stack``."""
    from .io.sinks import CsvSink, JsonlSink, VideoSink, WindowSink
    from .io.sources import ImageSource
    plain, overlay = [], []
    if args.csv:
        extra = ("file",) if isinstance(source, ImageSource) else ()
        plain.append(stack.enter_context(CsvSink("/dev/stdout" if args.csv == "-" else args.csv, extra)))
    if args.jsonl:
        stream = sys.stdout if args.jsonl == "-" else stack.enter_context(_open_text(args.jsonl))
        plain.append(stack.enter_context(JsonlSink(stream)))
    if args.output:
        overlay.append(stack.enter_context(VideoSink(args.output, fps=source.fps, time_base=source.time_base)))
    if args.show:
        overlay.append(stack.enter_context(WindowSink(f"facetrack: {args.input}")))
    return plain, overlay


def _open_text(path):
    try:
        return open(path, "w")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def build_engine(cfg, model_path=None, device="cpu", temporal=None):
    """The tracking engine for a config (``temporal``: a TemporalConfig when the HMM will run)."""
    from .detect import DetectorUnavailable, detector_chain
    from .engine import Engine
    from .landmarker import Landmarker
    from .model import load_model
    try:
        detectors = detector_chain(cfg.detector, upsample=cfg.upsample)
    except DetectorUnavailable as exc:
        raise FacetrackError(str(exc)) from None
    on = temporal is not None and temporal.enabled
    landmarker = Landmarker(load_model(model_path, device), detectors, device, top_k=cfg.top_k,
                            passes=cfg.detect_passes, keep_log_probs=on)
    return Engine(landmarker, cfg, hold_frames=temporal.hold_frames if on else 0)


def build_temporal(cfg, model, live: bool):
    """The HMM + smoothing stage for a TemporalConfig, or None when it is off.

    Live sources decode with lag 0 and skip the smoothing, which would wait a frame."""
    from .smoothing import HmmStage, TemporalStage, ThreeFrameSmoother
    from .temporal import model_transitions
    if not cfg.enabled:
        return None
    hmm = HmmStage(model_transitions(model, cfg.neighbours), model.templates, model.tau,
                   lag=0 if live else cfg.lag, prune_top=cfg.prune_top)
    return TemporalStage(hmm, ThreeFrameSmoother() if cfg.smoothing and not live else None)


def _track(argv) -> int:
    import dataclasses
    import signal
    from contextlib import ExitStack
    import torch
    from tqdm import tqdm
    from .config import load_track_config
    from .draw import render
    from .io.sinks import StopRequested
    from .io.sources import SourceError, open_source
    from .model import pick_device
    from .pipeline import track_frames
    parser = _track_parser()
    if not argv:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    _track_outputs(args)
    config = load_track_config(args.config, _parse_overrides(args.set))
    cfg = config.tracking
    temporal_cfg = dataclasses.replace(config.temporal, enabled=False) if args.no_temporal else config.temporal
    torch.set_num_threads(cfg.threads)
    stop = _StopSignals()
    source = open_source(args.input, cfg.decode_threads)
    engine = build_engine(cfg, args.model, pick_device(args.device), temporal_cfg)
    temporal = build_temporal(temporal_cfg, engine.landmarker.model, source.live)
    latency = cfg.latency or source.live
    done = 0

    def write(result) -> None:
        nonlocal done
        image = render(result) if overlay else None
        for sink in plain:
            sink.write(result)
        for sink in overlay:
            sink.write(result, image)
        done = result.frame.index
        bar.update(1)

    with ExitStack() as stack:
        plain, overlay = _open_sinks(args, source, stack)
        bar = stack.enter_context(tqdm(total=source.frame_count or None, disable=args.no_progress, unit="frame",
                                       file=sys.stderr, dynamic_ncols=True, smoothing=0.1))
        try:
            for result in track_frames(source, engine, cfg.batch_size, cfg.queue_size, latency, temporal):
                write(result)
                if stop.received is not None:
                    break
            if stop.received is not None:
                _write_held_frames(temporal, write)
        except StopRequested:
            pass
        except KeyboardInterrupt:           # a second Ctrl-C: stop now
            stop.received = stop.received or signal.SIGINT
        except SourceError as exc:
            _write_held_frames(temporal, write)
            bar.close()
            if done == 0:
                raise
            return _fail("track", f"{exc} (after frame {done}; the outputs hold frames 1-{done})", EXIT_INPUT)
        if stop.received is not None:
            bar.close()
            code = stop.exit_code
            return _fail("track", f"{'terminated' if code == EXIT_TERMINATED else 'interrupted'} after frame "
                                  f"{done}; the outputs hold frames 1-{done}", code)
    if source.damage:
        print(f"track: warning: {args.input}: {source.damage}; every readable frame was processed "
              f"({done} frames)", file=sys.stderr)
        return EXIT_DAMAGED
    return EXIT_OK


def _write_held_frames(temporal, write) -> None:
    """Frames the temporal stage still holds, decided now and written (after a stop or a failure)."""
    if temporal is None:
        return
    try:
        for result in temporal.drain():
            write(result)
    except (KeyboardInterrupt, OSError, FacetrackError):
        pass


def track_main(argv: list[str] | None = None) -> int:
    import signal
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run_command("track", _track, sys.argv[1:] if argv is None else argv)
    finally:
        for sig, handler in handlers.items():     # in-process callers (tests) get their handlers back
            signal.signal(sig, handler)


# ---------------------------------------------------------------- bench

def _bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench",
        description="Frames per second of our tracker and of the dlib baseline (HOG detector + 68-point "
                    "shape predictor on every frame) on one clip, in one process; per-stage times, peak memory.")
    p.add_argument("clip", nargs="?", help="video file (default: the bundled sample clip)")
    p.add_argument("--frames", type=int, help="stop after this many frames (default: the whole clip)")
    p.add_argument("--config", help="tracking YAML (default: built-in values)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--batch-sizes", default="", metavar="N,N,...",
                   help="also run ours at these batch sizes (e.g. 8,64,256 on a GPU)")
    p.add_argument("--baseline-upsample", default="1,0", metavar="U,U",
                   help="dlib detector upsampling for the baseline runs (1 is dlib's documented example)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--hmm-states", default="10000,140000", metavar="K,K",
                   help="also time the HMM decoder alone at these numbers of states (n from the config; '' skips)")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _int_list(text: str, what: str, low: int = 0) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if any(v < low for v in values):
        raise UsageError(f"{what}: every value must be at least {low}, got {text!r}")
    return values


def _bench(argv) -> int:
    import dataclasses
    import torch
    from .bench import peak_rss_mb, run_dlib_baseline, run_tracker, scratch_csv
    from .config import load_track_config
    from .model import DEFAULT_MODEL, pick_device
    args = _bench_parser().parse_args(argv)
    batch_sizes = _int_list(args.batch_sizes, "--batch-sizes", low=1)
    upsamples = _int_list(args.baseline_upsample, "--baseline-upsample")
    hmm_states = _int_list(args.hmm_states, "--hmm-states", low=2)
    if args.frames is not None and args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    clip = args.clip or str(DEFAULT_MODEL.parents[1] / "sample" / "vid.mp4")
    config = load_track_config(args.config, _parse_overrides(args.set))
    cfg = config.tracking
    torch.set_num_threads(cfg.threads)
    device = pick_device(args.device)
    engine = build_engine(cfg, args.model, device, config.temporal)

    def temporal():
        return build_temporal(config.temporal, engine.landmarker.model, live=False)
    run_tracker(clip, engine, cfg, scratch_csv("warmup"), max_frames=16, temporal=temporal())   # first-call costs
    report = {"clip": clip, "device": str(device), "threads": torch.get_num_threads(),
              "config": dataclasses.asdict(cfg), "temporal": dataclasses.asdict(config.temporal),
              "ours": run_tracker(clip, engine, cfg, scratch_csv("ours"), args.frames, temporal())}
    report["ours_runs"] = []
    for size in batch_sizes:
        variant = dataclasses.replace(cfg, batch_size=size, latency=False)
        engine.cfg = variant
        report["ours_runs"].append({"batch_size": size, **run_tracker(clip, engine, variant, scratch_csv("ours"),
                                                                      args.frames, temporal())})
    if device.type == "cuda":
        report["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    report["baseline"] = [] if args.no_baseline else [
        run_dlib_baseline(clip, scratch_csv(f"dlib{u}"), u, args.frames)
        for u in upsamples]
    report["hmm"] = _bench_decoder(engine.landmarker.model, config.temporal, hmm_states)
    report["peak_rss_mb_end"] = peak_rss_mb()
    print(json.dumps(report, indent=1) if args.json else _format_bench(report))
    return EXIT_OK


def _bench_decoder(model, cfg, sizes: list[int]) -> list[dict]:
    """The HMM decoder alone: the model's own graph, then synthetic graphs of the given
    sizes, each exact and (when the config prunes) with the config's top-M pruning."""
    from .temporal import decode_benchmark, model_transitions
    prunes = [None] + ([cfg.prune_top] if cfg.prune_top else [])
    own = model_transitions(model, cfg.neighbours)
    rows = [decode_benchmark(own.num_states, cfg.neighbours, lag=30, prune_top=m, transitions=own) for m in prunes]
    return rows + [decode_benchmark(k, cfg.neighbours, lag=30, prune_top=m) for k in sizes for m in prunes]


def _format_bench(r: dict) -> str:
    ours = r["ours"]
    mode = "latency (1 frame per call)" if r["config"]["latency"] else f"batch {r['config']['batch_size']}"
    lines = [f"clip {r['clip']}  device {r['device']}  torch threads {r['threads']}  {mode}",
             f"{'run':<44} {'frames':>7} {'fps':>8} {'ratio':>7}",
             f"{'facetrack (decode thread + tracker + CSV)':<44} {ours['frames']:>7d} {ours['fps']:>8.1f} {'1.00':>7}"]
    for run in r.get("ours_runs", []):
        lines.append(f"{'facetrack, batch ' + str(run['batch_size']):<44} {run['frames']:>7d} {run['fps']:>8.1f} "
                     f"{run['fps'] / ours['fps']:>7.2f}")
    for base in r["baseline"]:
        name = f"dlib HOG (upsample {base['upsample']}) + 68-pt predictor"
        lines.append(f"{name:<44} {base['frames']:>7d} {base['fps']:>8.1f} {base['fps'] / ours['fps']:>7.2f}")
    for base in r["baseline"]:
        lines.append(f"speed-up over dlib (upsample {base['upsample']}): {ours['fps'] / base['fps']:.2f}x")
    stages = "  ".join(f"{k} {v:.2f}" for k, v in sorted(ours["ms_per_frame"].items()))
    lines.append(f"our stages, ms per frame (decode runs on its own thread): {stages}")
    lines.append(f"crops classified per frame {ours['crops_per_frame']:.2f}, detector runs {ours['detector_runs']}")
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


def bench_main(argv: list[str] | None = None) -> int:
    return run_command("bench", _bench, argv)


# ---------------------------------------------------------------- sweep

def _sweep(argv) -> int:
    from .sweep import load_sweep, plot_sweep, run_sweep
    p = argparse.ArgumentParser(prog="sweep", description="Run a K x loss sweep (the paper's Fig. 3) from a YAML.")
    p.add_argument("--config", required=True, help="sweep YAML under configs/sweeps/")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    base, points, losses, out = load_sweep(args.config)
    results = run_sweep(base, points, losses, out,
                        reporter_factory=lambda run: _TqdmReporter(not args.no_progress, prefix=run))
    plot_sweep(results, Path(out) / "sweep.png")
    table = _format_sweep(results)
    (Path(out) / "results.md").write_text(table + "\n")
    print(table)
    return EXIT_OK


def _format_sweep(results: list[dict]) -> str:
    """A markdown table of the sweep (also readable in a terminal)."""
    lines = ["| run | K | tau | NME argmax | NME top-k | AUC argmax | AUC top-k | class acc | train err |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['run']} | {r['K']} | {r['tau']:.3f} | {r['nme_argmax']:.4f} | {r['nme_topk']:.4f} | "
                     f"{r['auc_argmax']:.3f} | {r['auc_topk']:.3f} | {r['class_acc']:.3f} | {r['train_error']:.3f} |")
    return "\n".join(lines)


def sweep_main(argv: list[str] | None = None) -> int:
    return run_command("sweep", _sweep, argv)


# ---------------------------------------------------------------- calibrate

def _calibrate(argv) -> int:
    from .config import config_from_dict
    from .data import load_faces, split_by_photo
    from .model import DEFAULT_MODEL, load_model
    from .config import TemporalConfig
    from .temporal import pose_transitions
    from .train import calibrate_detectors, calibrate_landmark_boxes
    p = argparse.ArgumentParser(prog="calibrate",
                                description="Fit every available detector's box calibration on the model's "
                                            "training split, and the box of the model's own estimates on its "
                                            "validation split; build the HMM's pose-neighbour transitions; "
                                            "store them in the model file.")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model file to update (default: the packaged one)")
    p.add_argument("--out", help="write the updated model here instead of in place")
    args = p.parse_args(argv)
    model = load_model(args.model)
    cfg = config_from_dict(model.config)
    faces, val_faces = split_by_photo(load_faces(cfg.data.root, cfg.data.train_sets), cfg.data.val_fraction,
                                      cfg.data.split_seed)
    model.calibration, model.meta["calibration_fit"] = calibrate_detectors(faces)
    model.calibration["landmarks"], model.meta["calibration_fit"]["landmarks"] = \
        calibrate_landmark_boxes(model, val_faces)
    model.transitions = pose_transitions(model.templates, TemporalConfig().neighbours).to_dict()
    out = args.out or args.model
    try:
        model.save(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    for name, stats in model.meta["calibration_fit"].items():
        print(f"{name}: {json.dumps(stats)}")
    return EXIT_OK


def calibrate_main(argv: list[str] | None = None) -> int:
    return run_command("calibrate", _calibrate, argv)


COMMANDS = {"evaluate": evaluate_main, "train": train_main, "predict": predict_main, "sweep": sweep_main,
            "calibrate": calibrate_main, "track": track_main, "bench": bench_main}

if __name__ == "__main__":   # python -m tracker.cli COMMAND ... (used by torchrun)
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m tracker.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    raise SystemExit(COMMANDS[sys.argv[1]](sys.argv[2:]))
