"""A saved pose-classification model and how it is loaded.

A saved model (``.pt``) bundles the network weights (fp16), the pose-class templates,
per-class widths, tau, the detector calibration and the config it was trained with. It
loads for one of two backends: ``torch`` (the network of :mod:`tracker.classifier.network`, for
training and GPUs) or ``opencv`` (the same network on ``cv2.dnn``, :mod:`tracker.classifier.opencv_network`:
CPU inference without importing torch, read by :mod:`tracker.classifier.checkpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tracker.classifier.inputs import PIXEL_MEAN_BGR, PIXEL_STD_BGR
from tracker.config import ModelConfig
from tracker.errors import FacetrackError, ModelError

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model" / "default.pt"

@dataclass
class LandmarkModel:
    """Everything needed at test time, as saved in a model file."""

    network: object                     # tracker.classifier.network.PoseClassifier (torch) or tracker.classifier.opencv_network.CvClassifier
    config: dict                        # the full training config, as a dict
    templates: np.ndarray               # (K, 68, 2) float32, canonical box frame
    widths: np.ndarray                  # (K,) float32, spherical Gaussian sigma per class
    tau: float
    calibration: dict = field(default_factory=dict)   # detector name -> BoxCalibration.to_dict()
    meta: dict = field(default_factory=dict)
    transitions: dict | None = None     # HMM pose-neighbour graph: indptr, indices, log_weight, n, sigma
    cascade: object | None = None       # tracker.regressors.cascade.ShapeCascade from the companion .regressors.pt file
    box_refiner: object | None = None   # tracker.detection.box_refinement.BoxRefiner from the same file
    confidence: object | None = None    # tracker.distribution.confidence.ConfidenceCalibration from NAME.confidence.json
    path: Path | None = None            # the file it was loaded from (its companion files lie beside it)
    _stills: object = field(default=None, repr=False)   # the stills cascade, read on first use

    def regressors(self, role: str = "video"):
        """The cascade for ``role``: "video" (NAME.regressors.pt's, read at load) or "stills"
        (NAME.stills.regressors.pt's, read on first use; the video cascade where there is none)."""
        if role not in REGRESSOR_ROLES:
            raise ModelError(f"unknown regressors {role!r} (choose from {', '.join(REGRESSOR_ROLES)})")
        if role == "video" or self.path is None:
            return self.cascade
        if self._stills is None:
            self._stills = load_regressors(self.path, "stills").get("cascade", False)
        return self._stills or self.cascade

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(**self.config["model"])

    @property
    def num_classes(self) -> int:
        return len(self.templates)

    @property
    def backend(self) -> str:
        """"torch" or "opencv": which kind of network this model runs."""
        return "opencv" if getattr(self.network, "backend", "") == "opencv" else "torch"

    def save(self, path) -> None:
        """Write an inference bundle with fp16 weights and templates (torch models only)."""
        import torch
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in self.network.state_dict().items()
                 if k not in ("mean", "std")}
        payload = {
            "format": "facetrack-model-1",
            "config": self.config,
            "state_dict": state,
            "templates": torch.from_numpy(self.templates.astype(np.float16)),
            "widths": torch.from_numpy(self.widths.astype(np.float32)),
            "tau": float(self.tau),
            "calibration": self.calibration,
            "meta": self.meta,
        }
        if self.transitions is not None:
            t = self.transitions
            payload["transitions"] = {"indptr": torch.from_numpy(np.asarray(t["indptr"], np.int64)),
                                      "indices": torch.from_numpy(np.asarray(t["indices"], np.int32)),
                                      "log_weight": torch.from_numpy(np.asarray(t["log_weight"], np.float16)),
                                      "n": int(t["n"]), "sigma": float(t["sigma"])}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)


REGRESSOR_ROLES = ("video", "stills")


def regressors_path(model_path, role: str = "video") -> Path:
    """The companion file of a model that holds its regressors: ``NAME.regressors.pt`` beside
    ``NAME.pt`` (the box refinement and the cascade ``track`` uses), and for ``role``
    "stills" ``NAME.stills.regressors.pt`` (the cascade ``predict`` uses, where there is one).
    A file under the name used before (``NAME.refine.pt``, ``NAME.stills.refine.pt``) is
    read where the new name is absent."""
    new, old = _regressors_names(model_path, role)
    return old if old.is_file() and not new.is_file() else new


def _regressors_names(model_path, role: str) -> tuple[Path, Path]:
    """(the regressors file's name, its name before issue 27) for a model and ``role``."""
    path = Path(model_path)
    infix = "" if role == "video" else f".{role}"
    return path.with_name(f"{path.stem}{infix}.regressors.pt"), path.with_name(f"{path.stem}{infix}.refine.pt")


def confidence_path(model_path) -> Path:
    """The companion file of a model that holds its confidence calibration."""
    path = Path(model_path)
    return path.with_name(path.stem + ".confidence.json")


def load_confidence(model_path):
    """The confidence calibration stored beside a model, or None."""
    path = confidence_path(model_path)
    if not path.is_file():
        return None
    from tracker.distribution.confidence import ConfidenceCalibration
    try:
        return ConfidenceCalibration.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a facetrack confidence calibration ({exc})") from None


def save_regressors(model_path, cascade=None, box_refiner=None, role: str = "video") -> Path:
    """Write a model's regressors (cascade, box refinement) to its companion file for ``role``."""
    import torch
    path = _regressors_names(model_path, role)[0]
    torch.save({"format": "facetrack-refine-1", "cascade": None if cascade is None else cascade.to_dict(),
                "box": None if box_refiner is None else box_refiner.to_dict()}, path)
    return path


