"""One monitor across worker slots (service.monitor.fleet): each slot publishes its state, any
slot's reads are the sum of every slot's state, exactly what one monitor fed everything reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor_data import FakeClock, make_reference

from service.monitor import Monitor, SQLiteStore
from service.monitor.fleet import SlotStates, state_path
from service.monitor.stores.pending_log import PendingLogStore
from service.monitor.stores.store import Outcome


def slot_monitor(db: Path, run_dir: Path, slot: int, n: int, clock: FakeClock, reference) -> Monitor:
    store = PendingLogStore(SQLiteStore(db), slot=slot, n_slots=n)
    monitor = Monitor(store, clock=clock, fleet=SlotStates(run_dir, slot, n))
    monitor.add_model("m", "1", reference, [str(k) for k in range(10)])
    return monitor


def assert_close(got: object, expected: object, where: str = "status") -> None:
    """Equal, numbers to 1e-12 relative (a fleet adds the same sums in another order)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key in expected:
            assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_close(g, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), where
    else:
        assert got == expected, where


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    served_by=st.lists(st.integers(0, 2), min_size=1, max_size=12),
    labelled_by=st.lists(st.integers(0, 2), min_size=1, max_size=12),
)
def test_any_slot_reads_what_one_monitor_fed_everything_reads(
    tmp_path_factory: pytest.TempPathFactory, seed: int, served_by: list[int], labelled_by: list[int]
) -> None:
    """Batch i of predictions is served by slot served_by[i]; its labels arrive at slot
    labelled_by[i % len]: every label is accepted, and once each slot has published (labels
    publish at once, label-free counts within a second), every slot's status equals that of a
    single monitor that saw all of it."""
    tmp = tmp_path_factory.mktemp("fleet")
    rng = np.random.default_rng(seed)
    clock = FakeClock()
    reference = make_reference(np.random.default_rng(0))
    slots = [slot_monitor(tmp / "p.db", tmp, s, 3, clock, reference) for s in range(3)]
    single = Monitor(SQLiteStore(tmp / "single.db"), clock=clock)
    single.add_model("m", "1", reference)
    for i, server in enumerate(served_by):
        probs = rng.dirichlet(np.full(10, 0.3), size=7)  # served vectors: the class mix too
        conf, pred = probs.max(axis=1), probs.argmax(axis=1)
        ids = [f"b{i}-{k}" for k in range(7)]
        slots[server].record_predictions("m", "1", ids, conf, pred, probs=probs)
        single.record_predictions("m", "1", ids, conf, pred, probs=probs)
        clock.t += 30.0
        labels = [(pid, int(rng.integers(0, 10))) for pid in ids]
        result = slots[labelled_by[i % len(labelled_by)]].record_feedback(labels)
        assert result.accepted == 7
        single.record_feedback(labels)
    for monitor in slots:
        monitor.publish()  # the label-free counts' periodic publish (at most 1 s late)
    expected = single.status("m", "1").model_dump()
    assert expected["label_free"]["class_mix"]["predictions"] == 7 * len(served_by)
    for monitor in slots:
        assert_close(monitor.status("m", "1").model_dump(), expected)  # sums added in another order
        assert monitor.feedback_counts() == single.feedback_counts()
    for monitor in slots:
        monitor.store.close()
    single.store.close()


def test_a_restarted_slot_starts_from_its_published_state(tmp_path: Path) -> None:
    """kill -9 then restart: every accepted label was published before its answer, so counters
    read after the restart are what they were before it."""
    clock = FakeClock()
    a = slot_monitor(tmp_path / "p.db", tmp_path, 0, 2, clock, None)
    b = slot_monitor(tmp_path / "p.db", tmp_path, 1, 2, clock, None)
    a.record_predictions("m", "1", ["x", "y"], [0.9, 0.6], [1, 2])
    assert b.record_feedback([("x", 1), ("y", 0)]).accepted == 2  # b finds a's predictions
    before = a.status("m", "1")
    b.store.close()  # b "dies" without a shutdown publish: its file is what feedback published
    b2 = slot_monitor(tmp_path / "p.db", tmp_path, 1, 2, clock, None)
    after = b2.status("m", "1")
    assert after.since_start == before.since_start and after.since_start.labels == 2
    assert b2.feedback_counts()[Outcome.ACCEPTED] == 2
    assert b2.record_feedback([("x", 1)]).duplicate == 1  # first label wins across slots
    a.store.close()
    b2.store.close()


def test_counters_read_on_alternating_slots_never_go_backwards(tmp_path: Path) -> None:
    clock = FakeClock()
    slots = [slot_monitor(tmp_path / "p.db", tmp_path, s, 2, clock, None) for s in range(2)]
    seen = []
    for i in range(6):
        slots[i % 2].record_predictions("m", "1", [f"p{i}"], [0.7], [3])
        slots[(i + 1) % 2].record_feedback([(f"p{i}", 3)])
        seen.append(slots[i % 2].snapshot("m", "1").since_start.total)
    assert seen == sorted(seen) == list(range(1, 7))
    assert state_path(tmp_path, 0).exists() and state_path(tmp_path, 1).exists()
    for monitor in slots:
        monitor.store.close()
