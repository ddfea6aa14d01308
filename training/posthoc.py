"""Fitting post-hoc calibration maps on validation logits (numpy + scipy; no torch needed).

Used on torch logits by ``candor calibrate`` and on ONNX Runtime logits by ``calibrate-onnx``.
Never fit on test data (METHODS "Decisions" 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from calibration.maps import log_softmax

LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


@dataclass(frozen=True)
class TemperatureFit:
    """Result of a temperature fit: T and validation NLL before (T = 1) and after."""

    temperature: float
    nll_before: float
    nll_after: float


def nll_at_temperature(logits: NDArray[np.float64], labels: NDArray[np.intp], temperature: float) -> float:
    """Validation NLL(T) = mean_i [-z_{i,y_i}/T + logsumexp(z_i/T)]."""
    logp = log_softmax(logits / temperature)
    return float(-logp[np.arange(labels.shape[0]), labels].mean())


def fit_temperature(logits: ArrayLike, labels: ArrayLike, xatol: float = 1e-7) -> TemperatureFit:
    """Fit T = exp(tau) by minimising validation NLL with bounded Brent over tau in [log .05, log 20].

    NLL is convex in 1/T, hence unimodal in tau, so bounded Brent converges to the global minimum;
    T = 1 is kept if it is not beaten (the fit can never worsen validation NLL).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.intp)
    if z.ndim != 2 or y.shape != (z.shape[0],) or z.shape[0] == 0:
        raise ValueError(f"need logits (N, K) and labels (N,), got {z.shape} and {y.shape}")
    result = minimize_scalar(
        lambda tau: nll_at_temperature(z, y, float(np.exp(tau))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": xatol, "maxiter": 500},
    )
    before = nll_at_temperature(z, y, 1.0)
    t_fit, after = float(np.exp(result.x)), float(result.fun)
    if after > before:
        t_fit, after = 1.0, before
    return TemperatureFit(temperature=t_fit, nll_before=before, nll_after=after)
