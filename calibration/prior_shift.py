"""Label shift without labels: re-estimate the class priors of production by maximum likelihood.

Saerens, Latinne & Decaestecker 2002 ("Adjusting the outputs of a classifier to new a priori
probabilities"): with calibrated posteriors p(y|x) under training priors pi, the posteriors under
new priors pi' are p'(y|x) = p(y|x) w(y) / sum_k p(k|x) w(k), w = pi' / pi; EM alternates
  E: p'_s(y|x_i) from pi'_s;   M: pi'_{s+1}(y) = mean_i p'_s(y|x_i)
from pi'_0 = pi, increasing the likelihood of the unlabelled x_i at every step (it converges to a
maximum). Alexandari et al. 2020 show calibrating first, then EM, is hard to beat. Computed in log
space: log p' = log p + log w - logsumexp(log p + log w).

The correction is a map on log p: softmax(log p + log w), i.e. vector scaling with weights 1 and
biases log w (calibration.manifest.CalibrationMap kind "vector"), so it is fused like any other map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from calibration.errors import CalibrationError
from calibration.manifest import CalibrationMap
from calibration.maps import log_softmax

FloatArray = NDArray[np.float64]
PRIOR_FLOOR = 1e-6  # a class prior estimated below this is floored (its log weight stays finite)


@dataclass(frozen=True)
class PriorShift:
    """The EM's result: the training priors used, the estimated production priors, the iterations
    run, whether the largest change of a prior fell below the tolerance, and the log-likelihood gain."""

    train_priors: FloatArray
    priors: FloatArray
    iterations: int
    converged: bool
    log_likelihood_gain: float

    def log_weights(self) -> FloatArray:
        """log w = log pi' - log pi (the biases of the correction map)."""
        result: FloatArray = np.log(self.priors) - np.log(self.train_priors)
        return result

    def as_map(self) -> CalibrationMap:
        """softmax(log p + log w) as a vector-scaling map (weights 1)."""
        k = len(self.priors)
        return CalibrationMap(
            kind="vector", weights=[1.0] * k, biases=self.log_weights().tolist(), objective="prior_shift_em"
        )


def corrected_log_posteriors(log_probs: NDArray[np.floating], log_weights: FloatArray) -> FloatArray:
    """log p'(y|x) = log p(y|x) + log w(y) - logsumexp_k(log p(k|x) + log w(k))."""
    return log_softmax(np.asarray(log_probs, dtype=np.float64) + log_weights)


def estimate_priors(
    log_probs: NDArray[np.floating],
    train_priors: NDArray[np.floating],
    tolerance: float = 1e-6,
    max_iterations: int = 1000,
) -> PriorShift:
    """EM of Saerens et al. 2002 on the rows' calibrated log-posteriors (N, K) (see the module)."""
    z = np.asarray(log_probs, dtype=np.float64)
    pi = _checked_priors(train_priors, z)
    current, iterations, converged = pi.copy(), 0, False
    while iterations < max_iterations and not converged:
        iterations += 1
        updated = np.maximum(
            np.exp(corrected_log_posteriors(z, np.log(current) - np.log(pi))).mean(axis=0), PRIOR_FLOOR
        )
        updated /= updated.sum()
        converged = bool(np.abs(updated - current).max() < tolerance)
        current = updated
    gain = _log_likelihood(z, np.log(current) - np.log(pi)) - _log_likelihood(z, np.zeros_like(pi))
    return PriorShift(pi, current, iterations, converged, gain)


def _log_likelihood(z: FloatArray, log_weights: FloatArray) -> float:
    """sum_i log sum_k p(k|x_i) w(k): the unlabelled data's log-likelihood under pi' up to a constant."""
    shifted = z + log_weights
    top = shifted.max(axis=1, keepdims=True)
    return float((top[:, 0] + np.log(np.exp(shifted - top).sum(axis=1))).sum())


def _checked_priors(train_priors: NDArray[np.floating], z: FloatArray) -> FloatArray:
    pi = np.asarray(train_priors, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or pi.shape != (z.shape[1],):
        raise CalibrationError(f"need log-posteriors (N >= 1, K) and K training priors, got {z.shape} and {pi.shape}")
    if not (np.isfinite(pi).all() and (pi > 0).all()):
        raise CalibrationError("training priors must be finite and > 0")
    result: FloatArray = pi / pi.sum()
    return result
