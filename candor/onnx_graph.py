"""ONNX graph composition: append a calibration map to a graph whose single output is logits.

The same code serves ``candor export`` (torch network exported to logits) and ONNX classifiers from
any framework, so the served map has one implementation.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from calibration.manifest import CalibrationMap
from candor.maps import family_of

OPSET = 17
PROBABILITIES = "probabilities"
LOGITS_KEY = "candor.logits"  # metadata: the tensor the map reads, so evaluate can report "before"


def logits_output(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The graph's only output, which must be a 2-D logits tensor."""
    outputs = model.graph.output
    if len(outputs) != 1:
        raise ValueError(f"expected one logits output, found {[o.name for o in outputs]}")
    dims = outputs[0].type.tensor_type.shape.dim
    if len(dims) != 2:
        raise ValueError(f"logits output '{outputs[0].name}' must be 2-D (N, K), has rank {len(dims)}")
    output: onnx.ValueInfoProto = outputs[0]
    return output


def append_calibration_map(
    model: onnx.ModelProto, cmap: CalibrationMap, num_classes: int | None = None
) -> onnx.ModelProto:
    """A copy whose output ``probabilities`` = map(logits), the map's nodes from candor.maps."""
    composed = onnx.ModelProto()
    composed.CopyFrom(model)
    logits = logits_output(composed)
    num_classes = num_classes or logits.type.tensor_type.shape.dim[1].dim_value
    if not num_classes:
        raise ValueError(f"logits output '{logits.name}' has a symbolic class axis: pass num_classes")
    graph = composed.graph
    nodes, constants = family_of(cmap).nodes(logits.name, PROBABILITIES, cmap, num_classes)
    graph.initializer.extend(constants)
    graph.node.extend(nodes)
    batch = logits.type.tensor_type.shape.dim[0]
    out = helper.make_tensor_value_info(
        PROBABILITIES, TensorProto.FLOAT, [batch.dim_param or batch.dim_value or "batch", num_classes]
    )
    del graph.output[:]
    graph.output.append(out)
    onnx.helper.set_model_props(
        composed, {**{p.key: p.value for p in composed.metadata_props}, LOGITS_KEY: logits.name}
    )
    onnx.checker.check_model(composed)
    return composed
