"""BinStatistics: stream equals batch, merge equals one stream, and the bins rule at the edges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.binning import BinStatistics, bin_edges, bin_indices


def random_pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences in [0, 1] (some exactly 0, 1 and on edges) and 0/1 correctness."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0, 1, n)
    special = rng.choice(np.r_[0.0, 1.0, bin_edges(15)], size=n // 4)
    conf[: special.size] = special
    return rng.permutation(conf), (rng.uniform(size=n) < conf).astype(float)


def batch_of(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> BinStatistics:
    stats = BinStatistics(n_bins)
    stats.update(conf, correct)
    return stats


def assert_same_state(a: BinStatistics, b: BinStatistics) -> None:
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_allclose(a.confidence_sums, b.confidence_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.correct_sums, b.correct_sums, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    cuts=st.lists(st.floats(0, 1), max_size=6),
    n_bins=st.sampled_from([1, 2, 10, 15]),
)
def test_stream_over_random_batches_equals_batch(seed: int, n: int, cuts: list[float], n_bins: int) -> None:
    conf, correct = random_pairs(seed, n)
    stream = BinStatistics(n_bins)
    for part in np.split(np.arange(n), sorted(int(c * n) for c in cuts)):
        stream.update(conf[part], correct[part])
    batch = batch_of(conf, correct, n_bins)
    assert_same_state(stream, batch)
    assert stream.compute_ece() == pytest.approx(batch.compute_ece(), abs=1e-12)
    assert stream.compute_mce() == pytest.approx(batch.compute_mce(), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), share=st.floats(0, 1))
def test_merge_of_two_halves_equals_one_stream(seed: int, n: int, share: float) -> None:
    conf, correct = random_pairs(seed, n)
    cut = int(share * n)
    first, second = batch_of(conf[:cut], correct[:cut]), batch_of(conf[cut:], correct[cut:])
    first.merge(second)
    assert_same_state(first, batch_of(conf, correct))
    assert first.total == n


def test_reset_forgets_everything() -> None:
    stats = batch_of(*random_pairs(0, 100))
    stats.reset()
    assert_same_state(stats, BinStatistics(15))
    assert stats.total == 0 and stats.compute_ece() == 0.0 and stats.compute_mce() == 0.0


def test_ece_is_the_sum_of_per_bin_gaps() -> None:
    # bin (0.6, 0.8]: 0.7 correct, 0.75 wrong -> |1.45 - 1| = 0.45; bin (0.8, 1]: 0.9 correct -> 0.1
    stats = batch_of(np.array([0.7, 0.75, 0.9]), np.array([1.0, 0.0, 1.0]), n_bins=5)
    assert stats.compute_ece() == pytest.approx((0.45 + 0.1) / 3)
    assert stats.compute_mce() == pytest.approx(0.45 / 2)
    np.testing.assert_array_equal(np.isnan(stats.bin_accuracy()), [True, True, True, False, False])
    assert stats.bin_confidence()[3] == pytest.approx(0.725)


@pytest.mark.parametrize("n_bins", [1, 2, 4, 10, 15, 100])
def test_a_confidence_on_an_edge_goes_to_the_lower_bin(n_bins: int) -> None:
    """lower < c <= upper: e_m itself belongs to bin m - 1, the next float above it to bin m."""
    edges = bin_edges(n_bins)
    interior = edges[1:-1]
    np.testing.assert_array_equal(bin_indices(interior, n_bins), np.arange(n_bins - 1))
    np.testing.assert_array_equal(bin_indices(np.nextafter(interior, 2.0), n_bins), np.arange(1, n_bins))
    np.testing.assert_array_equal(bin_indices(np.nextafter(interior, -1.0), n_bins), np.arange(n_bins - 1))


@pytest.mark.parametrize("n_bins", [1, 2, 15])
def test_zero_is_in_the_first_bin_and_one_in_the_last(n_bins: int) -> None:
    np.testing.assert_array_equal(bin_indices(np.array([0.0, 5e-324, 1.0]), n_bins), [0, 0, n_bins - 1])
    stats = batch_of(np.array([0.0, 1.0]), np.array([0.0, 1.0]), n_bins)
    assert stats.counts[0] == stats.counts[-1] == (1 if n_bins > 1 else 2)
    assert stats.counts.size == n_bins  # no hidden extra bin for c = 1.0


def test_fifteen_bins_rule_on_decimal_edges() -> None:
    """The float edges k/15 of linspace decide, not the decimal intuition: 0.2 = 3/15 is an edge."""
    assert bin_edges(15)[3] == 0.2
    np.testing.assert_array_equal(bin_indices(np.array([0.2, 0.2000000001, 0.4, 0.6]), 15), [2, 3, 5, 8])


def test_update_needs_equal_lengths_and_merge_equal_bins() -> None:
    stats = BinStatistics(15)
    with pytest.raises(ValueError, match="differ in length"):
        stats.update([0.5, 0.6], [1.0])
    with pytest.raises(ValueError, match="cannot merge"):
        stats.merge(BinStatistics(10))
    with pytest.raises(ValueError, match="n_bins"):
        BinStatistics(0)
