"""``candor calibrate``: fit the post-hoc map of a run on its validation split (never on test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from calibration.manifest import CalibrationMap
from candor.map_fit import METHODS, fit_map
from training.errors import RunDirectoryError
from training.trainer import TrainConfig, load_checkpoint, predict_logits, prepare_data

CALIBRATION_FILE = "calibration.json"
__all__ = ["CALIBRATION_FILE", "METHODS", "calibrate_run", "fit_map", "load_calibration"]


def validation_logits(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of the run's calibration split (``--calibration-size``; same seed, same
    carve), or of its validation split when the run has none."""
    model, ckpt = load_checkpoint(run_dir)
    prepared = prepare_data(TrainConfig(**ckpt["config"]))
    x, y = prepared.calibration if prepared.calibration is not None else prepared.validation
    return predict_logits(model, x).double().numpy(), y.numpy()


def calibrate_run(run_dir: Path, method: str = "best") -> CalibrationMap:
    """Fit the map on the run's validation split and write calibration.json into the run directory."""
    logits, labels = validation_logits(run_dir)
    cmap, figures = fit_map(logits, labels, method)
    record = {"map": cmap.model_dump(), "method": method, "n_validation": int(labels.shape[0]), **figures}
    (run_dir / CALIBRATION_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return cmap


def load_calibration(run_dir: Path) -> CalibrationMap:
    """The map fitted by ``candor calibrate``."""
    path = run_dir / CALIBRATION_FILE
    if not path.is_file():
        raise RunDirectoryError(f"{path} not found: run `candor calibrate {run_dir}` first")
    return CalibrationMap.model_validate(json.loads(path.read_text())["map"])
