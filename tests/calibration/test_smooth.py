"""SECE (our reconstruction, METHODS 4 reading 1), smECE (Blasiok & Nakkiran 2023), bootstrap_ci."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration import metrics as m
from calibration.errors import MetricInputError
from calibration.smooth import BISECTION_STEPS, SmoothEce, fixed_point_bandwidth


def top_label_batch(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, 2) whose top-label pairs are exactly (conf >= 1/2, correct)."""
    probs = np.stack([conf, 1 - conf], axis=1)
    return probs, np.where(correct.astype(bool), 0, 1)


def sample(n: int, seed: int, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    return top_label_batch(conf, rng.uniform(size=n) < conf**power)


def group_calibrated() -> tuple[np.ndarray, np.ndarray]:
    """At every distinct confidence c the share of correct samples is exactly c."""
    conf = np.repeat([0.5, 0.75, 0.8, 1.0], [4, 4, 5, 3])
    correct = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1])
    return top_label_batch(conf, correct)


# ---------------------------------------------------------------- SECE
def test_sece_default_bandwidth_is_half_a_bin() -> None:
    probs, labels = sample(400, 0, power=2)
    assert m.sece(probs, labels) == m.sece(probs, labels, bandwidth=1 / 30)
    assert m.sece(probs, labels, n_bins=10) == m.sece(probs, labels, n_bins=10, bandwidth=1 / 20)


@pytest.mark.parametrize("n_bins", [1, 5, 15])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_item_22_sece_tends_to_ece_as_the_bandwidth_shrinks(n_bins: int, power: float) -> None:
    """Nearest-centre membership is equal-width binning (no confidence is on an edge here)."""
    probs, labels = sample(2000, 1, power)
    gaps = [
        abs(m.sece(probs, labels, n_bins, bandwidth=s) - m.ece(probs, labels, n_bins)) for s in (0.1, 0.01, 1e-3, 1e-5)
    ]
    assert gaps[-1] < 1e-12
    assert gaps[2] <= gaps[0] + 1e-12


def test_sece_is_zero_when_soft_accuracy_equals_confidence() -> None:
    assert m.sece(*group_calibrated()) == pytest.approx(0.0, abs=1e-15)
    assert m.sece(*group_calibrated(), bandwidth=0.3) == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 100), bandwidth=st.floats(1e-4, 10))
def test_sece_is_nonnegative_and_at_most_one(seed: int, n: int, bandwidth: float) -> None:
    probs, labels = sample(n, seed, power=3)
    assert 0.0 <= m.sece(probs, labels, bandwidth=bandwidth) <= 1.0


# ---------------------------------------------------------------- smECE
def exact_smooth_ece(conf: np.ndarray, correct: np.ndarray, s: float, points: int = 20001) -> float:
    """The definition itself: reflected kernel summed over the images, trapezoid on a fine grid."""
    t = np.linspace(0.0, 1.0, points)[:, None]
    images = [sign * conf[None, :] + 2 * k for k in range(-2, 3) for sign in (1, -1)]
    kernel = sum(np.exp(-0.5 * ((t - c) / s) ** 2) for c in images) / (s * np.sqrt(2 * np.pi))
    values = np.abs(kernel @ (conf - correct)) / conf.size
    return float(np.trapezoid(values, dx=1.0 / (points - 1)))


