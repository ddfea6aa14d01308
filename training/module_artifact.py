"""A servable artifact from any torch module, without a training run (benchmarks and tests).

The module maps normalised images (N, C, H, W) to logits (N, K); the artifact fuses softmax(z / T)
and declares raw inputs in [0, 255] normalised with mean 0.5 and std 0.25 per channel. Its reference
figures are measured on synthetic inputs with random labels (training.data = "synthetic"): the
artifact is valid for serving, its calibration figures mean nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from torch import nn

from calibration.manifest import CalibrationMap, TensorSpec, TrainingInfo
from calibration.maps import softmax
from calibration.preprocessing import Preprocessing
from candor.artifact import (
    publish_artifact,
    reference_figures,
    run_onnx,
    uncalibrated_figures,
)
from candor.onnx_graph import append_calibration_map
from training.artifacts.artifact import refuse_existing
from training.export import INPUT_NAME, export_logits_graph

MEAN, STD = 0.5, 0.25


def synthetic_inputs(input_shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """n raw uint8-valued images as float32 (N, C, H, W) in [0, 255]."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *input_shape)).astype(np.float32)


def normalise(raw: np.ndarray) -> np.ndarray:
    """The artifact's preprocessing: (x / 255 - mean) / std."""
    return ((raw / 255.0 - MEAN) / STD).astype(np.float32)


def export_module(
    module: nn.Module,
    input_shape: tuple[int, int, int],
    name: str,
    version: str,
    models_dir: Path,
    *,
    temperature: float = 1.0,
    n_reference: int = 256,
    architecture: str = "custom",
    force: bool = False,
) -> Path:
    """Export ``module`` as models_dir/name/version (atomic publish); returns the directory."""
    target = models_dir / name / version
    refuse_existing(target, force)
    logits_graph = export_logits_graph(module.eval(), input_shape)
    cmap = CalibrationMap(kind="temperature", temperature=temperature)
    graph = append_calibration_map(logits_graph, cmap)
    x = normalise(synthetic_inputs(input_shape, n_reference))
    calibrated = run_onnx(graph, x)
    n_classes = calibrated.shape[1]
    labels = np.random.default_rng(1).integers(0, n_classes, size=n_reference)
    channels = input_shape[0]
    return publish_artifact(
        graph,
        dict(
            name=name,
            version=version,
            created_at=datetime.now(UTC),
            input=TensorSpec(name=INPUT_NAME, shape=[None, *input_shape]),
            output=TensorSpec(name="probabilities", shape=[None, n_classes]),
            preprocessing=Preprocessing(
                scale=1 / 255, mean=[MEAN] * channels, std=[STD] * channels, input_range=(0, 255)
            ),
            classes=[f"class_{k}" for k in range(n_classes)],
            calibration=cmap,
            training=TrainingInfo(
                data="synthetic", architecture=architecture, loss="none", epochs=0, seed=0, validation_size=0
            ),
            reference=reference_figures(calibrated, labels),
            reference_uncalibrated=uncalibrated_figures(softmax(run_onnx(logits_graph, x)), labels),
        ),
        target,
    )
