"""Focal temperature scaling (Komisarenko & Kull 2024): p = Phi_gamma(softmax(z / T)).

The numpy map is calibration.maps; the ONNX nodes are candor/maps/focal_nodes.py (float64,
log-space, the same overflow guard); the fit is calibration.posthoc.fit_focal_temperature.
"""

from __future__ import annotations

import numpy as np

from calibration.manifest import CalibrationMap
from calibration.maps import focal_temperature_scale
from calibration.posthoc import fit_focal_temperature
from candor.maps.family import Fit, MapFamily, Nodes
from candor.maps.focal_nodes import focal_temperature_nodes


def nodes(logits: str, output: str, cmap: CalibrationMap, num_classes: int) -> Nodes:
    return focal_temperature_nodes(logits, output, cmap.temperature, cmap.gamma, num_classes)


def fit_fts(logits: np.ndarray, labels: np.ndarray) -> Fit:
    """The (gamma, T) of lowest validation NLL over FTS_GAMMAS."""
    fts = fit_focal_temperature(logits, labels)
    figures = {"validation_nll_fts": fts.nll_after, "fts_gamma": fts.gamma, "fts_temperature": fts.temperature}
    cmap = CalibrationMap(kind="focal_temperature", temperature=fts.temperature, gamma=fts.gamma, objective="nll")
    return cmap, figures


def describe(cmap: CalibrationMap) -> str:
    return (
        f"focal temperature scaling, T = {cmap.temperature:.4f}, gamma = {cmap.gamma:g} "
        f"(fitted on validation {cmap.objective})"
    )


FOCAL_TEMPERATURE = MapFamily(
    kind="focal_temperature",
    method="fts",
    summary="focal temperature scaling",
    apply=lambda z, cmap: focal_temperature_scale(z, cmap.temperature, cmap.gamma),
    nodes=nodes,
    describe=describe,
    fit=fit_fts,
)
