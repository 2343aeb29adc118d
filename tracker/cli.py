"""Command-line entry points: argument parsing, messages and exit codes.

This is the only module that prints. Every command returns an exit code:
0 success, 1 unexpected internal error, 2 usage error, 3 bad input,
4 output cannot be written, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import FacetrackError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class OutputError(FacetrackError):
    """A result file that cannot be written."""


def _fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def run_command(prog: str, body, argv) -> int:
    """Run ``body(argv)`` turning known failures into one line on stderr and an exit code."""
    try:
        return body(argv)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted", EXIT_INTERRUPTED)
    except OutputError as exc:
        return _fail(prog, str(exc), EXIT_OUTPUT)
    except FacetrackError as exc:
        return _fail(prog, str(exc), EXIT_INPUT)
    except BrokenPipeError:
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
            faces = landmarker(frame.image)
            for face_id, face in enumerate(faces):
                sink.write(frame.index, face_id, frame.timestamp, face.confidence, face.landmarks, {"file": frame.name})
            if not faces:
                sink.write(frame.index, -1, frame.timestamp, 0.0, None, {"file": frame.name})
    return EXIT_OK


def predict_main(argv: list[str] | None = None) -> int:
    return run_command("predict", _predict, argv)


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
    from .train import calibrate_detectors
    p = argparse.ArgumentParser(prog="calibrate",
                                description="Fit every available detector's box calibration on the model's "
                                            "training split and store it in the model file.")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model file to update (default: the packaged one)")
    p.add_argument("--out", help="write the updated model here instead of in place")
    args = p.parse_args(argv)
    model = load_model(args.model)
    cfg = config_from_dict(model.config)
    faces, _ = split_by_photo(load_faces(cfg.data.root, cfg.data.train_sets), cfg.data.val_fraction, cfg.data.split_seed)
    model.calibration, model.meta["calibration_fit"] = calibrate_detectors(faces)
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
            "calibrate": calibrate_main}

if __name__ == "__main__":   # python -m tracker.cli COMMAND ... (used by torchrun)
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m tracker.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    raise SystemExit(COMMANDS[sys.argv[1]](sys.argv[2:]))
