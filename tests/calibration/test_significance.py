"""Paired statistics and the ECE floor against answers known in closed form or by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from calibration import metrics
from calibration.errors import MetricInputError
from calibration.significance import (
    TOP_LABEL_METRICS,
    TopLabel,
    ece_floor,
    holm,
    paired_bootstrap,
    paired_seed_interval,
)


def test_seed_interval_matches_the_t_formula_and_scipy() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5
    got = paired_seed_interval(a, b)
    half = stats.t.ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5)
    assert got.mean == 3.0 and got.n == 5
    assert (got.low, got.high) == pytest.approx((3.0 - half, 3.0 + half))
    assert got.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_seed_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    hits = [
        (lambda r: r.low <= 0.3 <= r.high)(paired_seed_interval(rng.normal(0.3, 1, 5) + base, base))
        for base in rng.normal(0, 5, (2000, 5))
    ]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_seed_interval_needs_two_pairs() -> None:
    with pytest.raises(MetricInputError, match="two or more"):
        paired_seed_interval([1.0], [0.0])


def records(seed: int, n: int = 2000, shift: float = 0.0) -> TopLabel:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.3, 1.0, n)
    return TopLabel(conf, (rng.random(n) < conf).astype(float), np.log(conf) - shift)


def test_bootstrap_of_identical_methods_is_exactly_zero() -> None:
    runs = [records(s) for s in range(3)]
    for metric in TOP_LABEL_METRICS.values():
        got = paired_bootstrap(metric, runs, runs, n_resamples=20)
        assert (got.mean, got.low, got.high, got.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_bootstrap_recovers_a_constant_nll_shift() -> None:
    a, b = [records(s, shift=0.1) for s in range(2)], [records(s) for s in range(2)]
    got = paired_bootstrap(TOP_LABEL_METRICS["nll"], a, b, n_resamples=200)
    assert got.mean == pytest.approx(0.1) and got.low == pytest.approx(0.1) and got.high == pytest.approx(0.1)
    assert got.p_value < 0.01


def test_bootstrap_interval_covers_a_noisy_nll_difference_and_excludes_zero() -> None:
    rng = np.random.default_rng(3)
    base = records(0, n=5000)
    noisy = TopLabel(base.confidence, base.correct, base.log_p_true - rng.normal(0.05, 0.5, 5000))
    got = paired_bootstrap(TOP_LABEL_METRICS["nll"], [noisy], [base], n_resamples=500)
    assert got.low < 0.05 < got.high and got.low > 0 and got.p_value < 0.05


def test_top_label_metrics_agree_with_the_probability_metrics() -> None:
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(5) * 0.5, 800)
    labels = rng.integers(0, 5, 800)
    record = TopLabel.from_probs(probs, labels)
    assert TOP_LABEL_METRICS["ece"](record) == pytest.approx(metrics.ece(probs, labels))
    assert TOP_LABEL_METRICS["nll"](record) == pytest.approx(metrics.nll(probs, labels))
    assert TOP_LABEL_METRICS["smooth_ece"](record) == pytest.approx(metrics.smooth_ece(probs, labels))


def test_holm_hand_computed() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8))
def test_holm_is_at_least_raw_at_most_one_and_keeps_the_order(p: list[float]) -> None:
    adjusted = holm(p)
    assert all(r <= a <= 1.0 for r, a in zip(p, adjusted, strict=True))
    ranked = sorted(range(len(p)), key=lambda i: p[i])
    assert all(adjusted[i] <= adjusted[j] for i, j in zip(ranked, ranked[1:], strict=False))


def test_ece_floor_of_a_constant_confidence_is_the_mean_absolute_binomial_deviation() -> None:
    c, n = 0.8, 10_000  # one occupied bin: ECE = |mean a - c|, E|.| = sqrt(2 / pi) sd
    mean, low, high = ece_floor(np.full(n, c), n_draws=400)
    assert mean == pytest.approx(math.sqrt(2 / math.pi) * math.sqrt(c * (1 - c) / n), rel=0.1)
    assert 0.0 <= low < mean < high


def test_a_calibrated_draw_usually_falls_inside_the_floor_range() -> None:
    conf = np.random.default_rng(5).uniform(0.2, 1.0, 5000)
    _, low, high = ece_floor(conf, n_draws=200)
    inside = [low <= TOP_LABEL_METRICS["ece"](records_like(conf, s)) <= high for s in range(100)]
    assert np.mean(inside) >= 0.85


def records_like(conf: np.ndarray, seed: int) -> TopLabel:
    correct = (np.random.default_rng(100 + seed).random(len(conf)) < conf).astype(float)
    return TopLabel(conf, correct, np.zeros_like(conf))
