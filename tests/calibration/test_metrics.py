"""Binned metrics, NLL, Brier, accuracy: hand-computed values, METHODS 7 items 1-6, properties."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration import metrics as m
from calibration.errors import MetricInputError

# Five samples, K = 3 (worked by hand below; no confidence sits on a bin edge).
#   probs               label  c    argmax  correct
#   (0.9, 0.05, 0.05)   0      .9   0       1
#   (0.8, 0.1,  0.1 )   1      .8   0       0
#   (0.2, 0.6,  0.2 )   1      .6   1       1
#   (0.3, 0.3,  0.4 )   0      .4   2       0
#   (0.1, 0.7,  0.2 )   2      .7   1       0
PROBS = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.1, 0.7, 0.2]])
LABELS = np.array([0, 1, 1, 0, 2])


def test_hand_computed_ece_and_mce() -> None:
    # 4 bins: (.75, 1] {.9 ok, .8 wrong}: |1.7 - 1| = .7;
    # (.5, .75] {.6 ok, .7 wrong}: |1.3 - 1| = .3; (.25, .5] {.4 wrong}: .4.
    # ECE = (.7 + .3 + .4) / 5 = .28; MCE = max(.35, .15, .4) = .4
    assert m.ece(PROBS, LABELS, n_bins=4) == pytest.approx(0.28, abs=1e-15)
    assert m.mce(PROBS, LABELS, n_bins=4) == pytest.approx(0.4, abs=1e-15)


def test_hand_computed_adaptive_ece() -> None:
    # sorted c: .4(0) .6(1) .7(0) .8(0) .9(1); 3 bins: ranks {0,1} {2,3} {4} (floor(3r/5))
    # gaps: .4 + .6 - 1 = 0; .7 + .8 = 1.5; .9 - 1 = -.1  ->  (0 + 1.5 + .1) / 5 = .32
    assert m.adaptive_ece(PROBS, LABELS, n_bins=3) == pytest.approx(0.32, abs=1e-15)


def test_hand_computed_classwise_ece() -> None:
    # 4 bins per class, gaps sum(p) - sum(1[y=k]) per bin:
    # k=0: p (.9,.8,.2,.3,.1), y=k (1,0,0,1,0): (.75,1] .7; (.25,.5] .3-1; [0,.25] .3   -> 1.7
    # k=1: p (.05,.1,.6,.3,.7), y=k (0,1,1,0,0): [0,.25] .15-1; (.25,.5] .3; (.5,.75] 1.3-1 -> 1.45
    # k=2: p (.05,.1,.2,.4,.2), y=k (0,0,0,0,1): [0,.25] .55-1; (.25,.5] .4            -> .85
    # cw-ECE = (1.7 + 1.45 + .85) / (5 * 3) = 4 / 15
    assert m.classwise_ece(PROBS, LABELS, n_bins=4) == pytest.approx(4 / 15, abs=1e-15)
    assert m.classwise_ece(PROBS, LABELS, n_bins=4, num_classes=3) == pytest.approx(4 / 15, abs=1e-15)


def test_hand_computed_nll_brier_accuracy() -> None:
    # p on the label: .9 .1 .6 .3 .2; squared errors per row: .015 1.46 .24 .74 1.14 (sum 3.595)
    assert m.nll(PROBS, LABELS) == pytest.approx(-np.log([0.9, 0.1, 0.6, 0.3, 0.2]).mean(), abs=1e-15)
    assert m.brier(PROBS, LABELS) == pytest.approx(3.595 / 5, abs=1e-15)
    assert m.accuracy(PROBS, LABELS) == pytest.approx(0.4, abs=1e-15)


def calibrated_sample(n: int, seed: int, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """K = 10: c ~ U(0.1, 1) on class 0, the rest spread evenly; correct with chance c**power."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.1, 1.0, n)
    probs = np.repeat(((1 - conf) / 9)[:, None], 10, axis=1)
    probs[:, 0] = conf
    wrong = rng.uniform(size=n) >= conf**power
    return probs, np.where(wrong, rng.integers(1, 10, n), 0)


def test_item_1_one_bin_ece_is_the_confidence_accuracy_gap() -> None:
    probs, labels = calibrated_sample(500, 1, power=2)
    conf, correct = m.confidence_and_correct(probs, labels)
    assert m.ece(probs, labels, n_bins=1) == pytest.approx(abs(conf.mean() - correct.mean()), abs=1e-14)


