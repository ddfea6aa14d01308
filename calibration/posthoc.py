"""Fitting post-hoc calibration maps on validation logits (numpy + scipy; no torch needed).

Used on torch logits by ``candor calibrate`` and on ONNX Runtime logits by ``calibrate-onnx``.
Never fit on test data (METHODS "Decisions" 9).

- fit_temperature: TS (Guo et al. 2017), log T by bounded Brent on validation NLL (Decisions 2).
- fit_focal_temperature: FTS (Komisarenko & Kull 2024), an inner 1-D fit of log T for every gamma of
  FTS_GAMMAS, the (gamma, T) of lowest validation NLL selected (Decisions 3).
- fit_temperature_grid / fit_focal_temperature_grid: the papers' grid protocols, to reproduce their
  tables like for like (METHODS 1.2 and 6 (a)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from calibration.errors import CalibrationError
from calibration.maps import focal_temperature_scale, log_focal_temperature_scale, log_softmax
from calibration.metrics import adaptive_ece, ece

LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))
FTS_GAMMAS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0)
TS_GRID = tuple(round(0.1 * i, 2) for i in range(1, 101))  # 0.1 .. 10.0 (MbLS / meta-calibration)
FTS_GRID = tuple(round(0.05 * i, 2) for i in range(1, 101))  # 0.05 .. 5.00 (focal_temperature_scaling)
_COARSE_POINTS = 13  # log-T grid that brackets the minimum before Brent (FTS NLL need not be unimodal)


@dataclass(frozen=True)
class TemperatureFit:
    """Result of a temperature fit: T and validation NLL before (T = 1) and after."""

    temperature: float
    nll_before: float
    nll_after: float


@dataclass(frozen=True)
class GammaFit:
    """The best T for one fixed gamma and its validation NLL."""

    gamma: float
    temperature: float
    nll: float


@dataclass(frozen=True)
class FocalTemperatureFit:
    """FTS fit: the chosen (gamma, T), NLL before (T = 1, gamma = 0) and after, each gamma's fit."""

    temperature: float
    gamma: float
    nll_before: float
    nll_after: float
    per_gamma: tuple[GammaFit, ...]


@dataclass(frozen=True)
class GridFit:
    """Grid-protocol fit: the (gamma, T) minimising the criterion, its score, NLL before / after."""

    temperature: float
    gamma: float
    criterion: str
    score: float
    nll_before: float
    nll_after: float


def checked_logits(logits: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Finite logits (N, K) and integer labels (N,) in [0, K), N >= 1."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (z.shape[0],) or z.shape[0] == 0:
        raise CalibrationError(f"need logits (N, K) and labels (N,), got {z.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[1]:
        raise CalibrationError(f"labels must be integers in [0, {z.shape[1]})")
    if not np.isfinite(z).all():
        raise CalibrationError("logits contain NaN or infinity")
    return z, y.astype(np.intp)


def nll_at_temperature(logits: NDArray[np.float64], labels: NDArray[np.intp], temperature: float) -> float:
    """Validation NLL(T) = mean_i [-z_{i,y_i}/T + logsumexp(z_i/T)]."""
    logp = log_softmax(logits / temperature)
    return float(-logp[np.arange(labels.shape[0]), labels].mean())


def focal_nll(logits: NDArray[np.float64], labels: NDArray[np.intp], temperature: float, gamma: float) -> float:
    """Validation NLL of FTS: -mean_i log Phi_gamma(softmax(z_i / T))_{y_i}, in log-space."""
    logp = log_focal_temperature_scale(logits, temperature, gamma)
    return float(-logp[np.arange(labels.shape[0]), labels].mean())


def fit_temperature(logits: ArrayLike, labels: ArrayLike, xatol: float = 1e-7) -> TemperatureFit:
    """Fit T = exp(tau) minimising validation NLL: bounded Brent over tau in [log .05, log 20].

    NLL is convex in 1/T, hence unimodal in tau, so bounded Brent converges to the global minimum;
    T = 1 is kept if it is not beaten (the fit can never worsen validation NLL).
    """
    z, y = checked_logits(logits, labels)
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


def minimise_log_temperature(objective: Callable[[float], float], xatol: float = 1e-6) -> tuple[float, float]:
    """(T, objective) at the best log T: a coarse log grid brackets the minimum, Brent refines it.

    The grid makes the search global for objectives that are not unimodal in log T; the best point
    seen (grid or Brent) is returned.
    """
    grid = np.linspace(*LOG_T_BOUNDS, _COARSE_POINTS)
    values = [objective(float(np.exp(tau))) for tau in grid]
    best = int(np.argmin(values))
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)])
    result = minimize_scalar(
        lambda tau: objective(float(np.exp(tau))),
        bounds=bracket,
        method="bounded",
        options={"xatol": xatol, "maxiter": 200},
    )
    if float(result.fun) < values[best]:
        return float(np.exp(result.x)), float(result.fun)
    return float(np.exp(grid[best])), float(values[best])


