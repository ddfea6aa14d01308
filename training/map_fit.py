"""Choosing and fitting the post-hoc map on validation logits (numpy + scipy; no torch)."""

from __future__ import annotations

import numpy as np

from calibration.manifest import CalibrationMap
from training.maps import FITTED, fit_function
from training.maps.softmax import fit_ts

METHODS = (*FITTED, "best")  # --method choices: every fitted map of the registry, and best


def fit_map(logits: np.ndarray, labels: np.ndarray, method: str) -> tuple[CalibrationMap, dict[str, float]]:
    """Fit the post-hoc map on validation logits by NLL; TS is always fitted, for its figures.

    ts, fts, vs, ...: that map of training.maps.MAPS; best: the lower validation NLL of TS and FTS
    (FTS with gamma = 0 is TS exactly, so a TS fit is kept on ties).
    """
    fit_other = fit_function(method)
    chosen, figures = fit_ts(logits, labels)
    if method == "ts":
        return chosen, figures
    other, more = fit_other(logits, labels)
    figures.update(more)
    if method != "best" or (more["validation_nll_fts"] < figures["validation_nll_ts"] and other.gamma != 0):
        chosen = other
    return chosen, figures