def test_item_2_constant_confidence_ece_equals_adaece() -> None:
    probs = np.tile([0.95, 0.05], (10, 1))
    labels = np.array([0] * 9 + [1])
    assert m.ece(probs, labels) == pytest.approx(0.05, abs=1e-12)
    assert m.adaptive_ece(probs, labels) == pytest.approx(0.05, abs=1e-12)


def test_item_3_synthetic_calibrated_and_overconfident() -> None:
    calibrated = calibrated_sample(200_000, 3)
    assert m.ece(*calibrated) < 0.005
    overconfident = calibrated_sample(200_000, 3, power=2)  # E[c - c^2], c ~ U(.1, 1) = 0.18
    assert m.ece(*overconfident) == pytest.approx(0.18, abs=0.005)


@pytest.mark.parametrize("n", [1, 7, 15, 16, 100, 1001])
@pytest.mark.parametrize("n_bins", [1, 2, 15])
def test_item_4_equal_mass_bins_hold_floor_or_ceil(n: int, n_bins: int) -> None:
    conf = np.random.default_rng(n).permutation(np.linspace(0.05, 0.99, n))
    counts = np.bincount(m.equal_mass_bin_indices(conf, n_bins), minlength=n_bins)
    assert counts.sum() == n  # nobody dropped (the reference code drops the minimum)
    assert set(counts) <= {n // n_bins, -(-n // n_bins)}


def test_equal_confidences_share_an_equal_mass_bin() -> None:
    conf = np.array([0.3, 0.5, 0.5, 0.5, 0.5, 0.9])
    idx = m.equal_mass_bin_indices(conf, 3)
    assert len(set(idx[1:5])) == 1


def test_item_6_brier_extremes() -> None:
    eye = np.eye(4)
    assert m.brier(eye, np.arange(4)) == 0.0
    assert m.brier(eye, np.array([1, 2, 3, 0])) == 2.0


def simplex_batch(seed: int, n: int, k: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax rows, optionally rounded (ties, exact 0 and 1), with some one-hot and zero rows."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.3), size=n)
    if decimals is not None:
        probs = np.round(probs, decimals)
    probs[rng.uniform(size=n) < 0.1] = np.eye(k)[0]
    return probs, rng.integers(0, k, n)


batches = st.builds(
    simplex_batch,
    st.integers(0, 2**32 - 1),
    st.integers(1, 200),
    st.integers(1, 6),
    st.sampled_from([None, 1, 2]),
)
BINNED = [m.ece, m.mce, m.adaptive_ece, m.classwise_ece, m.sece, m.smooth_ece]


@settings(max_examples=30, deadline=None)
@given(batch=batches, perm_seed=st.integers(0, 1000))
def test_item_5_every_metric_is_permutation_invariant(batch: tuple[np.ndarray, np.ndarray], perm_seed: int) -> None:
    probs, labels = batch
    perm = np.random.default_rng(perm_seed).permutation(labels.size)
    for metric in [*BINNED, m.nll, m.brier, m.accuracy]:
        assert metric(probs[perm], labels[perm]) == pytest.approx(metric(probs, labels), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(batch=batches)
def test_ranges(batch: tuple[np.ndarray, np.ndarray]) -> None:
    probs, labels = batch
    for metric in [*BINNED, m.accuracy]:
        assert 0.0 <= metric(probs, labels) <= 1.0
    assert 0.0 <= m.brier(probs, labels) <= 2.0
    assert 0.0 <= m.nll(probs, labels) <= -np.log(1e-12)


@settings(max_examples=30, deadline=None)
@given(batch=batches)
def test_top_label_matches_numpy_argmax_on_ties(batch: tuple[np.ndarray, np.ndarray]) -> None:
    probs, labels = batch
    conf, correct = m.confidence_and_correct(probs, labels)
    np.testing.assert_array_equal(conf, probs.max(axis=1))
    np.testing.assert_array_equal(correct, probs.argmax(axis=1) == labels)


def test_top_label_ties_off_the_simplex_still_take_the_first_class() -> None:
    probs = np.array([[0.6, 0.6], [0.5, 0.5], [0.2, 0.7]])
    np.testing.assert_array_equal(m.confidence_and_correct(probs, [1, 1, 1])[1], [0, 0, 1])


def test_float32_input_gives_the_float64_answer() -> None:
    probs, labels = calibrated_sample(5000, 4, power=1.5)
    p32 = probs.astype(np.float32)
    for metric in [*BINNED, m.nll, m.brier, m.accuracy]:
        assert metric(p32, labels) == pytest.approx(metric(p32.astype(np.float64), labels), abs=1e-12)


def test_confidences_exactly_zero_and_one() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    labels = np.array([0, 0, 1, 1])  # correct, wrong at c = 1, zero row (argmax 0) wrong, wrong
    assert m.ece(probs, labels) == pytest.approx((abs(0.0 - 0) + abs(3.0 - 1)) / 4)
    assert m.brier(probs, labels) == pytest.approx((0 + 2 + 1 + 2) / 4)
    assert m.nll(probs, labels) == pytest.approx(3 * -np.log(1e-12) / 4)
    for metric in BINNED:
        assert 0.0 <= metric(probs, labels) <= 1.0


def test_one_class() -> None:
    """K = 1: every prediction is class 0 and correct; a row of 1s is perfectly calibrated."""
    ones, labels = np.ones((5, 1)), np.zeros(5, dtype=int)
    for metric in [*BINNED, m.nll, m.brier]:
        assert metric(ones, labels) == pytest.approx(0.0, abs=1e-12)
    assert m.accuracy(ones, labels) == 1.0
    assert m.ece(np.full((5, 1), 0.7), labels) == pytest.approx(0.3)


@pytest.mark.parametrize("metric", [*BINNED, m.nll, m.brier, m.accuracy], ids=lambda f: f.__name__)
def test_one_sample(metric: Any) -> None:
    value = metric(np.array([[0.2, 0.8]]), np.array([1]))
    assert np.isfinite(value)


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_all_correct_and_all_wrong(n_bins: int) -> None:
    probs, _ = calibrated_sample(300, 5)
    conf = probs.max(axis=1)
    all_right, all_wrong = np.zeros(300, dtype=int), np.ones(300, dtype=int)
    for metric in (m.ece, m.adaptive_ece):
        assert metric(probs, all_right, n_bins=n_bins) == pytest.approx(np.mean(1 - conf))
        assert metric(probs, all_wrong, n_bins=n_bins) == pytest.approx(np.mean(conf))
    assert m.accuracy(probs, all_right) == 1.0 and m.accuracy(probs, all_wrong) == 0.0


def test_classwise_uses_the_columns_not_the_labels() -> None:
    """The last class never occurs in the labels; K still comes from the columns of probs."""
    probs, _ = calibrated_sample(200, 6)
    labels = np.zeros(200, dtype=int)
    with pytest.raises(MetricInputError, match="num_classes"):
        m.classwise_ece(probs, labels, num_classes=9)
    dropped = m.classwise_ece(probs[:, :9] / probs[:, :9].sum(1, keepdims=True), labels)
    assert m.classwise_ece(probs, labels, num_classes=10) != pytest.approx(dropped)


BAD_INPUTS = [
    ([0.5, 0.5], [0], "2-D"),
    ([[0.5, 0.5]], [0, 1], "length"),
    (np.zeros((0, 3)), np.zeros(0, dtype=int), "at least one"),
    ([[0.5, np.nan]], [0], "NaN"),
    ([[0.5, np.inf]], [0], "NaN or infinity"),
    ([[1.1, 0.0]], [0], r"\[0, 1\]"),
    ([[-0.1, 1.0]], [0], r"\[0, 1\]"),
    ([[0.5, 0.5]], [0.0], "integers"),
    ([[0.5, 0.5]], [2], "labels must lie"),
    ([[0.5, 0.5]], [-1], "labels must lie"),
    ([["a", "b"]], [0], "real numbers"),
    ([[0.5 + 1j, 0.5]], [0], "real numbers"),
]


@pytest.mark.parametrize(("probs", "labels", "message"), BAD_INPUTS)
@pytest.mark.parametrize("metric", [*BINNED, m.nll, m.brier, m.accuracy, m.check_inputs], ids=lambda f: f.__name__)
def test_bad_inputs_raise_metric_input_error(metric: Any, probs: Any, labels: Any, message: str) -> None:
    with pytest.raises(MetricInputError, match=message):
        metric(np.asarray(probs), np.asarray(labels))


@pytest.mark.parametrize("n_bins", [0, -3, 1.5, True])
@pytest.mark.parametrize("metric", [m.ece, m.mce, m.adaptive_ece, m.classwise_ece, m.sece])
def test_bad_bin_counts_raise(metric: Any, n_bins: Any) -> None:
    with pytest.raises(MetricInputError, match="n_bins"):
        metric(PROBS, LABELS, n_bins=n_bins)


def test_tiny_excursions_outside_zero_one_are_clipped() -> None:
    probs = np.array([[1 + 1e-7, -1e-7]])
    assert m.check_inputs(probs, [0])[0].tolist() == [[1.0, 0.0]]
    assert m.ece(probs, [0]) == 0.0
