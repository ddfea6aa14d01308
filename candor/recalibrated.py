"""A recalibrated version's graph: the served graph with a second map appended by ONNX composition.

The base graph outputs calibrated ``probabilities``; the new graph is
  x -> base graph -> p -> max(log p, -87.34) -> map (TS, FTS or the prior correction) -> probabilities
built as a standalone map graph (``recalibration_graph``, probabilities in, probabilities out, its
nodes from the map registry candor.maps) merged after the base graph with ``onnx.compose``; no
torch, no re-export. Parity is checked twice before anything is written (``check_recalibrated``):
the composed graph against numpy (calibration.recalibration.apply_recalibration on the base graph's
outputs) on a fixed seeded batch of synthetic inputs (the real inputs are not stored), and the map
graph alone against numpy on the window's stored log-probabilities.
"""

from __future__ import annotations

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, compose, helper, numpy_helper

from calibration.manifest import CalibrationMap
from calibration.recalibration import LOG_FLOOR, apply_recalibration
from candor.artifact import check_batches_agree, run_onnx
from candor.maps import family_of
from candor.onnx_graph import PROBABILITIES

SERVED = "served_probabilities"
PARITY_ROWS = 64
RECALIBRATED_FROM = "candor.recalibrated_from"


def recalibration_graph(cmap: CalibrationMap, num_classes: int, like: onnx.ModelProto) -> onnx.ModelProto:
    """probabilities (N, K) float32 -> map(max(log p, LOG_FLOOR)) float32, with ``like``'s opsets."""
    floor = numpy_helper.from_array(np.array(LOG_FLOOR, np.float32), "log_floor")
    head = [
        helper.make_node("Log", [SERVED], ["served_log"], name="served_log"),
        helper.make_node("Max", ["served_log", "log_floor"], ["served_log_floored"], name="served_log_floor"),
    ]
    nodes, constants = family_of(cmap).nodes("served_log_floored", PROBABILITIES, cmap, num_classes)
    graph = helper.make_graph(
        [*head, *nodes],
        "recalibration",
        [helper.make_tensor_value_info(SERVED, TensorProto.FLOAT, ["batch", num_classes])],
        [helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, ["batch", num_classes])],
        [floor, *constants],
    )
    model = helper.make_model(graph, opset_imports=list(like.opset_import), ir_version=like.ir_version)
    onnx.checker.check_model(model)
    return model


def append_recalibration(
    base: onnx.ModelProto, cmap: CalibrationMap, num_classes: int, base_version: str
) -> onnx.ModelProto:
    """The base graph followed by the map: one input (the base's), one output ``probabilities``."""
    served = f"v{base_version}_{PROBABILITIES}"
    renamed = _output_renamed(base, served)
    tail = compose.add_prefix(
        recalibration_graph(cmap, num_classes, base), f"recal_v{base_version}_", rename_outputs=False
    )
    merged = compose.merge_models(renamed, tail, io_map=[(served, f"recal_v{base_version}_{SERVED}")])
    props = {p.key: p.value for p in base.metadata_props} | {RECALIBRATED_FROM: base_version}
    helper.set_model_props(merged, props)
    onnx.checker.check_model(merged)
    return merged


def _output_renamed(base: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """A copy of the base graph whose single output tensor is called ``name``."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    old = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    model.graph.output[0].name = name
    return model


def synthetic_inputs(shape: list[int | None], rows: int = PARITY_ROWS, seed: int = 0) -> NDArray[np.float32]:
    """A fixed seeded batch of standard-normal inputs of the graph's input shape (batch axis: rows)."""
    dims = [rows, *(int(d) for d in shape[1:] if d is not None)]
    return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


def check_recalibrated(
    base: onnx.ModelProto,
    composed: onnx.ModelProto,
    cmap: CalibrationMap,
    input_shape: list[int | None],
    stored_log_probs: NDArray[np.float64],
) -> dict[str, float]:
    """Both parity checks of the module docstring (ParityError above 1e-5); their worst differences."""
    x = synthetic_inputs(input_shape)
    expected = apply_recalibration(np.log(np.maximum(run_onnx(base, x), 0.0)), cmap)
    graph_diff = check_batches_agree(composed, x, expected)
    rows = np.exp(stored_log_probs[:PARITY_ROWS]).astype(np.float32)
    map_diff = 0.0
    if len(rows):
        num_classes = stored_log_probs.shape[1]
        map_only = recalibration_graph(cmap, num_classes, base)
        map_expected = apply_recalibration(np.log(rows.astype(np.float64)), cmap)
        map_diff = check_batches_agree(map_only, rows, map_expected)
    return {"parity_graph_max_abs": graph_diff, "parity_map_max_abs": map_diff}
