"""facetrack refine: fit the regressors that follow a classifier model, from a YAML config."""
from __future__ import annotations

import time
from pathlib import Path

from .common import EXIT_OK, add_overrides, command_parser, parse_overrides, run_command

SUMMARY = "fit a model's cascaded regressors from a YAML in configs/ (written beside the model)"


def parser(prog: str = "facetrack refine"):
    p = command_parser(prog, "Fit the per-class cascaded regressors of a classifier model. The result "
                             "goes to runs/<config name>/ (cascade, log); --install also writes it beside "
                             "the model as NAME.refine.pt (the config's role: video, where track and predict "
                             "load it) or NAME.stills.refine.pt (role: stills, predict's cascade).")
    p.add_argument("--config", required=True, help="YAML file under configs/ (e.g. configs/refine-default.yaml)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--install", action="store_true", help="also write the regressors beside the model file")
    p.add_argument("--no-cache", action="store_true",
                   help="fit the detection refinement and build the examples afresh (default: reuse runs/cache/)")
    add_overrides(p, "cascade.trees=50")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack refine") -> int:
    return run_command(prog, _refine, argv)


def _refine(argv: list[str], prog: str) -> int:
    import torch
    from ..config import load_refine_config
    from ..detect import detector_chain
    from ..landmarker import Landmarker
    from ..model import DEFAULT_MODEL, load_model, refine_path, save_refiners
    from ..refine_train import fit_refiner, jsonl_logger
    args = parser(prog).parse_args(argv)
    cfg = load_refine_config(args.config, parse_overrides(args.set))
    torch.set_num_threads(1)        # the classifier runs beside Numba's threads
    model_path = DEFAULT_MODEL if cfg.model == "default" else Path(cfg.model)
    model = load_model(model_path)
    out = Path(args.out or Path("runs") / cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    log = jsonl_logger(out / "log.jsonl")
    began = time.perf_counter()
    cascade, box_refiner = fit_refiner(cfg, Landmarker(model, detector_chain("auto"), refine=False), model_path, log=log,
                                       cache=None if args.no_cache else Path("runs") / "cache")
    box_refiner = box_refiner if cfg.role == "video" else None      # the video file's is the one used
    written = save_refiners(out / "model.pt", cascade, box_refiner, cfg.role)
    log({"seconds": round(time.perf_counter() - began, 1), "trees": cascade.n_trees, "written": str(written)})
    if args.install:
        print(f"regressors installed at {save_refiners(model_path, cascade, box_refiner, cfg.role)}")
    else:
        print(f"regressors written to {written}; to use them: cp {written} {refine_path(model_path, cfg.role)}")
    return EXIT_OK
