"""Choosing and fitting the post-hoc map on validation logits (numpy + scipy; no torch)."""

from __future__ import annotations

import numpy as np

from calibration.manifest import CalibrationMap
from candor.maps import FITTED, fit_function
from candor.maps.softmax import fit_ts

METHODS = (*FITTED, "best")  # --method choices: every fitted map of the registry, and best


def fit_map(logits: np.ndarray, labels: np.ndarray, method: str) -> tuple[CalibrationMap, dict[str, float]]:
    """Fit the post-hoc map on held-out logits by NLL; TS is always fitted, for its figures.

    ts, fts, vs, ...: that map of candor.maps.MAPS; best: the lowest held-out NLL among
    {none, TS, FTS} (FTS with gamma = 0 is TS exactly, so a TS fit is kept on ties; no map at all
    when neither fit lowers the NLL of the raw softmax).
    """
    fit_other = fit_function(method)
    chosen, figures = fit_ts(logits, labels)
    if method == "ts":
        return chosen, figures
    other, more = fit_other(logits, labels)
    figures.update(more)
    if method != "best":
        return other, figures
    if more["validation_nll_fts"] < figures["validation_nll_ts"] and other.gamma != 0:
        chosen = other
    if min(more["validation_nll_fts"], figures["validation_nll_ts"]) >= figures["validation_nll_before"]:
        chosen = CalibrationMap(kind="none", objective="nll")
    return chosen, figures
