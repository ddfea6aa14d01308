"""Post-hoc fits: TS never worsens validation NLL, recovers T; FTS finds gamma; grid protocols."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.errors import CalibrationError
from calibration.maps import focal_temperature_scale, temperature_scale
from calibration.metrics import ece
from calibration.posthoc import (
    FTS_GAMMAS,
    FTS_GRID,
    TS_GRID,
    fit_focal_temperature,
    fit_focal_temperature_grid,
    fit_temperature,
    fit_temperature_grid,
    focal_nll,
    minimise_log_temperature,
    nll_at_temperature,
)


def draw(n: int, k: int, temperature: float, gamma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits z ~ N(0, 2.5^2) and labels drawn from Phi_gamma(softmax(z / T))."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.5, size=(n, k))
    cdf = np.cumsum(focal_temperature_scale(z, temperature, gamma), axis=1)
    labels = np.minimum((rng.uniform(size=(n, 1)) > cdf).sum(axis=1), k - 1)
    return z, labels


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 200),
    k=st.integers(2, 6),
    scale=st.floats(0.01, 30),
)
def test_fitted_temperature_never_worsens_validation_nll(seed: int, n: int, k: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    z, labels = rng.normal(0, scale, size=(n, k)), rng.integers(0, k, n)
    fit = fit_temperature(z, labels)
    assert fit.nll_after <= fit.nll_before
    assert fit.nll_before == nll_at_temperature(z, labels, 1.0)
    assert fit.nll_after == pytest.approx(nll_at_temperature(z, labels, fit.temperature), rel=1e-12)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.0, 4.0])
def test_recovers_a_known_temperature(true_t: float) -> None:
    """Labels from softmax(z / T_true), fit on z: over-confident logits (T_true > 1) and reverse."""
    z, labels = draw(20_000, 10, true_t, 0.0, seed=1)
    assert fit_temperature(z, labels).temperature == pytest.approx(true_t, rel=0.03)


def test_fts_recovers_a_known_gamma() -> None:
    z, labels = draw(5000, 3, 1.0, -0.5, seed=0)
    fit = fit_focal_temperature(z, labels)
    assert fit.gamma == -0.5
    assert fit.temperature == pytest.approx(1.0, rel=0.1)  # T is estimated to a few % at N = 5000


def test_fts_tells_a_focal_map_from_temperature_scaling() -> None:
    """gamma = 2 data: the NLL profile is flat for gamma >= 1 (T trades off), TS loses clearly."""
    z, labels = draw(3000, 3, 1.0, 2.0, seed=0)
    fit = fit_focal_temperature(z, labels)
    ts = next(row for row in fit.per_gamma if row.gamma == 0.0)
    assert fit.gamma >= 1.0
    assert ts.nll - fit.nll_after > 0.004


@pytest.mark.parametrize(("true_t", "true_gamma"), [(1.5, 0.0), (1.0, 1.0), (0.8, -0.25)])
def test_fts_is_never_worse_than_ts_and_reports_its_table(true_t: float, true_gamma: float) -> None:
    z, labels = draw(1500, 4, true_t, true_gamma, seed=2)
    fit, ts = fit_focal_temperature(z, labels), fit_temperature(z, labels)
    assert fit.nll_after <= ts.nll_after <= fit.nll_before
    assert [row.gamma for row in fit.per_gamma] == list(FTS_GAMMAS)
    assert fit.nll_after == min(row.nll for row in fit.per_gamma)
    gamma_zero = fit.per_gamma[FTS_GAMMAS.index(0.0)]
    assert (gamma_zero.temperature, gamma_zero.nll) == (ts.temperature, ts.nll_after)
    assert focal_nll(z, labels, fit.temperature, fit.gamma) == pytest.approx(fit.nll_after, rel=1e-12)


def test_fts_with_only_gamma_zero_is_ts() -> None:
    z, labels = draw(500, 3, 2.0, 0.0, seed=3)
    fit = fit_focal_temperature(z, labels, gammas=(0.0,))
    assert (fit.gamma, fit.temperature) == (0.0, fit_temperature(z, labels).temperature)


def test_log_temperature_search_is_global() -> None:
    """Two minima in log T; the deeper one (T = 10) lies far from where Brent would start."""

    def objective(t: float) -> float:
        x = np.log(t)
        return float(min((x - np.log(0.1)) ** 2 + 0.5, (x - np.log(10.0)) ** 2))

    temperature, value = minimise_log_temperature(objective)
    assert temperature == pytest.approx(10.0, rel=1e-4) and value == pytest.approx(0.0, abs=1e-8)


def test_temperature_grid_by_ece_is_the_grid_minimum() -> None:
    z, labels = draw(2000, 5, 2.0, 0.0, seed=4)
    fit = fit_temperature_grid(z, labels)
    scores = [ece(temperature_scale(z, t), labels) for t in TS_GRID]
    assert fit.temperature == TS_GRID[int(np.argmin(scores))] and fit.score == min(scores)
    assert (fit.gamma, fit.criterion) == (0.0, "ece")
    assert fit.nll_after == pytest.approx(nll_at_temperature(z, labels, fit.temperature), rel=1e-12)
    assert len(TS_GRID) == 100 and (TS_GRID[0], TS_GRID[-1]) == (0.1, 10.0)


def test_temperature_grid_by_nll_lands_next_to_the_continuous_fit() -> None:
    z, labels = draw(2000, 5, 2.0, 0.0, seed=5)
    grid, brent = fit_temperature_grid(z, labels, criterion="nll"), fit_temperature(z, labels)
    assert abs(grid.temperature - brent.temperature) <= 0.05 + 1e-12
    assert brent.nll_after <= grid.score <= grid.nll_before


def test_focal_grid_stays_on_the_grid_and_near_the_continuous_fit() -> None:
    z, labels = draw(600, 3, 1.2, 1.0, seed=6)
    grid = fit_focal_temperature_grid(z, labels)
    assert grid.gamma in FTS_GAMMAS and grid.temperature in FTS_GRID
    assert len(FTS_GRID) == 100 and (FTS_GRID[0], FTS_GRID[-1]) == (0.05, 5.0)
    continuous = fit_focal_temperature(z, labels)
    assert continuous.nll_after <= grid.score + 1e-12
    assert grid.score - continuous.nll_after < 2e-3


def test_focal_grid_by_adaptive_ece() -> None:
    z, labels = draw(400, 3, 1.0, 0.5, seed=7)
    fit = fit_focal_temperature_grid(
        z, labels, criterion="adaptive_ece", gammas=(0.0, 1.0), temperatures=(0.5, 1.0, 2.0)
    )
    assert fit.criterion == "adaptive_ece" and 0.0 <= fit.score <= 1.0


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (np.zeros(3), np.zeros(3, dtype=int), "need logits"),
        (np.zeros((3, 2)), np.zeros(2, dtype=int), "need logits"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), "need logits"),
        (np.zeros((2, 2)), np.array([0, 2]), "labels"),
        (np.zeros((2, 2)), np.array([0.0, 1.0]), "labels"),
        (np.array([[0.0, np.nan]]), np.array([0]), "NaN"),
    ],
)
def test_bad_inputs_raise(logits: np.ndarray, labels: np.ndarray, message: str) -> None:
    for fit in (fit_temperature, fit_focal_temperature, fit_temperature_grid):
        with pytest.raises(CalibrationError, match=message):
            fit(logits, labels)


def test_bad_options_raise() -> None:
    z, labels = draw(50, 3, 1.0, 0.0, seed=8)
    with pytest.raises(CalibrationError, match="criterion"):
        fit_temperature_grid(z, labels, criterion="brier")
    with pytest.raises(CalibrationError, match="gamma"):
        fit_focal_temperature(z, labels, gammas=())
    with pytest.raises(CalibrationError, match="temperatures"):
        fit_temperature_grid(z, labels, temperatures=(0.0, 1.0))
