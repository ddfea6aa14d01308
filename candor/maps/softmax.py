"""The plain softmax ("none"), and temperature scaling (Guo et al. 2017): p = softmax(z / T)."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from calibration.manifest import CalibrationMap
from calibration.maps import softmax, temperature_scale
from calibration.posthoc import fit_temperature
from candor.maps.family import Fit, MapFamily, Nodes


def softmax_nodes(logits: str, output: str, cmap: CalibrationMap, num_classes: int) -> Nodes:
    return [helper.make_node("Softmax", [logits], [output], axis=-1, name="calib_softmax")], []


def temperature_nodes(logits: str, output: str, cmap: CalibrationMap, num_classes: int) -> Nodes:
    """softmax(z / T), T a float32 scalar initializer."""
    nodes = [
        helper.make_node("Div", [logits, "calib_T"], ["calib_scaled"], name="calib_div_T"),
        helper.make_node("Softmax", ["calib_scaled"], [output], axis=-1, name="calib_softmax"),
    ]
    return nodes, [numpy_helper.from_array(np.array(cmap.temperature, np.float32), "calib_T")]


def fit_ts(logits: np.ndarray, labels: np.ndarray) -> Fit:
    """T by validation NLL (calibration.posthoc.fit_temperature)."""
    ts = fit_temperature(logits, labels)
    figures = {"validation_nll_before": ts.nll_before, "validation_nll_ts": ts.nll_after}
    return CalibrationMap(kind="temperature", temperature=ts.temperature, objective="nll"), figures


NONE = MapFamily(
    kind="none",
    method=None,
    summary="the network's softmax",
    apply=lambda z, cmap: softmax(z),
    nodes=softmax_nodes,
    describe=lambda cmap: "none",
)

TEMPERATURE = MapFamily(
    kind="temperature",
    method="ts",
    summary="temperature scaling",
    apply=lambda z, cmap: temperature_scale(z, cmap.temperature),
    nodes=temperature_nodes,
    describe=lambda cmap: f"temperature scaling, T = {cmap.temperature:.4f} (fitted on validation {cmap.objective})",
    fit=fit_ts,
)