@pytest.mark.parametrize("bandwidth", [0.005, 0.02, 0.1, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_smooth_ece_matches_the_definition(bandwidth: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    conf = np.r_[rng.uniform(0, 1, 60), 0.0, 1.0, 1.0, 0.5]  # the end points need the reflection
    correct = (rng.uniform(size=conf.size) < conf**2).astype(float)
    ours = SmoothEce(conf, correct).at(bandwidth)
    assert ours == pytest.approx(exact_smooth_ece(conf, correct, bandwidth), abs=1e-6)


def test_smooth_ece_of_a_one_signed_residual_is_its_mean() -> None:
    """All wrong: the smoothed residual is positive everywhere and the kernel integrates to 1."""
    conf = np.random.default_rng(2).uniform(0.5, 1.0, 300)
    probs, labels = top_label_batch(conf, np.zeros(300))
    for bandwidth in (None, 0.001, 0.05, 0.4, 1.0):
        assert m.smooth_ece(probs, labels, bandwidth=bandwidth) == pytest.approx(conf.mean(), rel=1e-12)


def test_smooth_ece_is_zero_for_group_calibrated_data() -> None:
    for bandwidth in (None, 0.01, 0.2):
        assert m.smooth_ece(*group_calibrated(), bandwidth=bandwidth) == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("power", [1.0, 1.3, 2.0])
def test_automatic_bandwidth_is_the_fixed_point(power: float) -> None:
    probs, labels = sample(5000, 3, power)
    conf, correct = m.confidence_and_correct(probs, labels)
    smece = SmoothEce(conf, correct)
    s_star = fixed_point_bandwidth(smece.at)
    assert smece.at(s_star) <= s_star  # upper end of the final bracket
    assert smece.at(s_star - 2.0**-BISECTION_STEPS) > s_star - 2.0**-BISECTION_STEPS
    assert m.smooth_ece(probs, labels) == smece.at(s_star)


def test_smooth_ece_grows_with_miscalibration_and_is_small_when_calibrated() -> None:
    values = [m.smooth_ece(*sample(20_000, 4, power)) for power in (1.0, 1.5, 2.0)]
    assert values[0] < 0.01 < values[1] < values[2]


def test_duplicating_the_data_changes_nothing() -> None:
    probs, labels = sample(500, 5, power=1.5)
    twice = np.concatenate([probs, probs]), np.concatenate([labels, labels])
    assert m.smooth_ece(*twice, bandwidth=0.03) == pytest.approx(m.smooth_ece(probs, labels, 0.03), rel=1e-12)


@pytest.mark.parametrize("metric", [m.sece, m.smooth_ece])
@pytest.mark.parametrize("bandwidth", [0.0, -0.1, np.nan, np.inf])
def test_bad_bandwidth_raises(metric: Any, bandwidth: float) -> None:
    with pytest.raises(MetricInputError, match="bandwidth"):
        metric(*sample(10, 0), bandwidth=bandwidth)


# ---------------------------------------------------------------- bootstrap
@pytest.mark.parametrize(
    ("metric", "options"),
    [
        (m.ece, {}),
        (m.adaptive_ece, {"n_bins": 10}),
        (m.classwise_ece, {"num_classes": 2}),
        (m.smooth_ece, {}),
        (m.nll, {}),
        (m.brier, {}),
        (m.accuracy, {}),
    ],
)
def test_bootstrap_interval_contains_the_point_estimate(metric: Any, options: dict[str, Any]) -> None:
    probs, labels = sample(400, 6, power=2)
    low, high = m.bootstrap_ci(metric, probs, labels, n_resamples=200, **options)
    assert low <= metric(probs, labels, **options) <= high


def test_bootstrap_is_reproducible_and_narrows_with_lower_confidence() -> None:
    probs, labels = sample(300, 7, power=2)
    first = m.bootstrap_ci(m.ece, probs, labels, n_resamples=200, seed=3)
    assert first == m.bootstrap_ci(m.ece, probs, labels, n_resamples=200, seed=3)
    assert first != m.bootstrap_ci(m.ece, probs, labels, n_resamples=200, seed=4)
    narrow = m.bootstrap_ci(m.ece, probs, labels, n_resamples=200, seed=3, confidence=0.5)
    assert first[0] <= narrow[0] <= narrow[1] <= first[1]


def test_bootstrap_interval_shrinks_with_more_data() -> None:
    small = m.bootstrap_ci(m.ece, *sample(200, 8, power=2), n_resamples=200)
    large = m.bootstrap_ci(m.ece, *sample(5000, 8, power=2), n_resamples=200)
    assert large[1] - large[0] < small[1] - small[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
    ],
)
def test_bootstrap_rejects_bad_arguments(options: dict[str, Any], message: str) -> None:
    with pytest.raises(MetricInputError, match=message):
        m.bootstrap_ci(m.ece, *sample(10, 0), **options)
