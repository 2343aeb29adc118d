"""facetrack train: train the K-way pose classifier from a YAML config."""
from __future__ import annotations

from pathlib import Path

from .common import EXIT_OK, TrainingProgress, add_overrides, command_parser, parse_overrides, run_command

SUMMARY = "train a pose classifier from a YAML in configs/ (resumable; torchrun for several GPUs)"


def parser(prog: str = "facetrack train"):
    p = command_parser(prog, "Train the K-way pose classifier from a YAML config. Several GPUs: "
                             "torchrun --nproc_per_node=N -m tracker.cli train --config ...")
    p.add_argument("--config", required=True, help="YAML file under configs/")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    add_overrides(p, "train.steps=100")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack train") -> int:
    return run_command(prog, _train, argv)


def _train(argv: list[str], prog: str) -> int:
    from ..config import load_config
    from ..train import train
    args = parser(prog).parse_args(argv)
    cfg = load_config(args.config, parse_overrides(args.set))
    out = Path(args.out or Path("runs") / cfg.name)
    train(cfg, out, resume=args.resume, reporter=TrainingProgress(not args.no_progress))
    print(f"model written to {out / 'model.pt'}")
    return EXIT_OK
