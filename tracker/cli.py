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
