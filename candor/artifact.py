"""Torch-free pieces of writing an artifact: running a graph, parity, reference figures, atomic publish.

Shared by ``candor export`` (torch runs), ``candor calibrate-onnx`` (any ONNX classifier) and the
service's recalibration (service/recalibration), so every artifact is written by one code path.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort

from calibration.binning import DEFAULT_BINS, bin_edges
from calibration.manifest import (
    ONNX_FILE,
    ConfidenceHistogram,
    Manifest,
    ReferenceFigures,
    ReliabilityBins,
    UncalibratedFigures,
    sha256_of,
    write_manifest,
)
from calibration.metrics import accuracy, adaptive_ece, bin_statistics, brier, classwise_ece, ece, nll
from candor.errors import ParityError

PARITY_BATCHES = (1, 7, 64)
PARITY_TOLERANCE = 1e-5


def run_onnx(model: onnx.ModelProto, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Run a single-input graph on CPU ONNX Runtime in batches; the first output, as float64."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs).astype(np.float64)


def check_batches_agree(graph: onnx.ModelProto, x: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference of the graph vs ``expected`` on the first 1, 7 and 64 rows of x.

    Raises ParityError above 1e-5: no artifact is written then.
    """
    worst = 0.0
    for batch in PARITY_BATCHES:
        diff = float(np.abs(run_onnx(graph, x[:batch]) - expected[:batch]).max())
        worst = max(worst, diff)
        if diff > PARITY_TOLERANCE:
            raise ParityError(
                f"ONNX Runtime differs from the reference by {diff:.2e} at batch {batch} "
                f"(tolerance {PARITY_TOLERANCE:.0e}); no artifact written"
            )
    return worst


def reference_figures(
    probs: np.ndarray, labels: np.ndarray, split: Literal["test", "validation", "production"] = "test"
) -> ReferenceFigures:
    """Calibration figures, per-bin sums, confidence histogram and mean probability per class (the
    class priors a prior-shift recalibration starts from) on held-out data."""
    stats = bin_statistics(probs, labels, DEFAULT_BINS)
    return ReferenceFigures(
        split=split,
        n=int(labels.shape[0]),
        accuracy=accuracy(probs, labels),
        ece=ece(probs, labels),
        adaptive_ece=adaptive_ece(probs, labels),
        classwise_ece=classwise_ece(probs, labels),
        nll=nll(probs, labels),
        brier=brier(probs, labels),
        bins=ReliabilityBins(
            n_bins=stats.n_bins,
            counts=stats.counts.tolist(),
            confidence_sums=stats.confidence_sums.tolist(),
            correct_sums=stats.correct_sums.tolist(),
        ),
        confidence_histogram=ConfidenceHistogram(
            edges=bin_edges(DEFAULT_BINS).tolist(), fractions=(stats.counts / stats.total).tolist()
        ),
        class_priors=np.clip(probs.mean(axis=0), 0.0, 1.0).tolist(),
    )


def uncalibrated_figures(probs: np.ndarray, labels: np.ndarray) -> UncalibratedFigures:
    """The network's own softmax on the same split (before the map)."""
    return UncalibratedFigures(
        accuracy=accuracy(probs, labels), ece=ece(probs, labels), nll=nll(probs, labels), brier=brier(probs, labels)
    )


def publish_artifact(graph: onnx.ModelProto, fields: dict[str, Any], target: Path) -> Path:
    """Write model.onnx and manifest.json (onnx_sha256 filled in, sealed with manifest_sha256 by
    write_manifest) to a staging dir, then rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        onnx.save_model(graph, str(staging / ONNX_FILE))
        manifest = Manifest(**fields, onnx_sha256=sha256_of(staging / ONNX_FILE))
        write_manifest(manifest, staging)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target
