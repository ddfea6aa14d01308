"""Prior-shift EM (Saerens et al. 2002): recovers known priors; the correction is a map."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.errors import CalibrationError
from calibration.maps import log_softmax
from calibration.prior_shift import corrected_log_posteriors, estimate_priors


def shifted_sample(
    priors: np.ndarray, n: int, seed: int, separation: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian classes (unit variance, means separation * e_k): labels drawn from ``priors``; the
    exact posteriors under uniform training priors (calibrated by construction) and the labels."""
    rng = np.random.default_rng(seed)
    k = len(priors)
    y = rng.choice(k, size=n, p=priors)
    x = rng.standard_normal((n, k)) + separation * np.eye(k)[y]
    log_post = log_softmax(separation * x)  # p(y|x) with uniform priors: softmax of the log-likelihoods
    return log_post, y, np.full(k, 1.0 / k)


def test_em_recovers_known_priors() -> None:
    true = np.array([0.6, 0.25, 0.1, 0.05])
    log_post, _, train = shifted_sample(true, 20_000, seed=1)
    shift = estimate_priors(log_post, train)
    assert shift.converged
    assert np.abs(shift.priors - true).max() < 0.02
    naive = np.exp(log_post).mean(axis=0)  # the mean posterior is pulled towards the training priors
    assert np.abs(shift.priors - true).max() < np.abs(naive - true).max()
    assert shift.log_likelihood_gain > 0


def test_em_keeps_the_training_priors_when_production_matches() -> None:
    log_post, _, train = shifted_sample(np.full(3, 1 / 3), 30_000, seed=2)
    shift = estimate_priors(log_post, train)
    assert np.abs(shift.priors - train).max() < 0.02


def test_correction_improves_nll_under_label_shift() -> None:
    true = np.array([0.7, 0.2, 0.1])
    log_post, y, train = shifted_sample(true, 10_000, seed=3, separation=1.0)
    shift = estimate_priors(log_post, train)
    corrected = corrected_log_posteriors(log_post, shift.log_weights())
    rows = np.arange(len(y))
    assert -corrected[rows, y].mean() < -log_post[rows, y].mean()


def test_the_map_is_vector_scaling_with_unit_weights() -> None:
    log_post, _, train = shifted_sample(np.array([0.5, 0.3, 0.2]), 2_000, seed=4)
    cmap = estimate_priors(log_post, train).as_map()
    assert cmap.kind == "vector" and cmap.weights == [1.0, 1.0, 1.0]
    assert cmap.objective == "prior_shift_em"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.05, 1.0), min_size=2, max_size=6),
    st.integers(1, 20),
    st.integers(0, 2**16),
)
def test_prior_correction_with_unchanged_priors_is_the_identity(raw: list[float], n: int, seed: int) -> None:
    """pi' = pi: w = 1, log w = 0, p' = p."""
    k = len(raw)
    log_p = log_softmax(np.random.default_rng(seed).normal(0, 3, (n, k)))
    assert np.allclose(corrected_log_posteriors(log_p, np.zeros(k)), log_p, atol=1e-12)


def test_iterations_are_bounded_and_reported() -> None:
    log_post, _, train = shifted_sample(np.array([0.9, 0.1]), 500, seed=5, separation=0.3)
    shift = estimate_priors(log_post, train, tolerance=0.0, max_iterations=7)
    assert shift.iterations == 7 and not shift.converged


def test_bad_training_priors_are_refused() -> None:
    with pytest.raises(CalibrationError, match="training priors"):
        estimate_priors(np.log(np.full((3, 2), 0.5)), np.array([1.0, 0.0]))
    with pytest.raises(CalibrationError, match="K training priors"):
        estimate_priors(np.log(np.full((3, 2), 0.5)), np.array([0.5, 0.25, 0.25]))
