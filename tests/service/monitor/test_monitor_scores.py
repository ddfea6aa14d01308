"""The score vector's encoding (service.monitor.stores.scores): exact below top_k, top k and the
rest's mass above, malformed blobs refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.monitor.errors import MonitorInputError, StoreError
from service.monitor.stores.scores import PROB_FLOOR, decode_log_probs, decode_probs, encode_scores


def softmax_rows(n: int, classes: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(scale=4.0, size=(n, classes))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), classes=st.integers(1, 40), top_k=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_decode_inverts_encode_exactly_or_by_the_documented_spread(n: int, classes: int, top_k: int, seed: int) -> None:
    probs = softmax_rows(n, classes, seed)
    blobs = encode_scores(probs, top_k)
    got = decode_probs(blobs)
    assert got.shape == (n, classes)
    if classes <= top_k:
        assert all(len(b) == 8 + 4 * classes for b in blobs)
        np.testing.assert_array_equal(got.astype(np.float32), probs)
        return
    assert all(len(b) == 12 + 8 * top_k for b in blobs)
    for row, q in zip(probs, got, strict=True):
        kept = np.argsort(row, kind="stable")[::-1][:top_k]
        assert np.sort(q.astype(np.float32)[kept]).tolist() == np.sort(row[kept]).tolist()
        rest = np.setdiff1d(np.arange(classes), kept)
        np.testing.assert_allclose(q[rest].sum(), row[rest].sum(dtype=np.float64), rtol=1e-6, atol=1e-15)
        assert np.ptp(q[rest]) == 0.0  # spread evenly
    np.testing.assert_allclose(got.sum(axis=1), probs.sum(axis=1, dtype=np.float64), rtol=1e-6)


def test_zero_probabilities_read_as_the_floor_in_log_space() -> None:
    probs = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    log_p = decode_log_probs(encode_scores(probs, top_k=2))  # the rest (0) spread over one class
    assert log_p[0, 0] == 0.0 and log_p[0, 1] == log_p[0, 2] == np.log(PROB_FLOOR)


def test_rows_written_under_different_top_k_decode_together() -> None:
    probs = softmax_rows(2, 65, seed=3)
    full, top = encode_scores(probs[:1], top_k=100)[0], encode_scores(probs[1:], top_k=32)[0]
    assert len(full) == len(top)  # 8 + 4 * 65 == 12 + 8 * 32: only the header tells them apart
    got = decode_probs([full, top])
    np.testing.assert_array_equal(got[0].astype(np.float32), probs[0])
    assert np.unique(got[1]).size == 33  # 32 kept, one spread value


def test_an_empty_read_has_no_columns() -> None:
    assert decode_log_probs([]).shape == (0, 0)


def test_bad_input_and_malformed_blobs_are_refused() -> None:
    with pytest.raises(MonitorInputError):
        encode_scores(np.ones(3, dtype=np.float32))
    with pytest.raises(MonitorInputError):
        encode_scores(np.ones((1, 3), dtype=np.float32), top_k=0)
    ten, four = encode_scores(softmax_rows(1, 10, 0))[0], encode_scores(softmax_rows(1, 4, 0))[0]
    with pytest.raises(StoreError, match="number of classes"):
        decode_probs([ten, four])
    with pytest.raises(StoreError, match="malformed"):
        decode_probs([ten[:-4]])
    with pytest.raises(StoreError, match="malformed"):
        decode_probs([b"\x01\x00"])
    with pytest.raises(StoreError, match="malformed"):
        decode_probs([np.array([3, 5], dtype="<u4").tobytes() + bytes(12)])  # 5 of 3 kept
