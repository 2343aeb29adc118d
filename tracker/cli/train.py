"""facetrack train: train the K-way pose classifier from a YAML config."""
from __future__ import annotations

from pathlib import Path

from tracker.cli.common import EXIT_OK, TrainingProgress, add_overrides, command_parser, parse_overrides, run_command

SUMMARY = "train a pose classifier from a YAML in configs/ (resumable; torchrun for several GPUs)"


def parser(prog: str = "facetrack train"):
    p = command_parser(prog, "Train the K-way pose classifier from a YAML config. Several GPUs: "
                             "torchrun --nproc_per_node=N -m tracker.cli train --config ...")
    p.add_argument("--config", required=True, help="YAML file under configs/")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    add_overrides(p, "train.steps=100")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--memory", action="store_true",
                   help="print the peak memory of one training step of this config (fp32 and bf16 autocast, one "
                        "process) and exit: will it fit a GPU? Measured without training, on fake tensors")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack train") -> int:
    return run_command(prog, _train, argv)


def _train(argv: list[str], prog: str) -> int:
    from tracker.config import load_config
    from tracker.training.classifier import train
    args = parser(prog).parse_args(argv)
    cfg = load_config(args.config, parse_overrides(args.set))
    if args.memory:
        return _print_step_memory(cfg)
    out = Path(args.out or Path("runs") / cfg.name)
    train(cfg, out, resume=args.resume, reporter=TrainingProgress(not args.no_progress))
    print(f"model written to {out / 'model.pt'}")
    return EXIT_OK


def _print_step_memory(cfg) -> int:
    from tracker.training.step_memory import KINDS, class_count, step_peak
    k = class_count(cfg)
    batch = cfg.train.batch_size // cfg.train.accumulate
    members = min(k, 1000)
    print(f"{cfg.name}: K = {k:,} classes, {batch} crops of {cfg.model.crop_size} px per step and process, "
          f"{cfg.model.backbone}, the multi-label loss over membership sets of {members:,} classes per crop, AdamW")
    for amp in (False, True):
        peak = step_peak(cfg.model, k, batch, amp, members)
        parts = ", ".join(f"{name} {peak[kind] / 2**30:.2f}" for name, kind in
                          zip(("parameters", "gradients", "optimizer", "activations", "temporaries"), KINDS))
        print(f"  {'bf16 autocast' if amp else 'fp32':<14} peak {peak['Total'] / 2**30:6.2f} GiB ({parts})")
    print("Tensors only: a CUDA device adds its context (about 0.5 GiB), cuDNN's workspace and the allocator's "
          "slack. Under torchrun each process holds batch_size / processes crops.")
    return EXIT_OK
