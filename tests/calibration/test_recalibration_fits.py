"""Recalibration on served log-probabilities: the hash split, the fits, the paired comparison."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.errors import CalibrationError
from calibration.manifest import CalibrationMap
from calibration.maps import log_softmax
from calibration.recalibration import (
    LOG_FLOOR,
    Comparison,
    apply_recalibration,
    choose_best,
    compare,
    fit_on_log_probs,
    heldout_mask,
)
from calibration.significance import PairedDifference


def overconfident(n: int, k: int = 5, sharpen: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Served log-probabilities three times sharper than the calibrated ones the labels follow."""
    rng = np.random.default_rng(seed)
    calibrated = log_softmax(rng.normal(0, 1.5, (n, k)))
    y = np.array([rng.choice(k, p=np.exp(row)) for row in calibrated])
    return log_softmax(sharpen * calibrated), y


def test_split_is_stable_across_calls_and_order() -> None:
    ids = [f"pred-{i}" for i in range(1000)]
    mask = heldout_mask(ids, seed=7)
    assert np.array_equal(mask, heldout_mask(ids, seed=7))
    assert np.array_equal(mask[::-1], heldout_mask(ids[::-1], seed=7))  # per id, not per position
    assert np.array_equal(mask[10:20], heldout_mask(ids[10:20], seed=7))  # whatever window reads it


def test_split_is_about_half_and_depends_on_the_seed() -> None:
    ids = [f"{i:032x}" for i in range(20_000)]
    mask = heldout_mask(ids, seed=0)
    assert abs(mask.mean() - 0.5) < 0.02  # 2% is over 5 standard errors at n = 20000
    assert (mask != heldout_mask(ids, seed=1)).mean() > 0.4


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(2, 8), st.integers(0, 2**16))
def test_temperature_one_is_the_identity(n: int, k: int, seed: int) -> None:
    log_p = log_softmax(np.random.default_rng(seed).normal(0, 4, (n, k)))
    out = apply_recalibration(log_p, CalibrationMap(kind="temperature", temperature=1.0))
    assert np.allclose(
        out, np.exp(np.maximum(log_p, LOG_FLOOR)) / np.exp(np.maximum(log_p, LOG_FLOOR)).sum(1, keepdims=True)
    )


def test_ts_on_overconfident_served_probabilities_cools_them() -> None:
    log_p, y = overconfident(4000)
    cmap = fit_on_log_probs(log_p, y, "ts")
    assert cmap.kind == "temperature" and cmap.temperature > 2.0  # the true answer is 3


def test_fts_fits_a_focal_map() -> None:
    log_p, y = overconfident(3000, seed=1)
    cmap = fit_on_log_probs(log_p, y, "fts")
    assert cmap.kind == "focal_temperature" and cmap.temperature > 1.0


def test_best_picks_by_cross_validation_on_the_fit_half_only() -> None:
    log_p, y = overconfident(2000, seed=2)
    assert choose_best(log_p, y) in ("ts", "fts")
    assert fit_on_log_probs(log_p, y, "best").kind in ("temperature", "focal_temperature")
    assert choose_best(log_p[:5], y[:5]) == "ts"  # too few rows for the folds


def test_underflowed_probabilities_are_floored() -> None:
    log_p = np.array([[0.0, -np.inf, -np.inf]])
    out = apply_recalibration(log_p, CalibrationMap(kind="temperature", temperature=2.0))
    assert np.isfinite(out).all() and np.isclose(out.sum(), 1.0)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(CalibrationError, match="choose ts, fts or best"):
        fit_on_log_probs(np.zeros((2, 2)), np.array([0, 1]), "vs")


def test_comparison_says_a_fitted_map_is_better_on_fresh_rows() -> None:
    fit_z, fit_y = overconfident(3000, seed=3)
    held_z, held_y = overconfident(3000, seed=4)
    cmap = fit_on_log_probs(fit_z, fit_y, "ts")
    identity = CalibrationMap(kind="temperature", temperature=1.0)
    result = compare(apply_recalibration(held_z, identity), apply_recalibration(held_z, cmap), held_y, resamples=200)
    assert result.nll_new < result.nll_old and result.ece_new < result.ece_old
    assert result.nll.high < 0 and result.ece.high < 0 and result.better()


def test_comparison_of_a_version_with_itself_is_not_better() -> None:
    z, y = overconfident(500, seed=5)
    p = np.exp(z)
    result = compare(p, p, y, resamples=100)
    assert result.nll.mean == 0 and not result.better()


def test_the_rule_needs_a_significant_nll_drop_and_no_significant_ece_rise() -> None:
    def with_intervals(nll: tuple[float, float], ece: tuple[float, float]) -> Comparison:
        def diff(interval: tuple[float, float]) -> PairedDifference:
            return PairedDifference(sum(interval) / 2, interval[0], interval[1], 0.5, 100)

        return Comparison(100, diff(nll), diff(ece), 1.0, 0.9, 0.1, 0.1)

    assert with_intervals((-0.2, -0.1), (-0.05, -0.01)).better()
    assert with_intervals((-0.2, -0.1), (-0.01, 0.02)).better()  # ECE unchanged within noise
    assert not with_intervals((-0.2, -0.1), (0.01, 0.03)).better()  # ECE significantly worse
    assert not with_intervals((-0.2, 0.01), (-0.05, -0.01)).better()  # NLL not significantly better
