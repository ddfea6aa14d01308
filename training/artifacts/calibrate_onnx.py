"""``candor calibrate-onnx``: calibrate any ONNX classifier that outputs logits, without torch.

Runs the model on validation inputs with ONNX Runtime, fits TS / FTS on those logits, appends the map
to the graph (ONNX graph composition, not a re-export), checks parity, and writes a normal artifact.
Reference figures come from --test, or, without it, from a seeded half of the validation file that
the fit never saw (recorded as split "validation").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from calibration.manifest import TensorSpec, TrainingInfo
from calibration.maps import softmax
from calibration.preprocessing import Preprocessing
from candor.artifact import (
    check_batches_agree,
    publish_artifact,
    reference_figures,
    run_onnx,
    uncalibrated_figures,
)
from candor.map_fit import fit_map
from candor.maps import apply_map
from candor.onnx_graph import append_calibration_map, logits_output
from training.artifacts.artifact import refuse_existing
from training.errors import TrainingError

FLOAT32_RANGE = (-3.4e38, 3.4e38)


@dataclass(frozen=True)
class LabelledArrays:
    """Inputs x (float32, model-ready) and integer labels y from an .npz file."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str] | None


def load_npz(path: Path) -> LabelledArrays:
    """Arrays ``x`` and ``y`` (and optional ``classes``); errors name the file and the fix."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"x", "y"} - set(data.files)
            if missing:
                raise TrainingError(
                    f"{path}: missing array(s) {sorted(missing)}; save with np.savez(path, x=..., y=...)"
                )
            x, y = data["x"].astype(np.float32), data["y"]
            classes = [str(c) for c in data["classes"]] if "classes" in data.files else None
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{path}: cannot read it as .npz ({exc}); write it with numpy.savez") from exc
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1 or len(y) != len(x) or len(y) < 2:
        raise TrainingError(f"{path}: y must be integer class indices, one per row of x (got {y.dtype} {y.shape})")
    return LabelledArrays(x, y.astype(np.int64), classes)


def load_logits_model(path: Path) -> onnx.ModelProto:
    """The ONNX model; exactly one float32 input and one 2-D logits output are required."""
    try:
        model = onnx.load(str(path))
        logits_output(model)
    except (OSError, ValueError, DecodeError, onnx.checker.ValidationError) as exc:
        raise TrainingError(f"{path}: not a usable classifier: {exc}") from exc
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise TrainingError(f"{path}: needs exactly one float32 input, found {[i.name for i in inputs]}")
    return model


def split_for_reference(data: LabelledArrays, seed: int = 0) -> tuple[LabelledArrays, LabelledArrays]:
    """Seeded halves: one to fit the map, one to measure it (used when no --test file is given)."""
    order = np.random.default_rng(seed).permutation(len(data.y))
    fit, held = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    return (
        LabelledArrays(data.x[fit], data.y[fit], data.classes),
        LabelledArrays(data.x[held], data.y[held], data.classes),
    )


def calibrate_onnx(
    model_path: Path,
    val_path: Path,
    method: str,
    name: str,
    version: str,
    models_dir: Path,
    test_path: Path | None = None,
    force: bool = False,
) -> Path:
    """Fit the map on validation logits, fuse it, verify parity and publish models/<name>/<version>/."""
    target = models_dir / name / version
    refuse_existing(target, force)
    model = load_logits_model(model_path)
    val = load_npz(val_path)
    fit, held = (val, load_npz(test_path)) if test_path else split_for_reference(val)
    logits = run_onnx(model, fit.x)
    num_classes = logits.shape[1]
    cmap, _ = fit_map(logits, fit.y, method)
    graph = append_calibration_map(model, cmap, num_classes)
    check_batches_agree(graph, fit.x[:64], apply_map(logits[:64], cmap))
    held_logits = run_onnx(model, held.x)
    return publish_artifact(
        graph,
        dict(
            name=name,
            version=version,
            created_at=datetime.now(UTC),
            input=TensorSpec(name=graph.graph.input[0].name, shape=[None, *fit.x.shape[1:]]),
            output=TensorSpec(name="probabilities", shape=[None, num_classes]),
            preprocessing=identity_preprocessing(fit.x),
            classes=class_names(val, num_classes, val_path),
            calibration=cmap,
            training=TrainingInfo(
                data=f"npz:{val_path.name}",
                architecture=f"onnx:{model_path.name}",
                loss="unknown",
                epochs=0,
                seed=0,
                validation_size=len(fit.y),
            ),
            reference=reference_figures(
                apply_map(held_logits, cmap), held.y, split="test" if test_path else "validation"
            ),
            reference_uncalibrated=uncalibrated_figures(softmax(held_logits), held.y),
        ),
        target,
    )


def identity_preprocessing(x: np.ndarray) -> Preprocessing:
    """Inputs are already model-ready: scale 1, mean 0, std 1 per channel, any float32 value."""
    channels = x.shape[1] if x.ndim >= 3 else 1
    return Preprocessing(scale=1.0, mean=[0.0] * channels, std=[1.0] * channels, input_range=FLOAT32_RANGE)


def class_names(data: LabelledArrays, num_classes: int, path: Path) -> list[str]:
    """Names from the npz ``classes`` array, else "0".."K-1"."""
    if data.classes is None:
        return [str(k) for k in range(num_classes)]
    if len(data.classes) != num_classes:
        raise TrainingError(f"{path}: 'classes' has {len(data.classes)} names but the model outputs {num_classes}")
    return data.classes
