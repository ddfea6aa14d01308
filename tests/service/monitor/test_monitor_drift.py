"""Drift test on seeded synthetic streams: false alarms, detection power, label-free PSI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.binning import DEFAULT_BINS, BinStatistics, bin_indices
from calibration.manifest import ReliabilityBins
from service.monitor.drift import DriftConfig, Verdict, drift_test, psi

M = DEFAULT_BINS


def draw_confidences(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Top-label confidences of a 10-class model: in [0.1, 1], mass near 1 (mean ~0.83)."""
    return 0.1 + 0.9 * rng.beta(5.0, 1.2, size=shape)


def reference_bins(rng: np.random.Generator, n: int = 10_000, gap: float = 0.0) -> ReliabilityBins:
    """Held-out reference of a model whose accuracy is confidence - gap."""
    conf = draw_confidences(rng, (n,))
    stats = BinStatistics()
    stats.update(conf, rng.uniform(size=n) < conf - gap)
    return ReliabilityBins(
        n_bins=M,
        counts=stats.counts.tolist(),
        confidence_sums=stats.confidence_sums.tolist(),
        correct_sums=stats.correct_sums.tolist(),
    )


def windows(rng: np.random.Generator, n_windows: int, n_labels: int, gap: float = 0.0) -> list[BinStatistics]:
    """Per-bin sums of n_windows windows of n_labels labels each, accuracy = confidence - gap."""
    conf = draw_confidences(rng, (n_windows, n_labels))
    hit = (rng.uniform(size=conf.shape) < conf - gap).astype(float)
    idx = (bin_indices(conf, M) + M * np.arange(n_windows)[:, None]).ravel()
    sums = [
        np.bincount(idx, weights=w, minlength=M * n_windows).reshape(n_windows, M)
        for w in (None, conf.ravel(), hit.ravel())
    ]
    out = []
    for k in range(n_windows):
        stats = BinStatistics()
        stats.counts = sums[0][k].astype(np.int64)
        stats.confidence_sums, stats.correct_sums = sums[1][k], sums[2][k]
        out.append(stats)
    return out


def alarm_rate(stream: list[BinStatistics], reference: ReliabilityBins | None) -> float:
    verdicts = [drift_test(w, reference).verdict for w in stream]
    return sum(v is Verdict.DRIFT for v in verdicts) / len(verdicts)


def test_false_alarms_at_most_one_percent_on_calibrated_windows_of_1000_labels() -> None:
    rng = np.random.default_rng(20240601)
    reference = reference_bins(rng)
    rate = alarm_rate(windows(rng, 1000, 1000), reference)
    print(f"false-alarm rate, calibrated, n=1000, 1000 windows: {rate:.2%}")
    assert rate <= 0.01


def test_detects_accuracy_five_points_below_confidence_at_2000_labels() -> None:
    rng = np.random.default_rng(20240602)
    reference = reference_bins(rng)
    rate = alarm_rate(windows(rng, 1000, 2000, gap=0.05), reference)
    print(f"detection rate, accuracy = confidence - 0.05, n=2000, 1000 windows: {rate:.2%}")
    assert rate >= 0.95


def test_the_null_is_the_reference_calibration_not_the_diagonal() -> None:
    rng = np.random.default_rng(20240603)
    reference = reference_bins(rng, gap=0.03)  # the shipped model was already 3 points over
    stream = windows(rng, 200, 2000, gap=0.03)  # and still is: no drift
    against_reference, against_diagonal = alarm_rate(stream, reference), alarm_rate(stream, None)
    print(f"same 3-point gap: alarms vs reference {against_reference:.2%}, vs diagonal {against_diagonal:.2%}")
    assert against_reference <= 0.01 < 0.5 < against_diagonal


def test_small_windows_give_insufficient_data_with_figures_still_reported() -> None:
    (window,) = windows(np.random.default_rng(4), 1, 150, gap=0.2)
    result = drift_test(window, None, DriftConfig(min_labels=200))
    assert result.verdict is Verdict.INSUFFICIENT_DATA and result.n == 150
    assert result.threshold is not None and result.p_value is not None
    empty = drift_test(BinStatistics(), None)
    assert (empty.verdict, empty.n, empty.threshold, empty.p_value) == (Verdict.INSUFFICIENT_DATA, 0, None, None)


def test_verdict_is_deterministic_and_consistent_with_its_p_value() -> None:
    rng = np.random.default_rng(5)
    reference = reference_bins(rng)
    for window in windows(rng, 20, 1500, gap=0.03):
        first, again = drift_test(window, reference), drift_test(window, reference)
        assert first == again
        assert first.threshold is not None and first.p_value is not None
        drifted = first.statistic > first.threshold
        assert (first.verdict is Verdict.DRIFT) == drifted
        if drifted:
            assert first.p_value <= 0.005 + 1 / 1001


def test_psi_is_zero_on_the_reference_and_uses_epsilon_for_empty_bins() -> None:
    q = np.array([0.1, 0.2, 0.3, 0.4])
    assert psi([10, 20, 30, 40], q) == pytest.approx(0.0, abs=1e-15)
    expected = (0.5 - 0.25) * math.log(2) * 2  # p = (.5, .5, 0, 0) vs q = (.25,) * 4
    shifted = psi([5, 5, 0, 0], [0.25] * 4, epsilon=1e-4)
    tail = 2 * (1e-4 - 0.25) * math.log(1e-4 / 0.25)
    assert shifted == pytest.approx(expected + tail)
    assert psi([0, 0, 0, 0], q) is None