def fit_gamma(z: NDArray[np.float64], y: NDArray[np.intp], gamma: float) -> GammaFit:
    """Inner FTS fit: T minimising validation NLL of Phi_gamma(softmax(z / T)); gamma = 0 is TS."""
    if gamma == 0:
        ts = fit_temperature(z, y)
        return GammaFit(gamma=0.0, temperature=ts.temperature, nll=ts.nll_after)
    temperature, value = minimise_log_temperature(lambda t: focal_nll(z, y, t, gamma))
    return GammaFit(gamma=float(gamma), temperature=temperature, nll=value)


def fit_focal_temperature(
    logits: ArrayLike, labels: ArrayLike, gammas: Sequence[float] = FTS_GAMMAS
) -> FocalTemperatureFit:
    """FTS (METHODS Decisions 3): per gamma the best T by validation NLL; the best (gamma, T) wins.

    With gamma = 0 among the candidates (the default) the result is never worse than TS on
    validation NLL; ties go to the earlier gamma in ``gammas``.
    """
    z, y = checked_logits(logits, labels)
    if len(gammas) == 0:
        raise CalibrationError("fit_focal_temperature needs at least one gamma")
    per_gamma = tuple(fit_gamma(z, y, float(g)) for g in gammas)
    best = min(per_gamma, key=lambda fit: fit.nll)
    return FocalTemperatureFit(
        temperature=best.temperature,
        gamma=best.gamma,
        nll_before=nll_at_temperature(z, y, 1.0),
        nll_after=best.nll,
        per_gamma=per_gamma,
    )


def _criterion(name: str) -> Callable[[NDArray[np.float64], NDArray[np.intp], float, float], float]:
    """Score of (z, y, T, gamma) under a grid criterion: 'nll', 'ece' or 'adaptive_ece'."""
    binned = {"ece": ece, "adaptive_ece": adaptive_ece}
    if name == "nll":
        return focal_nll
    if name in binned:
        metric = binned[name]
        return lambda z, y, t, g: metric(focal_temperature_scale(z, t, g), y)
    raise CalibrationError(f"unknown criterion {name!r}: use 'nll', 'ece' or 'adaptive_ece'")


def grid_search(
    logits: ArrayLike,
    labels: ArrayLike,
    temperatures: Sequence[float],
    gammas: Sequence[float],
    criterion: str,
) -> GridFit:
    """The (gamma, T) on the grid with the lowest criterion (first on ties, gamma-major order)."""
    z, y = checked_logits(logits, labels)
    score = _criterion(criterion)
    if min(temperatures, default=0.0) <= 0 or len(gammas) == 0:
        raise CalibrationError("grid_search needs temperatures > 0 and at least one gamma")
    candidates = [(score(z, y, t, g), g, t) for g in gammas for t in temperatures]
    best_score, gamma, temperature = min(candidates, key=lambda c: c[0])
    return GridFit(
        temperature=float(temperature),
        gamma=float(gamma),
        criterion=criterion,
        score=float(best_score),
        nll_before=nll_at_temperature(z, y, 1.0),
        nll_after=focal_nll(z, y, temperature, gamma),
    )


def fit_temperature_grid(
    logits: ArrayLike,
    labels: ArrayLike,
    criterion: str = "ece",
    temperatures: Sequence[float] = TS_GRID,
) -> GridFit:
    """The papers' TS protocol: T in {0.1, ..., 10.0} by validation ECE ('nll', 'adaptive_ece').

    Chosen by ECE, the fit may worsen validation NLL (METHODS 7 item 8 holds for NLL fits only).
    """
    return grid_search(logits, labels, temperatures, (0.0,), criterion)


def fit_focal_temperature_grid(
    logits: ArrayLike,
    labels: ArrayLike,
    criterion: str = "nll",
    temperatures: Sequence[float] = FTS_GRID,
    gammas: Sequence[float] = FTS_GAMMAS,
) -> GridFit:
    """The FTS code's protocol: T in {0.05, ..., 5.00} for every gamma, by validation NLL or AdaECE.

    The reference list is {-1, ..., 1, 3, 5} plus a sentinel for TS; ours adds 2, TS is gamma 0.
    """
    return grid_search(logits, labels, temperatures, gammas, criterion)
