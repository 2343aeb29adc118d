"""facetrack predict: landmarks for every face of every frame, each frame on its own."""
from __future__ import annotations

import argparse

from tracker.cli.common import (
    EXIT_OK,
    add_regressor_switches,
    command_parser,
    frame_progress,
    int_at_least,
    regressor_switches,
    run_command,
)

SUMMARY = "landmarks of every face in images (or each video frame on its own): CSV"


def parser(prog: str = "facetrack predict"):
    p = command_parser(prog, "Landmarks for every face of every frame, found independently per frame (detector, "
                             "calibrated box, K-way classifier, re-crop pass). Writes the landmark CSV; image "
                             "inputs get a 'file' column.")
    p.add_argument("input", help="an image, a folder of images, or a video file")
    p.add_argument("--csv", required=True, help="output CSV ('-' for standard output)")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--detector", default="auto", choices=("auto", "dlib", "haar"),
                   help="auto: dlib's HOG detector, OpenCV's Haar cascade where dlib finds nothing")
    p.add_argument("--fallback", default="auto", choices=("auto", "cnn", "none"),
                   help="where those find no face: dlib's CNN detector (auto: on image inputs when it loads, "
                        "~0.3 s a 256 px image; not on video frames unless 'cnn')")
    p.add_argument("--upsample", type=int_at_least(0), default=1,
                   help="dlib detector upsampling (0 is 4x faster, finds faces over 80 px)")
    p.add_argument("--passes", type=int_at_least(1), default=2,
                   help="classifier passes; each re-crops around the last landmarks (default 2)")
    p.add_argument("--top-k", type=int_at_least(1), default=50, help="classes averaged for the landmarks")
    p.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=True,
                   help="test-time mirroring (the default): the mirrored crop classified and the mirrored face "
                        "regressed too, each averaged; twice the classifier's and the regressors' compute "
                        "(validation AUC 0.780 -> 0.786)")
    p.add_argument("--regressors", default="stills", choices=("stills", "video", "off"),
                   help="the model's cascade for stills (the default: a network stage + trees, where the model "
                        "has one; validation AUC 0.786 -> 0.795), the one `track` uses (trees), or none")
    add_regressor_switches(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "opencv"),
                   help="the network's engine (auto: torch on a GPU, OpenCV's DNN module on the CPU)")
    p.add_argument("--threads", type=int_at_least(1), default=2, help="the network's CPU threads")
    p.add_argument("--spread", action="store_true",
                   help="also each landmark's spread, columns s_0..s_67 (pixels; head pose is always there)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack predict") -> int:
    return run_command(prog, _predict, argv)


def _predict(argv: list[str], prog: str) -> int:
    from tracker.api import Tracker
    from tracker.io.sinks import CsvSink
    from tracker.io.sources import ImageSource, open_source
    from tracker.results import FrameResult
    args = parser(prog).parse_args(argv)
    source = open_source(args.input)
    fallback = "none" if args.fallback == "auto" and not isinstance(source, ImageSource) else args.fallback
    tracker = Tracker(args.model, args.device, temporal=False, threads=args.threads, detector=args.detector,
                      fallback=fallback, upsample=args.upsample, detect_passes=args.passes, top_k=args.top_k,
                      flip_average=args.flip_average, **regressor_switches(args, args.regressors),
                      backend=args.backend)
    extra = ("file",) if isinstance(source, ImageSource) else ()
    total = len(source) if isinstance(source, ImageSource) else source.frame_count
    with CsvSink("/dev/stdout" if args.csv == "-" else args.csv, extra, spread=args.spread) as sink, \
            frame_progress(total, not args.no_progress) as bar:
        for frame in source:
            sink.write(FrameResult(frame, tuple(tracker.predict(frame.image))))
            bar.update(1)
    return EXIT_OK
