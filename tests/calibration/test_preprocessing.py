"""The input checks of the manifest's preprocessing: the fast path names the same element as an
element-by-element scan; normalisation is (x * scale - mean_c) / std_c."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.errors import InputError
from calibration.preprocessing import Preprocessing, check_finite_and_range


def test_normalise_is_scale_then_per_channel_mean_and_std() -> None:
    pre = Preprocessing(scale=0.5, mean=[1.0, 2.0], std=[2.0, 4.0], input_range=(0, 10))
    raw = np.arange(8, dtype=np.float64).reshape(1, 2, 2, 2)
    expected = (raw * 0.5 - np.array([1.0, 2.0]).reshape(1, 2, 1, 1)) / np.array([2.0, 4.0]).reshape(1, 2, 1, 1)
    out = pre.normalise(raw, (2, 2, 2), "x")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    with pytest.raises(InputError, match="each instance must have shape") as info:
        pre.normalise(raw[:, :1], (2, 2, 2), "x")
    assert info.value.field == "x"


def slow_check(raw: np.ndarray, bounds: tuple[float, float]) -> str | None:
    """The first offending element, scanning in order: non-finite first, then out of range."""
    bad = np.argwhere(~np.isfinite(raw))
    if len(bad):
        return "x" + "".join(f"[{i}]" for i in bad[0])
    outside = np.argwhere((raw < bounds[0]) | (raw > bounds[1]))
    return "x" + "".join(f"[{i}]" for i in outside[0]) if len(outside) else None


values = st.one_of(st.floats(-1.0, 256.0), st.sampled_from([np.nan, np.inf, -np.inf, 255.0, 0.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=24), st.integers(1, 4))
def test_range_check_names_the_same_element_as_a_full_scan(flat: list[float], rows: int) -> None:
    raw = np.resize(np.asarray(flat, dtype=np.float64), (rows, len(flat)))
    expected = slow_check(raw, (0.0, 255.0))
    if expected is None:
        check_finite_and_range(raw, (0.0, 255.0), "x")
    else:
        with pytest.raises(InputError) as info:
            check_finite_and_range(raw, (0.0, 255.0), "x")
        assert info.value.field == expected


def test_infinite_bounds_still_refuse_infinite_values() -> None:
    with pytest.raises(InputError, match="NaN and infinity"):
        check_finite_and_range(np.array([[1.0, np.inf]]), (-np.inf, np.inf), "x")
