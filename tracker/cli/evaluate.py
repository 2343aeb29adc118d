"""facetrack evaluate: score landmark predictions against ground truth (300VW protocol)."""
from __future__ import annotations

import json
from pathlib import Path

from tracker.cli.common import EXIT_OK, command_parser, run_command, warn
from tracker.errors import FacetrackError, OutputError

SUMMARY = "score predictions against ground truth: NME, AUC@0.08, failure rate, CED plot"


def parser(prog: str = "facetrack evaluate"):
    p = command_parser(prog, "Score landmark predictions against ground truth (300VW protocol: NME by box "
                             "diagonal and by outer-eye distance, AUC@0.08, failure rate).")
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
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack evaluate") -> int:
    return run_command(prog, _evaluate, argv)


def _evaluate(argv: list[str], prog: str) -> int:
    from tracker.evaluation.scoring import evaluate
    args = parser(prog).parse_args(argv)
    names = args.name or []
    if len(names) > len(args.pred):
        raise FacetrackError("more --name than --pred")
    names = names + [Path(p).name for p in args.pred[len(names):]]
    rows, curves = [], []
    for name, pred in zip(names, args.pred):
        scored, summaries = evaluate(pred, args.gt, args.hard_fraction)
        if summaries["all"].missing == summaries["all"].n:
            warn(prog, f"no prediction in {pred} matches a ground-truth frame")
        rows += [{"pred": name, "subset": subset, **s.as_dict()} for subset, s in summaries.items()]
        curves.append((name, scored.err_diag))
    if args.plot:
        _plot_ced(curves, args.plot)
    if args.json:
        print(json.dumps({"gt": str(args.gt), "threshold": 0.08, "results": rows}, allow_nan=True))
    else:
        print(_format_table(rows))
    return EXIT_OK


def _format_table(rows: list[dict]) -> str:
    head = (f"{'prediction':<24} {'subset':<6} {'NME diag':>9} {'NME io':>9} {'AUC@0.08':>9} {'FR %':>7} {'n':>6} "
            f"{'missing':>8} {'jitter':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['pred'][:24]:<24} {r['subset']:<6} {r['nme_diag']:>9.4f} {r['nme_io']:>9.4f} "
                     f"{r['auc']:>9.4f} {100 * r['failure_rate']:>7.2f} {r['n']:>6d} {r['missing']:>8d} "
                     f"{'' if r['jitter'] != r['jitter'] else format(r['jitter'], '.5f'):>8}")
    return "\n".join(lines)


def _plot_ced(curves, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tracker.evaluation.metrics import auc, ced
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
