"""``candor calibrate``: fit the post-hoc map of a run on its validation split (never on test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from calibration.manifest import CalibrationMap
from training.errors import RunDirectoryError, TrainingError
from training.posthoc import fit_focal_temperature, fit_temperature
from training.trainer import TrainConfig, load_checkpoint, predict_logits, prepare_data

CALIBRATION_FILE = "calibration.json"
METHODS = ("ts", "fts", "best")


def validation_logits(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of the run's own validation split (same seed, same carve)."""
    model, ckpt = load_checkpoint(run_dir)
    prepared = prepare_data(TrainConfig(**ckpt["config"]))
    x, y = prepared.validation
    return predict_logits(model, x).double().numpy(), y.numpy()


def fit_map(logits: np.ndarray, labels: np.ndarray, method: str) -> tuple[CalibrationMap, dict[str, float]]:
    """Fit the post-hoc map on validation logits by NLL.

    ts: temperature scaling; fts: focal temperature scaling (METHODS decision 3); best: the lower
    validation NLL of the two (FTS with gamma = 0 is TS exactly, so a TS fit is kept on ties).
    """
    if method not in METHODS:
        raise TrainingError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    ts = fit_temperature(logits, labels)
    chosen = CalibrationMap(kind="temperature", temperature=ts.temperature, objective="nll")
    figures = {"validation_nll_before": ts.nll_before, "validation_nll_ts": ts.nll_after}
    if method in ("fts", "best"):
        fts = fit_focal_temperature(logits, labels)
        figures.update(validation_nll_fts=fts.nll_after, fts_gamma=fts.gamma, fts_temperature=fts.temperature)
        if method == "fts" or (fts.nll_after < ts.nll_after and fts.gamma != 0):
            chosen = CalibrationMap(kind="focal_temperature", temperature=fts.temperature, gamma=fts.gamma,
                                    objective="nll")
    return chosen, figures


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
