"""gRPC tensors: a ``ModelInferRequest`` to the model's input array, outputs to ``raw_output_contents``.

The input is one tensor, as over HTTP (service.api.v2_tensors.read_input checks its name, datatype
and shape with the same rules and messages): its data comes in ``raw_input_contents[0]`` (row-major,
little-endian; what tritonclient sends) or in the typed ``contents`` (``fp32_contents`` for FP32,
``uint_contents`` for UINT8). Every output is returned raw, in the order asked (all four when none
is asked): FP32 little-endian, BYTES as 4-byte little-endian length + UTF-8 per element.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.api.v2.tensors import INPUT_DTYPES, RequestedOutput, read_input, requested_outputs
from service.errors import BadRequest

FIELD = "inputs[0]"
TYPED_CONTENTS = {"FP32": "fp32_contents", "UINT8": "uint_contents"}


def parameter_value(parameter: Any) -> bool | int | float | str | None:
    """The value of an ``InferParameter`` (whichever of its oneof is set; None when none is)."""
    which = parameter.WhichOneof("parameter_choice")
    return None if which is None else getattr(parameter, which)


def input_array(request: Any, input_name: str, max_instances: int) -> NDArray[np.float64]:
    """The single input tensor as float64 of its declared shape (BadRequest naming the field)."""
    if len(request.inputs) != 1:
        raise BadRequest(f"must hold exactly one input tensor named '{input_name}'", field="inputs")
    if len(request.raw_input_contents) > 1:
        raise BadRequest("must hold one entry, for the one input", field="raw_input_contents")
    tensor = request.inputs[0]
    shape = list(tensor.shape)
    spec = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": shape,
        "parameters": {key: parameter_value(value) for key, value in tensor.parameters.items()},
    }
    dtype = INPUT_DTYPES.get(tensor.datatype)
    raw = tensor_bytes(request, dtype, shape) if dtype is not None and all(d > 0 for d in shape) else b""
    spec["parameters"]["binary_data_size"] = len(raw)
    return read_input(spec, raw, input_name, max_instances)


def tensor_bytes(request: Any, dtype: np.dtype[Any], shape: list[int]) -> bytes:
    """The input's data as raw little-endian bytes of ``dtype``, from the raw or the typed contents,
    refused unless it holds exactly the elements of ``shape``."""
    count = math.prod(shape)
    tensor = request.inputs[0]
    typed = TYPED_CONTENTS[tensor.datatype]
    has_typed = tensor.HasField("contents") and tensor.contents.ByteSize() > 0
    if request.raw_input_contents:
        if has_typed:
            raise BadRequest("give the data in raw_input_contents or in contents, not both", field=f"{FIELD}.contents")
        raw: bytes = request.raw_input_contents[0]
        if len(raw) != count * dtype.itemsize:
            raise BadRequest(
                f"holds {len(raw)} bytes but shape {shape} of {tensor.datatype} needs "
                f"{count} x {dtype.itemsize} = {count * dtype.itemsize}",
                field="raw_input_contents[0]",
            )
        return raw
    values = getattr(tensor.contents, typed)
    if len(values) != count or not has_typed:
        raise BadRequest(
            f"holds {len(values)} values but shape {shape} needs {count} (or send raw_input_contents)",
            field=f"{FIELD}.contents.{typed}",
        )
    array = np.asarray(values, dtype=np.float32 if typed == "fp32_contents" else np.uint64)
    if typed == "uint_contents" and array.size and array.max() > 255:
        raise BadRequest("UINT8 values must be integers in [0, 255]", field=f"{FIELD}.contents.{typed}")
    return array.astype(dtype).tobytes()


def outputs_asked(request: Any) -> tuple[RequestedOutput, ...]:
    """The outputs to return, by name (all four when the request names none)."""
    names = [{"name": output.name} for output in request.outputs]
    return requested_outputs(names or None, True)


def raw_contents(datatype: str, values: NDArray[Any] | list[str]) -> bytes:
    """One output's ``raw_output_contents`` entry: FP32 little-endian, or BYTES elements each as
    a 4-byte little-endian length and its UTF-8 bytes (the layout tritonclient decodes)."""
    if isinstance(values, list):
        parts = [value.encode() for value in values]
        return b"".join(len(part).to_bytes(4, "little") + part for part in parts)
    if datatype != "FP32":
        raise ValueError(f"unsupported output datatype {datatype}")
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def shape_of(values: NDArray[Any] | list[str]) -> list[int]:
    """An output's shape: [N] for BYTES, the array's own for numbers."""
    return [len(values)] if isinstance(values, list) else list(values.shape)
