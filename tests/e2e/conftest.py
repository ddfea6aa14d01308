"""E2E fixtures: a deliberately slow artifact (a matmul chain) to keep requests in flight."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

SLOW_MODEL = "slow"


@pytest.fixture(scope="session")
def slow_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/slow/1: (1, 8, 8) -> 10 classes through 60 tanh(h @ W) layers of width 512
    (about 1 GMAC per 64-instance request: tens of milliseconds on two cores)."""
    import torch
    from torch import nn

    from training.module_artifact import export_module

    class MatmulChain(nn.Module):
        def __init__(self, depth: int = 60, width: int = 512) -> None:
            super().__init__()
            self.inp, self.out = nn.Linear(64, width), nn.Linear(width, 10)
            self.weight = nn.Parameter(torch.randn(width, width) / math.sqrt(width))
            self.depth = depth

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.inp(x.flatten(1))
            for _ in range(self.depth):
                h = torch.tanh(h @ self.weight)
            return self.out(h)

    torch.manual_seed(0)
    models = tmp_path_factory.mktemp("slow") / "models"
    export_module(MatmulChain(), (1, 8, 8), SLOW_MODEL, "1", models, architecture="matmul-chain")
    return models
