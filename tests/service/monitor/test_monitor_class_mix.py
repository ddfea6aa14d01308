"""Label-free class-mix signal: the statistic, its sample-size-aware flag, the window that feeds it,
the status, the Prometheus gauges and the merge across worker slots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from monitor_data import FakeClock, make_reference
from prometheus_client import CollectorRegistry

from service.monitor import Monitor, MonitorCollector, SQLiteStore
from service.monitor.drift import DriftConfig, class_mix_test, mix_null, null_size
from service.monitor.errors import MonitorInputError
from service.monitor.fleet import SlotStates
from service.monitor.state import ModelState
from service.monitor.windows import ClassMixWindow

C = 10
UNIFORM = np.full(C, 1 / C)
# A label shift like bench/shift.py's: three classes at full rate, the other seven at 10%.
SHIFTED = np.array([1.0, 0.1, 1.0, 0.1, 0.1, 0.1, 1.0, 0.1, 0.1, 0.1]) / 3.7


def posteriors(rng: np.random.Generator, priors: np.ndarray, n: int, sharpness: float = 2.0) -> np.ndarray:
    """n probability vectors of a calibrated model on data of class mix ``priors``: Dirichlet draws
    whose mean is the mix (labels drawn from them would be calibrated by construction)."""
    return rng.dirichlet(sharpness * C * priors, size=n)


def served(rng: np.random.Generator, priors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, C) probabilities and their predicted classes."""
    p = posteriors(rng, priors, n)
    return p, p.argmax(axis=1)


# --- the statistic -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=20),
    n=st.integers(1, 100_000),
)
def test_a_window_with_the_reference_mix_has_psi_zero_and_no_flag(weights: list[float], n: int) -> None:
    priors = np.asarray(weights) / sum(weights)
    result = class_mix_test(priors * n, n, priors)
    assert result is not None
    assert result.statistic == pytest.approx(0.0, abs=1e-12)
    assert not result.shift and result.threshold >= DriftConfig().class_mix_psi


def test_a_strong_label_shift_flags_at_n_200_and_5000() -> None:
    rng = np.random.default_rng(1)
    for n in (200, 5000):
        p = posteriors(rng, SHIFTED, n)
        result = class_mix_test(p.sum(axis=0), n, UNIFORM)
        assert result is not None and result.shift, (n, result)
        assert result.statistic > 0.5 and result.p_value < 0.01


@pytest.mark.parametrize("n", [200, 5000])
@pytest.mark.parametrize("one_hot", [False, True])
def test_the_resampling_threshold_alone_keeps_false_alarms_at_its_level(n: int, one_hot: bool) -> None:
    """With the PSI floor out of the way (1e-9), no-shift windows flag at most about 1 - q = 0.5%
    of the time: posteriors scatter less than labels (the multinomial null), one-hot is the worst
    case where they scatter the same."""
    config = DriftConfig(class_mix_psi=1e-9)
    rng = np.random.default_rng(n + one_hot)
    alarms = 0
    for _ in range(300):
        p = np.eye(C)[rng.choice(C, size=n, p=UNIFORM)] if one_hot else posteriors(rng, UNIFORM, n)
        result = class_mix_test(p.sum(axis=0), n, UNIFORM, config)
        assert result is not None
        alarms += result.shift
    assert alarms <= 6  # expected <= 1.5 at 0.5%; 6 is beyond 3 sd of Binomial(300, 0.005)


def test_below_min_labels_predictions_never_flag_and_the_threshold_grows_as_n_shrinks() -> None:
    config = DriftConfig(min_labels=200)
    few = class_mix_test(SHIFTED * 50, 50, UNIFORM, config)
    assert few is not None and few.statistic > few.threshold and not few.shift
    small, large = (class_mix_test(UNIFORM * n, n, UNIFORM, DriftConfig(class_mix_psi=1e-9)) for n in (200, 20_000))
    assert small is not None and large is not None and small.threshold > 10 * large.threshold


@given(n=st.integers(1, 10**9))
def test_the_null_is_drawn_at_most_19_percent_below_n(n: int) -> None:
    """Fewer draws widen the null (conservative); one cached null serves a run of n."""
    m = null_size(n)
    assert m <= n and m >= 0.8 * n - 1


