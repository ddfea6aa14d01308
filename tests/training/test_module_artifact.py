"""export_module: any torch module becomes an artifact the service verifies and serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from service.inference.engine import load_engine
from training.module_artifact import export_module, normalise, synthetic_inputs


def test_an_exported_module_loads_and_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    directory = export_module(net, (2, 4, 4), "tiny", "1", tmp_path, temperature=2.0)
    engine = load_engine(directory, "cpu")
    raw = synthetic_inputs((2, 4, 4), 5, seed=3)
    served = engine.predict(engine.preprocess(raw.astype(np.float64), "x"))
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(normalise(raw))) / 2.0, dim=1).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert engine.manifest.classes == ["class_0", "class_1", "class_2"]
    assert engine.manifest.training.data == "synthetic"
