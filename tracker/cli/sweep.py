"""facetrack sweep: a grid of training runs (K x loss, the paper's Fig. 3) from a YAML."""
from __future__ import annotations

from pathlib import Path

from tracker.cli.common import EXIT_OK, TrainingProgress, command_parser, run_command

SUMMARY = "a K x loss grid of training runs (the paper's Fig. 3): table and plot under docs/"


def parser(prog: str = "facetrack sweep"):
    p = command_parser(prog, "Run a K x loss sweep (the paper's Fig. 3) from a YAML.")
    p.add_argument("--config", required=True, help="sweep YAML under configs/sweeps/")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack sweep") -> int:
    return run_command(prog, _sweep, argv)


def _sweep(argv: list[str], prog: str) -> int:
    from tracker.training.sweep import load_sweep, plot_sweep, run_sweep
    args = parser(prog).parse_args(argv)
    base, points, losses, out = load_sweep(args.config)
    results = run_sweep(base, points, losses, out,
                        reporter_factory=lambda run: TrainingProgress(not args.no_progress, prefix=run))
    plot_sweep(results, Path(out) / "sweep.png")
    table = format_sweep(results)
    (Path(out) / "results.md").write_text(table + "\n")
    print(table)
    return EXIT_OK


def format_sweep(results: list[dict]) -> str:
    """A markdown table of the sweep (also readable in a terminal)."""
    lines = ["| run | K | tau | NME argmax | NME top-k | AUC argmax | AUC top-k | class acc | train err |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['run']} | {r['K']} | {r['tau']:.3f} | {r['nme_argmax']:.4f} | {r['nme_topk']:.4f} | "
                     f"{r['auc_argmax']:.3f} | {r['auc_topk']:.3f} | {r['class_acc']:.3f} | {r['train_error']:.3f} |")
    return "\n".join(lines)
