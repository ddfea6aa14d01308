"""Classifier networks. Each exposes ``features(x)`` (penultimate) and ``head`` (the last Linear).

Written here with torch only (torchvision does not import beside torch 2.13).
"""

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
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (height // 4) * (width_px // 4), 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 128)."""
        features: torch.Tensor = self.body(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K)."""
        logits: torch.Tensor = self.head(self.features(x))
        return logits


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two conv3x3-BN, identity or 1x1-conv shortcut, ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for small images: a 3x3 stride-1 stem and no max-pool (the CIFAR variant).

    Stages of two BasicBlocks with width, 2, 4, 8 x width channels (strides 1, 2, 2, 2): 28x28 ->
    28, 14, 7, 4, then global average pooling to (B, 8 width) features and the Linear head.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        channels = input_shape[0]
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        in_ch = width
        for multiplier, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            out_ch = width * multiplier
            stages += [BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch, 1)]
            in_ch = out_ch
        self.stages = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(in_ch, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 8 width) after global average pooling."""
        features: torch.Tensor = self.stages(self.stem(x))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K)."""
        logits: torch.Tensor = self.head(self.features(x))
        return logits


ARCHITECTURES: dict[str, type[nn.Module]] = {"small-cnn": SmallCNN, "resnet18": ResNet18}


def build_network(
    name: str, input_shape: tuple[int, int, int], num_classes: int, width: int | None = None
) -> nn.Module:
    """Construct a registered architecture by name (width None: the architecture's default)."""
    if name not in ARCHITECTURES:
        raise TrainingError(f"unknown architecture '{name}': choose one of {sorted(ARCHITECTURES)}")
    if width is None:
        return ARCHITECTURES[name](input_shape, num_classes)
    return ARCHITECTURES[name](input_shape, num_classes, width=width)
