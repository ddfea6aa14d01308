"""``candor export``: write models/<name>/<version>/ with model.onnx (map fused) and manifest.json.

The artifact is refused unless ONNX Runtime reproduces the torch probabilities within 1e-5 (max abs)
at batch sizes 1, 7 and 64. Reference figures are measured through the ONNX graph on the test split.
"""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from calibration.manifest import CalibrationMap, TensorSpec, TrainingInfo
from calibration.maps import softmax
from calibration.preprocessing import Preprocessing
from candor.artifact import (
    PARITY_BATCHES,
    check_batches_agree,
    publish_artifact,
    reference_figures,
    run_onnx,
    uncalibrated_figures,
)
from candor.maps import apply_map
from candor.onnx_graph import OPSET, append_calibration_map
from training.artifacts.artifact import refuse_existing
from training.calibrate_run import load_calibration
from training.trainer import TrainConfig, load_checkpoint, prepare_data

INPUT_NAME = "images"


def export_logits_graph(model: nn.Module, input_shape: tuple[int, ...]) -> onnx.ModelProto:
    """The network alone as ONNX: images (N, C, H, W) -> logits (N, K), dynamic batch, one file."""
    buffer = io.BytesIO()
    # The TorchScript exporter writes one self-contained file and needs no onnxscript; torch 2.13
    # warns that it is legacy, which is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, *input_shape),),
            buffer,  # type: ignore[arg-type]  # torch types f as a path; the legacy exporter takes a file object
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=["logits"],
            opset_version=OPSET,
            dynamic_axes={INPUT_NAME: {0: "batch"}, "logits": {0: "batch"}},
        )
    return onnx.load_from_string(buffer.getvalue())


def torch_probabilities(model: nn.Module, x: torch.Tensor, cmap: CalibrationMap) -> np.ndarray:
    """The reference path: torch logits, then the map in numpy (calibration.maps), in float64."""
    with torch.no_grad():
        logits = model(x).double().numpy()
    return apply_map(logits, cmap)


def export_run(run_dir: Path, name: str, version: str, models_dir: Path, force: bool = False) -> Path:
    """Export a calibrated run as a verified artifact; returns the artifact directory."""
    target = models_dir / name / version
    refuse_existing(target, force)
    model, ckpt = load_checkpoint(run_dir)
    cmap = load_calibration(run_dir)
    config = TrainConfig(**ckpt["config"])
    prepared = prepare_data(config)
    test_x, test_y = prepared.test
    logits_graph = export_logits_graph(model, tuple(ckpt["input_shape"]))
    graph = append_calibration_map(logits_graph, cmap)
    check_batches_agree(
        graph, test_x[: max(PARITY_BATCHES)].numpy(), torch_probabilities(model, test_x[: max(PARITY_BATCHES)], cmap)
    )
    labels = test_y.numpy()
    calibrated = run_onnx(graph, test_x.numpy())
    uncalibrated = softmax(run_onnx(logits_graph, test_x.numpy()))
    return publish_artifact(
        graph,
        dict(
            name=name,
            version=version,
            created_at=datetime.now(UTC),
            input=TensorSpec(name=INPUT_NAME, shape=[None, *ckpt["input_shape"]]),
            output=TensorSpec(name="probabilities", shape=[None, len(ckpt["classes"])]),
            preprocessing=Preprocessing(scale=1 / 255, mean=ckpt["mean"], std=ckpt["std"], input_range=(0, 255)),
            classes=ckpt["classes"],
            calibration=cmap,
            training=TrainingInfo(
                data=config.data,
                architecture=config.architecture,
                loss=config.loss,
                loss_params=config.loss_params,
                epochs=int(ckpt["epoch"]),
                seed=config.seed,
                validation_size=int(len(prepared.validation[1])),
            ),
            reference=reference_figures(calibrated, labels),
            reference_uncalibrated=uncalibrated_figures(uncalibrated, labels),
        ),
        target,
    )