def test_the_cached_null_is_sorted_and_read_only() -> None:
    null = mix_null(181, tuple(UNIFORM.tolist()), 1000, 0)
    assert null is mix_null(181, tuple(UNIFORM.tolist()), 1000, 0)
    assert np.all(np.diff(null) >= 0) and not null.flags.writeable


def test_the_statistic_refuses_mismatched_classes_and_is_none_without_predictions() -> None:
    with pytest.raises(MonitorInputError, match="classes"):
        class_mix_test(np.ones(3), 3, UNIFORM)
    assert class_mix_test(np.zeros(C), 0, UNIFORM) is None


# --- the window ----------------------------------------------------------------------------------


def test_the_window_counts_predicted_classes_and_sums_probabilities_per_bucket() -> None:
    clock = FakeClock()
    window = ClassMixWindow(window_seconds=60.0, n_buckets=6, clock=clock)
    assert window.totals() is None and window.n_classes is None
    window.update([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], [0, 2])
    clock.t += 30
    window.update([[0.6, 0.3, 0.1]], [0])
    totals = window.totals()
    assert totals is not None
    np.testing.assert_allclose(totals, [[2, 0, 1], [1.4, 0.6, 1.0]])
    clock.t += 40  # the first batch's bucket left the 60 s window
    np.testing.assert_allclose(window.totals(), [[1, 0, 0], [0.6, 0.3, 0.1]])
    copy = ClassMixWindow(window_seconds=60.0, n_buckets=6, clock=clock)
    copy.load(window.to_dict())
    np.testing.assert_array_equal(copy.totals(), window.totals())
    with pytest.raises(MonitorInputError, match="classes"):
        window.update([[0.5, 0.5]], [0])
    with pytest.raises(MonitorInputError, match="not one of"):
        ClassMixWindow.batch_sums([[0.5, 0.5]], [2])
    with pytest.raises(MonitorInputError, match="finite"):
        ClassMixWindow.batch_sums([[np.nan, 0.5]], [1])


# --- the monitor's status and gauges -------------------------------------------------------------


def fed_monitor(tmp_path: Path, priors: np.ndarray, n: int, reference_priors: list[float] | None = None) -> Monitor:
    reference = make_reference(np.random.default_rng(0))
    if reference_priors is not None:
        reference = reference.model_copy(update={"class_priors": reference_priors})
    tmp_path.mkdir(exist_ok=True)
    monitor = Monitor(SQLiteStore(tmp_path / "p.db"), {("fm", "1"): reference}, clock=FakeClock())
    probs, pred = served(np.random.default_rng(7), priors, n)
    conf = probs.max(axis=1)
    monitor.record_predictions("fm", "1", [f"p{i}" for i in range(n)], conf, pred, probs=probs.astype(np.float32))
    return monitor


@pytest.mark.parametrize("n", [200, 5000])
def test_status_stays_quiet_without_a_shift(tmp_path: Path, n: int) -> None:
    free = fed_monitor(tmp_path, UNIFORM, n).status("fm", "1").label_free
    assert free.class_mix is not None and not free.class_mix_shift and not free.class_mix.shift
    assert free.class_mix.reference_source == "uniform" and free.class_mix.predictions == n
    assert sum(free.class_mix.predicted_counts) == n
    assert free.class_mix.psi < free.class_mix.threshold


def test_status_flags_a_label_shift_without_touching_the_drift_verdict(tmp_path: Path) -> None:
    status = fed_monitor(tmp_path, SHIFTED, 1000).status("fm", "1")
    mix = status.label_free.class_mix
    assert mix is not None and mix.shift and status.label_free.class_mix_shift
    assert mix.estimated[0] > 0.2 and mix.estimated[1] < 0.06  # the kept and the thinned classes
    assert status.drift.verdict == "insufficient_data"  # no labels: the labelled verdict is apart


