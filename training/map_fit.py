"""Choosing and fitting the post-hoc map on validation logits (numpy + scipy; no torch)."""

from __future__ import annotations

import numpy as np

from calibration.manifest import CalibrationMap
from training.errors import TrainingError
from training.posthoc import fit_focal_temperature, fit_temperature

METHODS = ("ts", "fts", "best")


def fit_map(logits: np.ndarray, labels: np.ndarray, method: str) -> tuple[CalibrationMap, dict[str, float]]:
    """Fit the post-hoc map on validation logits by NLL.

    ts: temperature scaling; fts: focal temperature scaling (METHODS decision 3); best: the lowest
    validation NLL among {none, TS, FTS} (FTS with gamma = 0 is TS exactly, so a TS fit is kept on
    ties; no map at all when neither fit lowers the NLL of the raw softmax).
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
            chosen = CalibrationMap(
                kind="focal_temperature", temperature=fts.temperature, gamma=fts.gamma, objective="nll"
            )
    if method == "best" and min(figures.get("validation_nll_fts", np.inf), ts.nll_after) >= ts.nll_before:
        chosen = CalibrationMap(kind="none", objective="nll")
    return chosen, figures
