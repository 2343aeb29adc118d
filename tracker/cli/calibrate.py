"""facetrack calibrate: refit a model's detector box calibrations and HMM transitions."""
from __future__ import annotations

import json

from tracker.cli.common import EXIT_OK, command_parser, run_command
from tracker.errors import OutputError, UsageError

SUMMARY = "refit a model's detector box calibrations and HMM transitions on its training split"


def parser(prog: str = "facetrack calibrate"):
    p = command_parser(prog, "Fit every available detector's box calibration on the model's training split, and "
                             "the box of the model's own estimates on its validation split; build the HMM's "
                             "pose-neighbour transitions; store them in the model file.")
    p.add_argument("--model", help="model file to update (default: the packaged one)")
    p.add_argument("--detectors", help="comma-separated detectors to refit (e.g. cnn), leaving the rest of the "
                                       "file as it is (default: refit everything)")
    p.add_argument("--confidence", action="store_true",
                   help="only fit the confidence calibration (the probability that a face is within the failure "
                        "threshold) on the validation split, to NAME.confidence.json beside the model (or --out)")
    p.add_argument("--out", help="write the updated model here instead of in place")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack calibrate") -> int:
    return run_command(prog, _calibrate, argv)


def _calibrate(argv: list[str], prog: str) -> int:
    from tracker.classifier.model import DEFAULT_MODEL, load_model
    from tracker.config import TemporalConfig, config_from_dict
    from tracker.detection.detectors import DETECTOR_NAMES
    from tracker.temporal.hmm import pose_transitions
    from tracker.training.calibration import calibrate_detectors, calibrate_landmark_boxes
    from tracker.training.data import load_faces, split_by_photo
    args = parser(prog).parse_args(argv)
    args.model = args.model or str(DEFAULT_MODEL)
    model = load_model(args.model)
    cfg = config_from_dict(model.config)
    faces, val_faces = split_by_photo(load_faces(cfg.data.root, cfg.data.train_sets), cfg.data.val_fraction,
                                      cfg.data.split_seed)
    if args.confidence:
        return _calibrate_confidence(model, val_faces, args.out or args.model)
    if args.detectors:
        names = [n.strip() for n in args.detectors.split(",") if n.strip()]
        unknown = sorted(set(names) - set(DETECTOR_NAMES))
        if unknown:
            raise UsageError(f"unknown detector {unknown[0]!r}; choose from {', '.join(DETECTOR_NAMES)}")
        fitted, stats = calibrate_detectors(faces, names)
        model.calibration.update(fitted)
        model.meta.setdefault("calibration_fit", {}).update(stats)
    else:
        model.calibration, model.meta["calibration_fit"] = calibrate_detectors(faces)
        model.calibration["landmarks"], model.meta["calibration_fit"]["landmarks"] = \
            calibrate_landmark_boxes(model, val_faces)
        model.transitions = pose_transitions(model.templates, TemporalConfig().neighbours).to_dict()
    out = args.out or args.model
    try:
        model.save(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    fits = model.meta["calibration_fit"]
    for name in names if args.detectors else fits:
        print(f"{name}: {json.dumps(fits[name])}")
    return EXIT_OK


def _calibrate_confidence(model, val_faces, model_path) -> int:
    """Fit and write the confidence calibration; print its fit statistics."""
    import numpy as np
    import torch

    from tracker.classifier.model import confidence_path
    from tracker.distribution.confidence import roc_auc
    from tracker.inference.landmarker import Landmarker
    from tracker.training.calibration import confidence_examples, fit_logistic
    torch.set_num_threads(1)
    model.confidence = None
    features, success, errors = confidence_examples(Landmarker(model), val_faces)
    calibration = fit_logistic(features, success)
    prob = calibration.probability(features)
    calibration.stats = {"faces": len(val_faces), "examples": int(len(success)),
                         "failure_rate": float(1 - success.mean()), "roc_auc_in_sample": roc_auc(prob, success),
                         "brier": float(np.mean((prob - success) ** 2))}
    path = confidence_path(model_path)
    try:
        calibration.save(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"confidence: {json.dumps(calibration.stats)} -> {path}")
    return EXIT_OK
