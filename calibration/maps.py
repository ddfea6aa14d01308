"""Post-hoc calibration maps in numpy (the ONNX graph fuses the same maps).

Focal map (Komisarenko & Kull 2024, METHODS 6 (a)): Phi_gamma(p)_k = h(p_k) / sum_j h(p_j) with
h(p) = p / [(1 - p)^gamma (1 - gamma p log p / (1 - p))], computed in log-space from logits:
log h = log p - gamma log(1 - p) - log(1 - gamma p log p / (1 - p)), normalised by logsumexp.
Focal temperature scaling: p = Phi_gamma(softmax(z / T)); gamma = 0 is temperature scaling.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.errors import CalibrationError

FloatArray = NDArray[np.float64]

GUARD_EPS = 1e-5  # overflow guard: (1 - eps) on the argmax + eps spread uniformly
_SERIES_BELOW = 1e-3  # 1 - p below this: 1 + p log p / (1 - p) by its Taylor series


def log_softmax(logits: ArrayLike) -> FloatArray:
    """Numerically stable log softmax over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    result: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def softmax(logits: ArrayLike) -> FloatArray:
    """softmax(z)_k = exp(z_k) / sum_j exp(z_j), stable."""
    return np.exp(log_softmax(logits))


def temperature_scale(logits: ArrayLike, temperature: float) -> FloatArray:
    """Temperature scaling (Guo et al. 2017): p = softmax(z / T), T > 0."""
    return softmax(_scaled(logits, temperature))


def _scaled(logits: ArrayLike, temperature: float) -> FloatArray:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return np.asarray(logits, dtype=np.float64) / temperature


def _check_gamma(gamma: float) -> None:
    """gamma >= -1: below it 1 - gamma p log p / (1 - p) turns negative and h is no probability."""
    if not (np.isfinite(gamma) and gamma >= -1):
        raise CalibrationError(f"focal gamma must be finite and >= -1, got {gamma}")


def _logsumexp(x: FloatArray) -> FloatArray:
    """log sum_k exp(x_k) over the last axis (keepdims); -inf for an all -inf row."""
    top = x.max(axis=-1, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    result: FloatArray = safe + np.log(np.exp(x - safe).sum(axis=-1, keepdims=True))
    return result


def _log_p_and_log_1mp(z: FloatArray) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    """log p_k and log(1 - p_k) of p = softmax(z), accurate as p_k -> 1 and p_k -> 0, and argmax z.

    With g = z - max z and s = sum over non-top classes of exp(g): log p = g - log1p(s);
    log(1 - p_top) = log s - log1p(s) (no cancellation; the same for classes tied with the top, so
    ties stay ties); log(1 - p_k) = log1p(-p_k) elsewhere (there p_k <= 1/2).
    """
    top = z.argmax(axis=-1)[..., None]
    gap = z - np.take_along_axis(z, top, axis=-1)
    others = gap.copy()
    np.put_along_axis(others, top, -np.inf, axis=-1)
    rest = np.exp(others).sum(axis=-1, keepdims=True)
    log_p = gap - np.log1p(rest)
    log_1mp_top = _logsumexp(others) - np.log1p(rest)  # also exact for classes tied with the top
    log_1mp = np.where(gap == 0, log_1mp_top, np.log1p(-np.exp(log_p)))
    return log_p, log_1mp, top


def _log_one_plus_p_log_p_over_1mp(log_p: FloatArray, log_1mp: FloatArray) -> FloatArray:
    """log f, f = 1 + p log p / (1 - p) in [0, 1]; f = q (1/2 + q/6 + q^2/12 + O(q^3)), q = 1 - p.

    The series branch stays in log-space (log q + log(...)), so f is exact even when q underflows.
    """
    q = np.exp(log_1mp)
    direct = 1.0 + np.where(np.isneginf(log_p), 0.0, log_p * np.exp(log_p - log_1mp))
    series = log_1mp + np.log(0.5 + q * (1.0 / 6.0 + q / 12.0))
    result: FloatArray = np.where(q < _SERIES_BELOW, series, np.log(direct))
    return result


def _log_denominator(log_p: FloatArray, log_1mp: FloatArray, gamma: float) -> FloatArray:
    """log(1 - gamma p log p / (1 - p)) = log((1 + gamma) - gamma f); log f itself at gamma = -1."""
    log_f = _log_one_plus_p_log_p_over_1mp(log_p, log_1mp)
    if gamma == -1:
        return log_f
    result: FloatArray = np.log((1.0 + gamma) - gamma * np.exp(log_f))
    return result


def _guarded(log_phi: FloatArray, top: NDArray[np.intp]) -> FloatArray:
    """Rows with NaN or +inf (overflow) become (1 - eps) e_argmax + eps / K (in log-space).

    METHODS 6 (a) words it as 1 - 1e-5 on the argmax and 1e-5 / K elsewhere, which sums to
    1 - 1e-5 / K; the top entry here also keeps its eps / K share so every row sums to 1.
    """
    bad = np.asarray((np.isnan(log_phi) | np.isposinf(log_phi)).any(axis=-1), dtype=np.bool_)
    if not bad.any():
        return log_phi
    k = log_phi.shape[-1]
    guard = np.full(log_phi.shape, np.log(GUARD_EPS / k))
    np.put_along_axis(guard, top, np.log1p(-GUARD_EPS + GUARD_EPS / k), axis=-1)
    return np.where(bad[..., None], guard, log_phi)


def log_focal_softmax(logits: ArrayLike, gamma: float) -> FloatArray:
    """log Phi_gamma(softmax(z)) over the last axis, in log-space, with the overflow guard."""
    _check_gamma(gamma)
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(all="ignore"):
        log_p, log_1mp, top = _log_p_and_log_1mp(z)
        log_h = log_p - gamma * log_1mp - _log_denominator(log_p, log_1mp, gamma)
        log_phi = log_h - _logsumexp(log_h)
    return _guarded(log_phi, top)


def focal_map(probs: ArrayLike, gamma: float) -> FloatArray:
    """Phi_gamma(p) (METHODS 6 (a)) for rows p on the simplex; gamma = 0 is the identity."""
    p = np.asarray(probs, dtype=np.float64)
    _check_gamma(gamma)
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise CalibrationError("focal_map needs finite probabilities in [0, 1]")
    if gamma == 0:
        return p.copy()
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    return np.exp(log_focal_softmax(log_p, gamma))


def log_focal_temperature_scale(logits: ArrayLike, temperature: float, gamma: float) -> FloatArray:
    """log Phi_gamma(softmax(z / T)); exactly log_softmax(z / T) for gamma = 0."""
    if gamma == 0:
        return log_softmax(_scaled(logits, temperature))
    with np.errstate(over="ignore"):  # z / T = inf: that row takes the guard
        return log_focal_softmax(_scaled(logits, temperature), gamma)


def focal_temperature_scale(logits: ArrayLike, temperature: float, gamma: float) -> FloatArray:
    """Focal temperature scaling (Komisarenko & Kull 2024): p = Phi_gamma(softmax(z / T)).

    gamma = 0 returns temperature_scale(z, T) itself, bit for bit.
    """
    if gamma == 0:
        return temperature_scale(logits, temperature)
    return np.exp(log_focal_temperature_scale(logits, temperature, gamma))
