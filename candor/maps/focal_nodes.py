"""The focal temperature map as ONNX nodes, in float64 and log-space like calibration.maps.

log p and log(1 - p) of softmax(z / T) without cancellation at saturation, then
log h = log p - gamma log(1 - p) - log((1 + gamma) - gamma f), f = 1 + p log p / (1 - p) (series
q (1/2 + q/6 + q^2/12) for q = 1 - p < 1e-3), normalised by logsumexp; rows with NaN or +inf take
the overflow guard (1 - eps) e_argmax + eps / K. Komisarenko & Kull 2024; METHODS 6 (a).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from calibration.maps import GUARD_EPS

SERIES_BELOW = 1e-3


class _Builder:
    """Collects nodes and constants under a name prefix; ``op`` returns the output name."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def const(self, value: float | np.ndarray, dtype: type = np.float64) -> str:
        name = f"{self.prefix}c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._count += 1
        out = f"{self.prefix}{op_type.lower()}{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


def _logsumexp(b: _Builder, x: str) -> str:
    """log sum exp over the last axis, keepdims, shifted by the row max (finite when K >= 2)."""
    top = b.op("ReduceMax", x, axes=[-1], keepdims=1)
    shifted = b.op("Exp", b.op("Sub", x, top))
    summed = b.op("ReduceSum", shifted, b.const(np.array([-1], np.int64), np.int64), keepdims=1)
    return b.op("Add", top, b.op("Log", summed))


def focal_temperature_nodes(
    logits: str, output: str, temperature: float, gamma: float, num_classes: int, prefix: str = "fts_"
) -> tuple[list[NodeProto], list[TensorProto]]:
    """Nodes computing float32 ``output`` = Phi_gamma(softmax(logits / T)) (float64 inside)."""
    b = _Builder(prefix)
    z = b.op("Div", b.op("Cast", logits, to=TensorProto.DOUBLE), b.const(temperature))
    argmax = b.op("ArgMax", z, axis=-1, keepdims=1)
    is_top = b.op("Equal", b.const(np.arange(num_classes, dtype=np.int64), np.int64), argmax)
    gap = b.op("Sub", z, b.op("ReduceMax", z, axes=[-1], keepdims=1))
    others = b.op("Where", is_top, b.const(-np.inf), gap)
    rest = b.op("ReduceSum", b.op("Exp", others), b.const(np.array([-1], np.int64), np.int64), keepdims=1)
    log1p_rest = b.op("Log", b.op("Add", b.const(1.0), rest))
    log_p = b.op("Sub", gap, log1p_rest)
    log_1mp_top = b.op("Sub", _logsumexp(b, others), log1p_rest)
    log_1mp_rest = b.op("Log", b.op("Sub", b.const(1.0), b.op("Exp", log_p)))
    log_1mp = b.op("Where", b.op("Equal", gap, b.const(0.0)), log_1mp_top, log_1mp_rest)
    log_f = _log_f(b, log_p, log_1mp)
    if gamma == -1:
        log_den = log_f
    else:
        log_den = b.op("Log", b.op("Sub", b.const(1.0 + gamma), b.op("Mul", b.const(gamma), b.op("Exp", log_f))))
    log_h = b.op("Sub", b.op("Sub", log_p, b.op("Mul", b.const(gamma), log_1mp)), log_den)
    log_phi = b.op("Sub", log_h, _logsumexp(b, log_h))
    guarded = _guard(b, log_phi, is_top, num_classes)
    b.nodes.append(
        helper.make_node("Cast", [b.op("Exp", guarded)], [output], to=TensorProto.FLOAT, name=f"{prefix}output")
    )
    return b.nodes, b.initializers


def _log_f(b: _Builder, log_p: str, log_1mp: str) -> str:
    """log f, f = 1 + p log p / (1 - p): direct above q = 1e-3, log-space series below."""
    q = b.op("Exp", log_1mp)
    p_log_p = b.op("Mul", log_p, b.op("Exp", b.op("Sub", log_p, log_1mp)))
    p_log_p = b.op("Where", b.op("IsInf", log_p, detect_positive=0), b.const(0.0), p_log_p)
    direct = b.op("Log", b.op("Add", b.const(1.0), p_log_p))
    poly = b.op("Add", b.const(0.5), b.op("Mul", q, b.op("Add", b.const(1 / 6), b.op("Div", q, b.const(12.0)))))
    series = b.op("Add", log_1mp, b.op("Log", poly))
    return b.op("Where", b.op("Less", q, b.const(SERIES_BELOW)), series, direct)


def _guard(b: _Builder, log_phi: str, is_top: str, num_classes: int) -> str:
    """Rows holding NaN or +inf become log((1 - eps) e_argmax + eps / K)."""
    bad_entry = b.op("Or", b.op("IsNaN", log_phi), b.op("IsInf", log_phi, detect_negative=0))
    bad_row = b.op("ReduceMax", b.op("Cast", bad_entry, to=TensorProto.DOUBLE), axes=[-1], keepdims=1)
    guard = b.op(
        "Where",
        is_top,
        b.const(np.log1p(-GUARD_EPS + GUARD_EPS / num_classes)),
        b.const(np.log(GUARD_EPS / num_classes)),
    )
    return b.op("Where", b.op("Cast", bad_row, to=TensorProto.BOOL), guard, log_phi)
