"""Vector scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks", section 4.2):
p = softmax(w * z + b), one weight w_k and one bias b_k per class, fitted by validation NLL.

NLL(w, b) = mean_i [logsumexp(s_i) - s_{i,y_i}], s = w * z + b, is convex in (w, b); its gradient
is dNLL/ds = (p - onehot(y)) / N, so dw = sum_i z_i * dNLL/ds_i and db = sum_i dNLL/ds_i.
L-BFGS-B from the identity (w = 1, b = 0); the identity is kept when the fit does not beat it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from onnx import helper, numpy_helper
from scipy.optimize import minimize

from calibration.manifest import CalibrationMap
from calibration.maps import log_softmax, softmax
from calibration.posthoc import checked_logits
from candor.maps.family import Fit, MapFamily, Nodes


def vector_scale(logits: np.ndarray, weights: NDArray[np.float64], biases: NDArray[np.float64]) -> np.ndarray:
    """softmax(w * z + b) over the last axis, float64."""
    return softmax(np.asarray(logits, dtype=np.float64) * weights + biases)


def nll_and_gradient(
    params: NDArray[np.float64], z: NDArray[np.float64], y: NDArray[np.intp]
) -> tuple[float, NDArray[np.float64]]:
    """Validation NLL of softmax(w * z + b) and its gradient in (w, b), params = [w, b]."""
    k = z.shape[1]
    log_p = log_softmax(z * params[:k] + params[k:])
    rows = np.arange(len(y))
    residual = np.exp(log_p)
    residual[rows, y] -= 1.0
    residual /= len(y)
    return float(-log_p[rows, y].mean()), np.concatenate([(residual * z).sum(axis=0), residual.sum(axis=0)])


def fit_vector(logits: np.ndarray, labels: np.ndarray) -> Fit:
    """w and b minimising validation NLL; never worse than the identity map on that NLL."""
    z, y = checked_logits(logits, labels)
    k = z.shape[1]
    identity = np.concatenate([np.ones(k), np.zeros(k)])
    before, _ = nll_and_gradient(identity, z, y)
    result = minimize(nll_and_gradient, identity, args=(z, y), jac=True, method="L-BFGS-B")
    params, after = (result.x, float(result.fun)) if float(result.fun) < before else (identity, before)
    cmap = CalibrationMap(kind="vector", weights=params[:k].tolist(), biases=params[k:].tolist(), objective="nll")
    return cmap, {"validation_nll_vs": after}


def nodes(logits: str, output: str, cmap: CalibrationMap, num_classes: int) -> Nodes:
    """softmax(logits * w + b), w and b float32 initializers of shape (K,)."""
    constants = [
        numpy_helper.from_array(np.asarray(cmap.weights, np.float32), "calib_w"),
        numpy_helper.from_array(np.asarray(cmap.biases, np.float32), "calib_b"),
    ]
    graph = [
        helper.make_node("Mul", [logits, "calib_w"], ["calib_weighted"], name="calib_mul_w"),
        helper.make_node("Add", ["calib_weighted", "calib_b"], ["calib_shifted"], name="calib_add_b"),
        helper.make_node("Softmax", ["calib_shifted"], [output], axis=-1, name="calib_softmax"),
    ]
    return graph, constants


def describe(cmap: CalibrationMap) -> str:
    w, b = np.asarray(cmap.weights), np.asarray(cmap.biases)
    return (
        f"vector scaling, w in [{w.min():.3f}, {w.max():.3f}], b in [{b.min():.3f}, {b.max():.3f}] "
        f"(fitted on validation {cmap.objective})"
    )


VECTOR = MapFamily(
    kind="vector",
    method="vs",
    summary="vector scaling (per-class weight and bias)",
    apply=lambda z, cmap: vector_scale(z, np.asarray(cmap.weights), np.asarray(cmap.biases)),
    nodes=nodes,
    describe=describe,
    fit=fit_vector,
)
