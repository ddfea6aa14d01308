"""Focal map and focal temperature scaling: METHODS 7 items 24-27, log-space accuracy, guard."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize

from calibration.errors import CalibrationError
from calibration.maps import (
    GUARD_EPS,
    focal_map,
    focal_temperature_scale,
    log_focal_temperature_scale,
    softmax,
    temperature_scale,
)

GAMMAS = [-1.0, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0]


def direct_focal_map(p: np.ndarray, gamma: float) -> np.ndarray:
    """The formula as written (fine away from p = 0 and p = 1)."""
    h = p / ((1 - p) ** gamma * (1 - gamma * p * np.log(p) / (1 - p)))
    return h / h.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize(
    ("p", "gamma", "expected"),
    [
        ([0.9, 0.05, 0.05], 1, [0.980697, 0.009652, 0.009652]),
        ([0.9, 0.05, 0.05], 3, [0.999662, 0.000169, 0.000169]),
        ([0.6, 0.3, 0.1], 1, [0.695866, 0.231639, 0.072495]),
        ([0.6, 0.3, 0.1], 3, [0.871011, 0.105204, 0.023785]),
        ([0.7, 0.3], 1, [0.818337, 0.181663]),
        ([0.7, 0.3], 2, [0.906438, 0.093562]),
        ([0.7, 0.3], 3, [0.955751, 0.044249]),
    ],
)
def test_item_25_golden_focal_map(p: list[float], gamma: float, expected: list[float]) -> None:
    np.testing.assert_allclose(focal_map(np.array(p), gamma), expected, atol=1e-6)


def test_item_25_golden_focal_temperature_scaling() -> None:
    np.testing.assert_allclose(temperature_scale([2, 1, 0], 2), [0.506480, 0.307196, 0.186324], atol=1e-6)
    expected = [0.569715, 0.274397, 0.155888]
    np.testing.assert_allclose(focal_temperature_scale([2, 1, 0], 2, 1), expected, atol=1e-6)


logit_batches = arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 6)), elements=st.floats(-50, 50))
temperatures = st.floats(0.01, 100)


@settings(max_examples=40, deadline=None)
@given(z=logit_batches, t=temperatures)
def test_item_24_gamma_zero_is_temperature_scaling_exactly(z: np.ndarray, t: float) -> None:
    np.testing.assert_array_equal(focal_temperature_scale(z, t, 0.0), temperature_scale(z, t))
    np.testing.assert_array_equal(focal_map(softmax(z), 0), softmax(z))


@settings(max_examples=40, deadline=None)
@given(z=logit_batches, t=temperatures, gamma=st.sampled_from(GAMMAS))
def test_item_24_argmax_preserved_and_rows_sum_to_one(z: np.ndarray, t: float, gamma: float) -> None:
    p = focal_temperature_scale(z, t, gamma)
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    top = np.take_along_axis(p, z.argmax(axis=-1)[:, None], axis=-1)
    # exact ties stay exact; logits tied to within rounding (1e-132 apart) may swap by one ulp
    np.testing.assert_allclose(top[:, 0], p.max(axis=-1), rtol=1e-14, atol=0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_tied_classes_stay_exactly_tied(gamma: float) -> None:
    p = focal_temperature_scale([[2.0, 2.0, 0.0], [0.0, 0.0, 0.0]], 0.7, gamma)
    assert p[0, 0] == p[0, 1] and p[1, 0] == p[1, 1] == p[1, 2]


@pytest.mark.parametrize("gamma", GAMMAS)
def test_log_space_agrees_with_the_direct_formula(gamma: float) -> None:
    z = np.random.default_rng(0).normal(0, 3, size=(500, 5))
    np.testing.assert_allclose(
        focal_temperature_scale(z, 1.0, gamma),
        direct_focal_map(softmax(z), gamma),
        rtol=1e-10,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        focal_map(softmax(z), gamma), focal_temperature_scale(z, 1.0, gamma), rtol=1e-10, atol=1e-15
    )
    np.testing.assert_allclose(
        log_focal_temperature_scale(z, 1.5, gamma),
        np.log(focal_temperature_scale(z, 1.5, gamma)),
        rtol=1e-10,
        atol=1e-15,
    )


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_saturated_top_class_keeps_full_precision(gamma: float) -> None:
    """z = (40, 0, 0): p_k = e^-40, q = 1 - p_top = 2 e^-40 (p_top is 1.0 in float64).

    Then h_top ~ 1 / (q^g (1 + g)) and h_k ~ p_k, so Phi_k ~ p_k q^g (1 + g).
    """
    phi = focal_temperature_scale([40.0, 0.0, 0.0], 1.0, gamma)
    expected = np.exp(-40) * (2 * np.exp(-40)) ** gamma * (1 + gamma)
    np.testing.assert_allclose(phi[1:], expected, rtol=1e-6)


def test_gamma_minus_one_has_a_finite_limit_at_certainty() -> None:
    """h(p) -> 2 as p -> 1 at gamma = -1 (0/0 in the formula): Phi_k -> p_k / 2."""
    phi = focal_temperature_scale([40.0, 0.0, 0.0], 1.0, -1.0)
    np.testing.assert_allclose(phi[1:], np.exp(-40) / 2, rtol=1e-6)
    assert focal_temperature_scale([[1e4, 0.0, -1e4]], 1e-3, -1.0)[0, 0] == 1.0


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("temperature", [1e-3, 1e-8, 1.0])
def test_extreme_logits_give_exact_one_hot_without_the_guard(gamma: float, temperature: float) -> None:
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0], [3.0, 1.0, 2.0]])
    p = focal_temperature_scale(z, temperature, gamma)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p.argmax(axis=-1), [0, 1, 0])
    np.testing.assert_array_equal(p[:2], np.eye(3)[:2])


@pytest.mark.parametrize("gamma", [-0.5, 1.0, 5.0])
def test_overflow_guard_acts_on_bad_rows_only(gamma: float) -> None:
    """A one-hot probability row overflows (log(1 - 1) = -inf): that row alone takes the guard."""
    probs = np.array([[0.0, 1.0, 0.0, 0.0], [0.4, 0.3, 0.2, 0.1]])
    phi = focal_map(probs, gamma)
    k = probs.shape[1]
    np.testing.assert_allclose(
        phi[0],
        [GUARD_EPS / k, 1 - GUARD_EPS + GUARD_EPS / k, GUARD_EPS / k, GUARD_EPS / k],
        rtol=1e-12,
    )
    assert phi[0].sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_array_equal(phi[1], focal_map(probs[1:], gamma)[0])


def test_overflowing_temperature_takes_the_guard() -> None:
    p = focal_temperature_scale([[1e4, 0.0, -1e4]], 1e-305, 2.0)  # z / T = inf
    np.testing.assert_allclose(p[0], [1 - GUARD_EPS + GUARD_EPS / 3, GUARD_EPS / 3, GUARD_EPS / 3])


def test_one_class_maps_to_one() -> None:
    assert focal_temperature_scale([[3.0], [-2.0]], 0.5, 2.0).tolist() == [[1.0], [1.0]]


@settings(max_examples=50, deadline=None)
@given(
    p_top=st.floats(0.5, 0.999),
    k=st.integers(2, 8),
    gamma=st.floats(0.01, 5),
    seed=st.integers(0, 99),
)
def test_item_26_confidence_rises_when_the_top_is_at_least_half(p_top: float, k: int, gamma: float, seed: int) -> None:
    rest = np.random.default_rng(seed).dirichlet(np.ones(k - 1)) * (1 - p_top)
    assert focal_map(np.r_[p_top, rest], gamma).max() >= p_top - 1e-12


def test_item_26_flat_multiclass_predictions_can_lose_confidence() -> None:
    """Why item 26 is conditional: gamma = 1, K = 16, top 0.19 and the rest uniform goes down."""
    p = np.r_[0.19, np.full(15, 0.81 / 15)]
    assert focal_map(p, 1.0).max() < 0.19


def expected_focal_minimiser(q: np.ndarray, gamma: float) -> np.ndarray:
    """argmin over the simplex of sum_k q_k (-(1 - p_k)^gamma log p_k), via softmax logits."""

    def risk(z: np.ndarray) -> float:
        p = softmax(z)
        return float(np.sum(q * -((1 - p) ** gamma) * np.log(p)))

    result = minimize(risk, np.log(q), method="BFGS", options={"gtol": 1e-12, "maxiter": 1000})
    return softmax(result.x)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 3.0, 5.0])
@pytest.mark.parametrize("q", [[0.7, 0.2, 0.05, 0.05], [0.4, 0.3, 0.2, 0.1], [0.97, 0.01, 0.01, 0.01]])
def test_item_27_focal_map_undoes_the_focal_bayes_minimiser(q: list[float], gamma: float) -> None:
    target = np.array(q)
    p_star = expected_focal_minimiser(target, gamma)
    np.testing.assert_allclose(focal_map(p_star, gamma), target, atol=1e-4)
    assert p_star.max() <= target.max() + 1e-9


@pytest.mark.parametrize("gamma", [-1.5, np.nan, np.inf])
def test_invalid_gamma_raises(gamma: float) -> None:
    with pytest.raises(CalibrationError, match="gamma"):
        focal_temperature_scale([[1.0, 0.0]], 1.0, gamma)
    with pytest.raises(CalibrationError, match="gamma"):
        focal_map([[0.5, 0.5]], gamma)


@pytest.mark.parametrize("probs", [[[1.2, -0.2]], [[np.nan, 1.0]]])
def test_invalid_probabilities_raise(probs: list[list[float]]) -> None:
    with pytest.raises(CalibrationError, match="probabilities"):
        focal_map(probs, 1.0)


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.nan])
def test_invalid_temperature_raises(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        focal_temperature_scale([[1.0, 0.0]], temperature, 1.0)
