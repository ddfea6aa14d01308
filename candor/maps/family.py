"""What a calibration map is to Candor: one entry of the MAPS registry (candor/maps/__init__.py).

A map family ties together everything a map kind needs, so a new map is one module plus one
registry line (and its kind in calibration.manifest.CalibrationMap):

- ``apply(logits, cmap)``: calibrated probabilities in numpy float64 (the parity reference);
- ``fit(logits, labels)``: the map fitted on validation logits, with figures for calibration.json;
- ``nodes(logits, output, cmap, num_classes)``: ONNX nodes and initializers computing float32
  ``output`` from the logits tensor, fused into the served graph;
- ``describe(cmap)``: one line for reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import NodeProto, TensorProto

from calibration.manifest import CalibrationMap

Nodes = tuple[list[NodeProto], list[TensorProto]]
Fit = tuple[CalibrationMap, dict[str, float]]


@dataclass(frozen=True)
class MapFamily:
    """One calibration map kind: its manifest ``kind``, its ``--method`` name (None: not fitted,
    e.g. the plain softmax), and the four functions above."""

    kind: str
    method: str | None
    summary: str
    apply: Callable[[np.ndarray, CalibrationMap], np.ndarray]
    nodes: Callable[[str, str, CalibrationMap, int], Nodes]
    describe: Callable[[CalibrationMap], str]
    fit: Callable[[np.ndarray, np.ndarray], Fit] | None = None
