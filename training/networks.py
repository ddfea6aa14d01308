"""Classifier networks. Each exposes ``features(x)`` (penultimate) and ``head`` (the last Linear)."""

from __future__ import annotations

import torch
from torch import nn

from training.errors import TrainingError


class SmallCNN(nn.Module):
    """conv3x3(32)-ReLU-pool2 -> conv3x3(64)-ReLU-pool2 -> fc(128)-ReLU -> fc(K).

    Sized from the input shape so it works on 28x28 Fashion-MNIST and 8x8 digits alike.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = 32) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        if height < 4 or width_px < 4:
            raise TrainingError(f"SmallCNN needs inputs of at least 4x4, got {height}x{width_px}")
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (height // 4) * (width_px // 4), 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 128)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K)."""
        return self.head(self.features(x))


ARCHITECTURES = {"small-cnn": SmallCNN}


def build_network(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Construct a registered architecture by name."""
    if name not in ARCHITECTURES:
        raise TrainingError(f"unknown architecture '{name}': choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](input_shape, num_classes)
