"""The K-way pose classifier: a torchvision backbone, an embedding and a K-way layer.

A saved model (``.pt``) bundles the network weights (fp16), the pose-class templates,
per-class widths, tau, the detector calibration and the config it was trained with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from .config import ModelConfig
from .errors import FacetrackError

DEFAULT_MODEL = Path(__file__).parent / "assets" / "model" / "default.pt"

# Per-channel statistics in OpenCV's BGR order (ImageNet values, reordered).
PIXEL_MEAN_BGR = (0.406, 0.456, 0.485)
PIXEL_STD_BGR = (0.225, 0.224, 0.229)


class ModelError(FacetrackError):
    """A model file that is missing or unusable."""


class PoseClassifier(nn.Module):
    """Crops (N, S, S, 3) uint8 BGR -> scores (N, K) over pose classes."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        width = cfg.embedding or num_classes
        try:
            self.backbone = torchvision.models.get_model(cfg.backbone, weights=None, num_classes=width)
        except (ValueError, KeyError):
            raise ModelError(f"unknown torchvision backbone {cfg.backbone!r}") from None
        self.head = nn.Linear(width, num_classes) if cfg.embedding else nn.Identity()
        self.register_buffer("mean", torch.tensor(PIXEL_MEAN_BGR).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(PIXEL_STD_BGR).view(1, 3, 1, 1) * 255)

    @property
    def classifier(self) -> nn.Linear:
        """The K-way layer (its weights are the exemplar embeddings)."""
        if isinstance(self.head, nn.Linear):
            return self.head
        return [m for m in self.backbone.modules() if isinstance(m, nn.Linear)][-1]

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.permute(0, 3, 1, 2).float()
        return (x - self.mean) / self.std

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.normalize(crops)))

    def embed(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (N, D) and scores (N, K) from one forward pass (scores as ``forward``)."""
        embedding = self.backbone(self.normalize(crops))
        return embedding, self.head(embedding)

    def init_bias(self, value: float) -> None:
        """Start every class score at ``value`` (log prior) so early losses are sane."""
        with torch.no_grad():
            self.classifier.bias.fill_(value)


@dataclass
class LandmarkModel:
    """Everything needed at test time, as saved in a model file."""

    network: PoseClassifier
    config: dict                        # the full training config, as a dict
    templates: np.ndarray               # (K, 68, 2) float32, canonical box frame
    widths: np.ndarray                  # (K,) float32, spherical Gaussian sigma per class
    tau: float
    calibration: dict = field(default_factory=dict)   # detector name -> BoxCalibration.to_dict()
    meta: dict = field(default_factory=dict)
    transitions: dict | None = None     # HMM pose-neighbour graph: indptr, indices, log_weight, n, sigma
    cascade: object | None = None       # tracker.refine.ShapeCascade from the companion .refine.pt file
    box_refiner: object | None = None   # tracker.boxrefine.BoxRefiner from the same file
    confidence: object | None = None    # tracker.confidence.ConfidenceCalibration from NAME.confidence.json

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(**self.config["model"])

    @property
    def num_classes(self) -> int:
        return len(self.templates)

    def save(self, path) -> None:
        """Write an inference bundle with fp16 weights and templates."""
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


def refine_path(model_path) -> Path:
    """The companion file of a model that holds its regressors: ``NAME.refine.pt`` beside ``NAME.pt``."""
    path = Path(model_path)
    return path.with_name(path.stem + ".refine.pt")


def confidence_path(model_path) -> Path:
    """The companion file of a model that holds its confidence calibration."""
    path = Path(model_path)
    return path.with_name(path.stem + ".confidence.json")


def load_confidence(model_path):
    """The confidence calibration stored beside a model, or None."""
    path = confidence_path(model_path)
    if not path.is_file():
        return None
    from .confidence import ConfidenceCalibration
    try:
        return ConfidenceCalibration.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a facetrack confidence calibration ({exc})") from None


def save_refiners(model_path, cascade=None, box_refiner=None) -> Path:
    """Write a model's regressors (cascade, detection refinement) to its companion file."""
    path = refine_path(model_path)
    torch.save({"format": "facetrack-refine-1", "cascade": None if cascade is None else cascade.to_dict(),
                "box": None if box_refiner is None else box_refiner.to_dict()}, path)
    return path


def _read_payload(path: Path, format_name: str, what: str) -> dict:
    """A torch file's dict, checked to be of ``format_name``; ``what`` names it in errors."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ModelError(f"{path}: not {what} ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != format_name:
        raise ModelError(f"{path}: not {what}")
    return payload


def load_refiners(model_path) -> dict:
    """The regressors stored beside a model: {"cascade": ShapeCascade, "box": BoxRefiner}, where present."""
    path = refine_path(model_path)
    if not path.is_file():
        return {}
    payload = _read_payload(path, "facetrack-refine-1", "a facetrack regressor file")
    from .boxrefine import BoxRefiner
    from .refine import ShapeCascade
    out = {}
    if payload.get("cascade") is not None:
        out["cascade"] = ShapeCascade.from_dict(payload["cascade"])
    if payload.get("box") is not None:
        out["box"] = BoxRefiner.from_dict(payload["box"])
    return out


def load_model(path=None, device: str | torch.device = "cpu") -> LandmarkModel:
    """Load a saved model (the packaged default when ``path`` is None), with the
    regressors of its companion ``.refine.pt`` file when there is one."""
    path = Path(path) if path else DEFAULT_MODEL
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    payload = _read_payload(path, "facetrack-model-1", "a facetrack model")
    templates = payload["templates"].float().numpy()
    cfg = ModelConfig(**payload["config"]["model"])
    net = PoseClassifier(cfg, len(templates))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()},
                        strict=False)
    net.eval().to(device)
    stored = payload.get("transitions")
    transitions = None if stored is None else {
        "indptr": stored["indptr"].numpy(), "indices": stored["indices"].numpy(),
        "log_weight": stored["log_weight"].float().numpy(), "n": int(stored["n"]), "sigma": float(stored["sigma"])}
    return LandmarkModel(network=net, config=payload["config"], templates=templates,
                         widths=payload["widths"].numpy(), tau=payload["tau"],
                         calibration=_calibrations(payload.get("calibration")), meta=payload.get("meta", {}),
                         transitions=transitions, confidence=load_confidence(path),
                         **_refiner_fields(load_refiners(path)))


def _refiner_fields(refiners: dict) -> dict:
    return {"cascade": refiners.get("cascade"), "box_refiner": refiners.get("box")}


def _calibrations(stored) -> dict:
    """Detector name -> calibration dict (older files held one dlib calibration)."""
    if not stored:
        return {}
    if "ax" in stored:
        return {stored.get("detector", "dlib"): stored}
    return dict(stored)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacetrackError("--device cuda asked for, but no CUDA GPU is available")
    return torch.device(name)
