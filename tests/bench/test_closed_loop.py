"""The loop's paired comparison: new - old intervals on the same rows."""

from __future__ import annotations

import numpy as np

from bench.closed_loop import compare


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_a_sharpened_underconfident_model_compares_better_on_nll_and_ece() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 1500)
    logits = rng.normal(size=(1500, 5)) + 3.0 * np.eye(5)[labels]
    calibrated, flattened = softmax(logits), softmax(logits / 3.0)
    result = compare(old=flattened, new=calibrated, labels=labels)
    assert result.n == 1500
    assert result.nll_diff.high < 0 and result.ece_diff.high < 0
    assert result.new.ece.value < result.old.ece.value
    assert result.new.nll.low <= result.new.nll.value <= result.new.nll.high
    assert abs(result.accuracy_diff.mean) < 1e-12  # same argmax: the map is monotone


def test_a_version_against_itself_differs_by_nothing() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    probs = softmax(rng.normal(size=(300, 3)))
    result = compare(probs, probs, labels)
    assert result.nll_diff.mean == 0 and result.nll_diff.low == 0 and result.nll_diff.high == 0
