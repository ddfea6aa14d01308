"""``candor export``: write models/<name>/<version>/ with model.onnx (map fused) and manifest.json.

The artifact is refused unless ONNX Runtime reproduces the torch probabilities within 1e-5 (max abs)
at batch sizes 1, 7 and 64. Reference figures are measured through the ONNX graph on the test split.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from calibration.binning import DEFAULT_BINS, bin_edges
from calibration.manifest import (
    ONNX_FILE, CalibrationMap, ConfidenceHistogram, Manifest, Preprocessing, ReferenceFigures,
    ReliabilityBins, TensorSpec, TrainingInfo, UncalibratedFigures, sha256_of, write_manifest,
)
from calibration.maps import focal_temperature_scale, softmax
from calibration.metrics import accuracy, adaptive_ece, bin_statistics, brier, classwise_ece, ece, nll
from training.calibrate_run import load_calibration
from training.errors import ExportParityError, TrainingError
from training.onnx_graph import OPSET, append_calibration_map
from training.trainer import TrainConfig, load_checkpoint, prepare_data

PARITY_BATCHES = (1, 7, 64)
PARITY_TOLERANCE = 1e-5
INPUT_NAME = "images"


def export_logits_graph(model: nn.Module, input_shape: tuple[int, ...]) -> onnx.ModelProto:
    """The network alone as ONNX: images (N, C, H, W) -> logits (N, K), dynamic batch, one file."""
    buffer = io.BytesIO()
    # The TorchScript exporter writes one self-contained file and needs no onnxscript; torch 2.13
    # warns that it is legacy, which is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model.eval(), (torch.zeros(1, *input_shape),), buffer, dynamo=False,
                          input_names=[INPUT_NAME], output_names=["logits"], opset_version=OPSET,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, "logits": {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue())


def run_onnx(model: onnx.ModelProto, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Run a graph on CPU ONNX Runtime in batches; returns float64."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs).astype(np.float64)


def torch_probabilities(model: nn.Module, x: torch.Tensor, cmap: CalibrationMap) -> np.ndarray:
    """The reference path: torch logits, then the map in numpy (calibration.maps), in float64."""
    with torch.no_grad():
        logits = model(x).double().numpy()
    return apply_map(logits, cmap)


def apply_map(logits: np.ndarray, cmap: CalibrationMap) -> np.ndarray:
    """p = Phi_gamma(softmax(z / T)) for any map kind (none: T = 1, gamma = 0)."""
    if cmap.kind == "none":
        return softmax(logits)
    return focal_temperature_scale(logits, cmap.temperature, cmap.gamma)


def check_parity(graph: onnx.ModelProto, model: nn.Module, x: torch.Tensor, cmap: CalibrationMap) -> float:
    """Max abs difference ORT vs torch over batches 1, 7, 64; raises ExportParityError above 1e-5."""
    worst = 0.0
    for batch in PARITY_BATCHES:
        xb = x[:batch]
        diff = float(np.abs(run_onnx(graph, xb.numpy()) - torch_probabilities(model, xb, cmap)).max())
        worst = max(worst, diff)
        if diff > PARITY_TOLERANCE:
            raise ExportParityError(f"ONNX Runtime differs from torch by {diff:.2e} at batch {batch} "
                                    f"(tolerance {PARITY_TOLERANCE:.0e}); no artifact written")
    return worst


def reference_figures(probs: np.ndarray, labels: np.ndarray) -> ReferenceFigures:
    """Calibration figures, per-bin sums and confidence histogram on held-out data."""
    stats = bin_statistics(probs, labels, DEFAULT_BINS)
    return ReferenceFigures(
        split="test", n=int(labels.shape[0]), accuracy=accuracy(probs, labels), ece=ece(probs, labels),
        adaptive_ece=adaptive_ece(probs, labels), classwise_ece=classwise_ece(probs, labels),
        nll=nll(probs, labels), brier=brier(probs, labels),
        bins=ReliabilityBins(n_bins=stats.n_bins, counts=stats.counts.tolist(),
                             confidence_sums=stats.confidence_sums.tolist(),
                             correct_sums=stats.correct_sums.tolist()),
        confidence_histogram=ConfidenceHistogram(
            edges=bin_edges(DEFAULT_BINS).tolist(), fractions=(stats.counts / stats.total).tolist()),
    )


def uncalibrated_figures(probs: np.ndarray, labels: np.ndarray) -> UncalibratedFigures:
    """The network's own softmax on the same split (before the map)."""
    return UncalibratedFigures(accuracy=accuracy(probs, labels), ece=ece(probs, labels),
                               nll=nll(probs, labels), brier=brier(probs, labels))


def export_run(run_dir: Path, name: str, version: str, models_dir: Path, force: bool = False) -> Path:
    """Export a calibrated run as a verified artifact; returns the artifact directory."""
    target = models_dir / name / version
    if target.exists() and not force:
        raise TrainingError(f"{target} exists: choose another --version or pass --force")
    model, ckpt = load_checkpoint(run_dir)
    cmap = load_calibration(run_dir)
    config = TrainConfig(**ckpt["config"])
    prepared = prepare_data(config)
    test_x, test_y = prepared.test
    logits_graph = export_logits_graph(model, tuple(ckpt["input_shape"]))
    graph = append_calibration_map(logits_graph, cmap)
    check_parity(graph, model, test_x, cmap)
    labels = test_y.numpy()
    calibrated = run_onnx(graph, test_x.numpy())
    uncalibrated = softmax(run_onnx(logits_graph, test_x.numpy()))
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_ensure(models_dir / name)))
    onnx.save_model(graph, str(staging / ONNX_FILE))
    manifest = Manifest(
        name=name, version=version, created_at=datetime.now(UTC),
        onnx_sha256=sha256_of(staging / ONNX_FILE),
        input=TensorSpec(name=INPUT_NAME, shape=[None, *ckpt["input_shape"]]),
        output=TensorSpec(name="probabilities", shape=[None, len(ckpt["classes"])]),
        preprocessing=Preprocessing(scale=1 / 255, mean=ckpt["mean"], std=ckpt["std"], input_range=(0, 255)),
        classes=ckpt["classes"], calibration=cmap,
        training=TrainingInfo(data=config.data, architecture=config.architecture, loss=config.loss,
                              loss_params=config.loss_params, epochs=int(ckpt["epoch"]), seed=config.seed,
                              validation_size=int(len(prepared.validation[1]))),
        reference=reference_figures(calibrated, labels),
        reference_uncalibrated=uncalibrated_figures(uncalibrated, labels),
    )
    write_manifest(manifest, staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