def _read_payload(path: Path, format_name: str, what: str) -> dict:
    """A torch file's dict (tensors as NumPy arrays, read without torch), checked to be of
    ``format_name``; ``what`` names it in errors."""
    from tracker.classifier.checkpoint import CheckpointError, read_checkpoint
    try:
        payload = read_checkpoint(path)
    except CheckpointError as exc:
        raise ModelError(f"{path}: not {what} ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != format_name:
        raise ModelError(f"{path}: not {what}")
    return payload


def load_regressors(model_path, role: str = "video") -> dict:
    """The regressors stored beside a model for ``role``: {"cascade": ShapeCascade, "box": BoxRefiner},
    where present."""
    path = regressors_path(model_path, role)
    if not path.is_file():
        return {}
    payload = _read_payload(path, "facetrack-refine-1", "a facetrack regressor file")
    from tracker.detection.box_refinement import BoxRefiner
    from tracker.regressors.cascade import ShapeCascade
    out = {}
    if payload.get("cascade") is not None:
        out["cascade"] = ShapeCascade.from_dict(payload["cascade"])
    if payload.get("box") is not None:
        out["box"] = BoxRefiner.from_dict(payload["box"])
    return out


BACKENDS = ("torch", "opencv")


def load_model(path=None, device="cpu", backend: str = "torch") -> LandmarkModel:
    """Load a saved model (the packaged default when ``path`` is None), with the
    regressors of its companion ``.regressors.pt`` file when there is one. ``backend``: "torch"
    (on ``device``) or "opencv" (CPU, :class:`tracker.classifier.opencv_network.CvClassifier`; torch is not imported)."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    path = Path(path) if path else DEFAULT_MODEL
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    payload = _read_payload(path, "facetrack-model-1", "a facetrack model")
    templates = np.asarray(payload["templates"], np.float32)
    cfg = ModelConfig(**payload["config"]["model"])
    state = {k: np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
             for k, v in payload["state_dict"].items()}
    net = _opencv_network(cfg, state) if backend == "opencv" else _torch_network(cfg, state, len(templates), device)
    stored = payload.get("transitions")
    transitions = None if stored is None else {
        "indptr": np.asarray(stored["indptr"]), "indices": np.asarray(stored["indices"]),
        "log_weight": np.asarray(stored["log_weight"], np.float32), "n": int(stored["n"]),
        "sigma": float(stored["sigma"])}
    return LandmarkModel(network=net, config=payload["config"], templates=templates,
                         widths=np.asarray(payload["widths"], np.float32), tau=payload["tau"],
                         calibration=_calibrations(payload.get("calibration")), meta=payload.get("meta", {}),
                         transitions=transitions, confidence=load_confidence(path), path=path,
                         **_regressor_fields(load_regressors(path)))


def _torch_network(cfg: ModelConfig, state: dict, num_classes: int, device):
    import torch

    from tracker.classifier.network import ModelBuildError, PoseClassifier
    try:
        net = PoseClassifier(cfg, num_classes)
    except ModelBuildError as exc:
        raise ModelError(str(exc)) from None
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    return net.eval().to(device)


def _opencv_network(cfg: ModelConfig, state: dict):
    from tracker.classifier.opencv_network import CvClassifier
    if not cfg.backbone.startswith("resnet"):
        raise ModelError(f"the opencv backend runs ResNet backbones, not {cfg.backbone!r}: use the torch backend")
    return CvClassifier(state, PIXEL_MEAN_BGR, PIXEL_STD_BGR)


def _regressor_fields(regressors: dict) -> dict:
    return {"cascade": regressors.get("cascade"), "box_refiner": regressors.get("box")}


def _calibrations(stored) -> dict:
    """Detector name -> calibration dict (older files held one dlib calibration)."""
    if not stored:
        return {}
    if "ax" in stored:
        return {stored.get("detector", "dlib"): stored}
    return dict(stored)


def __getattr__(name: str):
    if name == "PoseClassifier":            # the torch network, imported (with torch) on first use
        from tracker.classifier.network import PoseClassifier
        return PoseClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cuda_present() -> bool:
    """Whether a CUDA GPU may be here, without importing torch where it can be told (Linux:
    the NVIDIA driver lists its GPUs under /proc); then torch's own check."""
    import sys
    if sys.platform.startswith("linux"):
        gpus = Path("/proc/driver/nvidia/gpus")
        if not (gpus.is_dir() and any(gpus.iterdir())):
            return False
    elif sys.platform == "darwin":
        return False
    import torch
    return torch.cuda.is_available()


def resolve_backend(backend: str, device: str = "auto") -> tuple[str, object]:
    """(backend, device) for a tracking ``backend`` setting (auto | torch | opencv) and a
    ``device`` (auto | cpu | cuda...): torch on a GPU; on the CPU, auto means opencv."""
    if backend not in ("auto", *BACKENDS):
        raise ModelError(f"unknown backend {backend!r} (choose from auto, {', '.join(BACKENDS)})")
    on_gpu = device.startswith("cuda") or (device == "auto" and cuda_present())
    if backend == "opencv" or (backend == "auto" and not on_gpu):
        if device.startswith("cuda"):
            raise FacetrackError("the opencv backend runs on the CPU: use --device cpu or tracking.backend=torch")
        return "opencv", "cpu"
    return "torch", pick_device(device)


def pick_device(name: str = "auto"):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacetrackError("--device cuda asked for, but no CUDA GPU is available")
    return torch.device(name)
