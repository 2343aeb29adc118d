"""The torch pose classifier: a torchvision backbone, an embedding and a K-way layer
(training, GPU inference and the reference for the OpenCV path in :mod:`tracker.classifier.opencv_network`)."""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from tracker.classifier.inputs import PIXEL_MEAN_BGR, PIXEL_STD_BGR
from tracker.config import ModelConfig
from tracker.errors import ModelError


class ModelBuildError(ModelError):
    """A network that cannot be built from its config."""


class PoseClassifier(nn.Module):
    """Crops (N, S, S, 3) uint8 BGR -> scores (N, K) over pose classes."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        width = cfg.embedding or num_classes
        try:
            self.backbone = torchvision.models.get_model(cfg.backbone, weights=None, num_classes=width)
        except (ValueError, KeyError):
            raise ModelBuildError(f"unknown torchvision backbone {cfg.backbone!r}") from None
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
