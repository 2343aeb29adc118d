"""facetrack fit: fit the regressors (and the box refinement) that follow a classifier model, from a YAML config."""
from __future__ import annotations

import time
from pathlib import Path

from tracker.cli.common import EXIT_OK, add_overrides, command_parser, parse_overrides, run_command

SUMMARY = "fit a model's cascaded regressors and box refinement from a YAML in configs/ (renamed from refine)"


def parser(prog: str = "facetrack fit"):
    p = command_parser(prog, "Fit the per-class cascaded regressors of a classifier model (and, for role video, "
                             "its box refinement). The result goes to runs/<config name>/ (cascade, log); "
                             "--install also writes it beside the model as NAME.regressors.pt (the config's role: "
                             "video, where track and predict load it) or NAME.stills.regressors.pt (role: stills, "
                             "predict's cascade).")
    p.add_argument("--config", required=True, help="YAML file under configs/ (e.g. configs/regressors-default.yaml)")
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--install", action="store_true", help="also write the regressors beside the model file")
    p.add_argument("--no-cache", action="store_true",
                   help="fit the box refinement and build the examples afresh (default: reuse runs/cache/)")
    add_overrides(p, "cascade.trees=50")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack fit") -> int:
    return run_command(prog, _fit, argv)


def _fit(argv: list[str], prog: str) -> int:
    import torch

    from tracker.classifier.model import DEFAULT_MODEL, load_model, regressors_path, save_regressors
    from tracker.config import load_fit_config
    from tracker.detection.detectors import detector_chain
    from tracker.inference.landmarker import Landmarker
    from tracker.training.regressors import fit_regressors, jsonl_logger
    args = parser(prog).parse_args(argv)
    cfg = load_fit_config(args.config, parse_overrides(args.set))
    torch.set_num_threads(1)        # the classifier runs beside Numba's threads
    model_path = DEFAULT_MODEL if cfg.model == "default" else Path(cfg.model)
    model = load_model(model_path)
    out = Path(args.out or Path("runs") / cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    log = jsonl_logger(out / "log.jsonl")
    began = time.perf_counter()
    cascade, box_refiner = fit_regressors(cfg, Landmarker(model, detector_chain("auto"), regressors="off", box_refinement=False), model_path,
                                         log=log, cache=None if args.no_cache else Path("runs") / "cache")
    box_refiner = box_refiner if cfg.role == "video" else None      # the video file's is the one used
    written = save_regressors(out / "model.pt", cascade, box_refiner, cfg.role)
    log({"seconds": round(time.perf_counter() - began, 1), "trees": cascade.n_trees, "written": str(written)})
    if args.install:
        print(f"regressors installed at {save_regressors(model_path, cascade, box_refiner, cfg.role)}")
    else:
        print(f"regressors written to {written}; to use them: cp {written} {regressors_path(model_path, cfg.role)}")
    return EXIT_OK