def test_the_manifest_priors_are_the_reference_when_present(tmp_path: Path) -> None:
    """A reference measured on the shifted mix (a prior-shift version's) sees no shift in it."""
    mix = fed_monitor(tmp_path, SHIFTED, 1000, SHIFTED.tolist()).status("fm", "1").label_free.class_mix
    assert mix is not None and mix.reference_source == "manifest" and not mix.shift
    assert mix.reference == pytest.approx(SHIFTED.tolist())


def test_no_class_mix_without_probabilities_or_reference(tmp_path: Path) -> None:
    monitor = Monitor(SQLiteStore(tmp_path / "p.db"), clock=FakeClock())
    probs, pred = served(np.random.default_rng(0), UNIFORM, 300)
    monitor.record_predictions("fm", "1", [f"p{i}" for i in range(300)], probs.max(axis=1), pred)
    monitor.record_predictions("nr", "1", [f"q{i}" for i in range(300)], probs.max(axis=1), pred, probs=probs)
    assert monitor.status("fm", "1").label_free.class_mix is None  # no probabilities
    assert monitor.status("nr", "1").label_free.class_mix is None  # no reference


def test_gauges_carry_the_class_mix_psi_threshold_and_flag(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(MonitorCollector(fed_monitor(tmp_path, SHIFTED, 1000)))
    get, mv = registry.get_sample_value, {"model": "fm", "version": "1"}
    psi, threshold = (
        get("candor_calibration_window_class_mix_psi", mv),
        get("candor_calibration_window_class_mix_threshold_psi", mv),
    )
    assert psi is not None and threshold is not None and psi > threshold
    assert get("candor_calibration_class_mix_shift_detected", mv) == 1
    quiet = CollectorRegistry()
    quiet.register(MonitorCollector(fed_monitor(tmp_path / "q", UNIFORM, 1000)))
    assert quiet.get_sample_value("candor_calibration_class_mix_shift_detected", mv) == 0


# --- worker slots ----------------------------------------------------------------------------------


def test_slots_sum_their_class_mixes_into_what_one_monitor_sees(tmp_path: Path) -> None:
    clock, reference = FakeClock(), make_reference(np.random.default_rng(0))
    slots = [
        Monitor(
            SQLiteStore(tmp_path / f"s{s}.db"), {("fm", "1"): reference}, clock=clock, fleet=SlotStates(tmp_path, s, 3)
        )
        for s in range(3)
    ]
    single = Monitor(SQLiteStore(tmp_path / "single.db"), {("fm", "1"): reference}, clock=clock)
    rng = np.random.default_rng(3)
    for i in range(9):
        probs, pred = served(rng, SHIFTED, 40)
        ids = [f"b{i}-{k}" for k in range(40)]
        slot = slots[[0, 0, 2, 0, 2, 0, 0, 2, 2][i]]  # slot 1 serves nothing: it has no class mix
        slot.record_predictions("fm", "1", ids, probs.max(axis=1), pred, probs=probs)
        single.record_predictions("fm", "1", ids, probs.max(axis=1), pred, probs=probs)
        clock.t += 20
    for monitor in slots:
        monitor.publish()  # the label-free counts' periodic publish (at most 1 s late)
    expected = single.status("fm", "1").label_free.class_mix
    assert expected is not None and expected.shift
    for monitor in slots:
        got = monitor.status("fm", "1").label_free.class_mix
        assert got is not None and got.predicted_counts == expected.predicted_counts
        assert got.estimated == pytest.approx(expected.estimated, rel=1e-12)
        assert got.psi == pytest.approx(expected.psi, rel=1e-9) and got.shift


def test_a_state_published_before_the_class_mix_loads_without_one() -> None:
    state = ModelState.create("fm", "1", None, 15, 3600.0, 60, FakeClock())
    state.class_mix.update([[0.2, 0.8]], [1])
    data = state.to_dict()
    restored = ModelState.from_dict("fm", "1", data, 15, 3600.0, 60, FakeClock())
    np.testing.assert_array_equal(restored.snapshot(FakeClock().t).class_mix, [[0, 1], [0.2, 0.8]])
    del data["class_mix"]
    assert ModelState.from_dict("fm", "1", data, 15, 3600.0, 60, FakeClock()).snapshot(0.0).class_mix is None
