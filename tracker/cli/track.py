"""facetrack track: follow every face through a video, an image folder or a webcam."""
from __future__ import annotations

import signal
import sys
from contextlib import ExitStack
from pathlib import Path

from tracker.cli.common import (
    EXIT_DAMAGED,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    StopSignals,
    add_overrides,
    add_regressor_switches,
    command_parser,
    fail,
    frame_progress,
    parse_overrides,
    regressor_switches,
    run_command,
    warn,
)
from tracker.errors import FacetrackError, OutputError, UsageError

SUMMARY = "follow every face through a video, image folder or webcam: CSV, overlay video, window, JSON lines"


def parser(prog: str = "facetrack track"):
    p = command_parser(prog, "Follow every face through a video file, an image folder or a webcam and write its "
                             "68 landmarks: CSV, overlay video, live window and/or JSON lines.")
    p.add_argument("input", help="video file, image file, folder of images, or a webcam index (0, 1, ...)")
    p.add_argument("--csv", metavar="CSV", help="landmark CSV, one row per face per frame ('-' for stdout)")
    p.add_argument("-o", "--output", metavar="VIDEO", help="overlay video (.mp4 .mov .mkv .avi .webm)")
    p.add_argument("--show", action="store_true", help="live window with the overlay (q or Esc quits)")
    p.add_argument("--jsonl", metavar="PATH", help="one JSON object per frame ('-' for stdout)")
    p.add_argument("--spread", action="store_true",
                   help="also each landmark's spread (pixels, one standard deviation): columns s_0..s_67 in "
                        "--csv, 'spread' in --jsonl (head pose yaw/pitch/roll with their std is always there)")
    p.add_argument("--draw-uncertainty", nargs="?", const="circles", choices=("circles", "heatmap"),
                   help="overlay (-o, --show): each face's head-pose gauge and, for its landmarks, a circle of "
                        "one standard deviation (circles, the default) or the heat map of where each may be")
    p.add_argument("--config", help="tracking YAML (default: built-in values, as in configs/track.yaml)")
    add_overrides(p, "tracking.batch_size=1")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--no-temporal", action="store_true",
                   help="per-frame estimates only: no HMM over pose classes, no smoothing")
    add_regressor_switches(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack track") -> int:
    return run_command(prog, _track, argv)


def _track(argv: list[str], prog: str) -> int:
    from tracker.config import load_track_config
    p = parser(prog)
    if not argv:
        p.print_usage(sys.stderr)
        return EXIT_USAGE
    args = p.parse_args(argv)
    check_outputs(args)
    config = load_track_config(args.config, parse_overrides(args.set))
    with StopSignals() as stop:
        return _run(args, config, stop, prog)


def _run(args, config, stop: StopSignals, prog: str) -> int:
    from tracker.api import Tracker
    from tracker.io.draw import render
    from tracker.io.sinks import StopRequested
    from tracker.io.sources import SourceError, open_source
    source = open_source(args.input, config.tracking.decode_threads)       # a bad input fails before the model loads
    switches = {**({"temporal": False} if args.no_temporal else {}), **regressor_switches(args)}
    tracker = Tracker(args.model, args.device, config=config, **switches)
    done = 0
    heat = tracker.heatmap if args.draw_uncertainty == "heatmap" else None

    def draw(result):
        return render(result, uncertainty=bool(args.draw_uncertainty), heatmap=heat)

    def write(result) -> None:
        nonlocal done
        image = draw(result) if overlay else None
        for sink in plain:
            sink.write(result)
        for sink in overlay:
            sink.write(result, image)
        done = result.index
        bar.update(1)

    with ExitStack() as stack:
        stream = stack.enter_context(tracker.track(source))
        plain, overlay = open_sinks(args, source, stack)
        bar = stack.enter_context(frame_progress(source.frame_count, not args.no_progress))
        try:
            for result in stream:
                write(result)
                if stop.received is not None:
                    break
            if stop.received is not None:
                _write_held_frames(stream, write)
        except StopRequested:
            pass
        except KeyboardInterrupt:           # a second Ctrl-C: stop now
            stop.received = stop.received or signal.SIGINT
        except SourceError as exc:
            _write_held_frames(stream, write)
            bar.close()
            if done == 0:
                raise
            return fail(prog, f"{exc} (after frame {done}; the outputs hold frames 1-{done})", EXIT_INPUT)
        if stop.received is not None:
            bar.close()
            return fail(prog, f"{stop.word} after frame {done}; the outputs hold frames 1-{done}", stop.exit_code)
    if stream.damage:
        warn(prog, f"{args.input}: {stream.damage}; every readable frame was processed ({done} frames)")
        return EXIT_DAMAGED
    return EXIT_OK


def check_outputs(args) -> None:
    """Check the chosen outputs before any work starts."""
    from tracker.io.sinks import VIDEO_CODECS, check_writable
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


def open_sinks(args, source, stack: ExitStack) -> tuple[list, list]:
    """(sinks taking results, sinks taking results and the drawn overlay), entered on ``stack``."""
    from tracker.io.sinks import CsvSink, JsonlSink, VideoSink, WindowSink
    from tracker.io.sources import ImageSource
    plain, overlay = [], []
    if args.csv:
        extra = ("file",) if isinstance(source, ImageSource) else ()
        plain.append(stack.enter_context(CsvSink("/dev/stdout" if args.csv == "-" else args.csv, extra,
                                                     spread=args.spread)))
    if args.jsonl:
        stream = sys.stdout if args.jsonl == "-" else stack.enter_context(_open_text(args.jsonl))
        plain.append(stack.enter_context(JsonlSink(stream, spread=args.spread)))
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


def _write_held_frames(stream, write) -> None:
    """Frames the temporal stage still holds, decided now and written (after a stop or a failure)."""
    try:
        for result in stream.finish():
            write(result)
    except (KeyboardInterrupt, OSError, FacetrackError):
        pass
