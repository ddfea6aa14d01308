"""Monitor: the facade the app calls (thread-safe; store I/O happens outside its lock)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike

from calibration.binning import DEFAULT_BINS
from calibration.manifest import ReferenceFigures
from service.errors import BadRequest
from service.monitor.drift import (
    DriftConfig,
    DriftResult,
    drift_test,
    ece_interval,
)
from service.monitor.errors import MonitorInputError, StoreError, UnknownModelError
from service.monitor.fleet import SlotStates, StateDict
from service.monitor.labels import Label, label_pairs
from service.monitor.schemas import (
    CalibrationStatus,
    DriftStatus,
    FeedbackResult,
    LabelledFigures,
    reliability_bins,
)
from service.monitor.state import ModelSnapshot, ModelState, merge_snapshots, reference_statistics
from service.monitor.status import label_delay, label_free_signals, reference_summary
from service.monitor.stores.scores import DEFAULT_TOP_K, encode_scores
from service.monitor.stores.store import Outcome, PredictionRecord, PredictionStore, Resolution, ServedRows
from service.monitor.windows import DEFAULT_BUCKETS, DEFAULT_WINDOW_SECONDS, ClassMixWindow, Clock

ModelKey = tuple[str, str]
WindowTests = tuple[DriftResult, tuple[float, float] | None]
PUBLISH_EVERY_S = 1.0  # a worker slot publishes its label-free counts at most this often (fleet.py)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Window length W seconds in B buckets, M confidence bins, drift-test settings, and how much
    of each served probability vector the store keeps (service.monitor.stores.scores; 0: none)."""

    window_seconds: float = DEFAULT_WINDOW_SECONDS
    n_buckets: int = DEFAULT_BUCKETS
    n_bins: int = DEFAULT_BINS
    drift: DriftConfig = field(default_factory=DriftConfig)
    score_top_k: int = DEFAULT_TOP_K


class Monitor:
    """Joins labels to predictions and keeps per-(model, version) calibration windows.

    With ``fleet`` (a worker slot of ``candor serve --workers N``), the monitor starts from its
    slot's last published state, publishes its own (service.monitor.fleet says when), and every
    read (``models``, ``snapshot``, ``status``, ``feedback_counts``) is the sum over all slots.
    """

    def __init__(
        self,
        store: PredictionStore,
        references: Mapping[ModelKey, ReferenceFigures] | None = None,
        config: MonitorConfig | None = None,
        clock: Clock = time.time,
        fleet: SlotStates | None = None,
    ) -> None:
        self.store = store
        self.config = config or MonitorConfig()
        self.fleet = fleet
        self._clock = clock
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._published_at = time.monotonic()
        self._states: dict[ModelKey, ModelState] = {}
        self._classes: dict[ModelKey, dict[str, int]] = {}
        self._feedback = dict.fromkeys(Outcome, 0)
        self._drift_cache: dict[ModelKey, tuple[bytes, WindowTests]] = {}
        if fleet is not None:
            own = fleet.own()
            if own is not None:
                self._restore(own)
        for (model, version), reference in (references or {}).items():
            self.add_model(model, version, reference)

    def add_model(
        self, model: str, version: str, reference: ReferenceFigures | None, classes: Sequence[str] = ()
    ) -> None:
        """Start monitoring a (model, version), e.g. one loaded later (keeps existing state); with
        ``classes`` (its class names in order), feedback may name them (``resolve_feedback``)."""
        with self._lock:
            state = self._state(model, version, reference)
            if state.reference is None and reference is not None:  # restored from a fleet state
                state.reference = reference
            if classes:
                self._classes[(model, version)] = {name: i for i, name in enumerate(classes)}

    def _state(self, model: str, version: str, reference: ReferenceFigures | None = None) -> ModelState:
        """The state of a key, created on first sight (call with the lock held)."""
        state = self._states.get((model, version))
        if state is None:
            c = self.config
            state = ModelState.create(model, version, reference, c.n_bins, c.window_seconds, c.n_buckets, self._clock)
            self._states[(model, version)] = state
        return state

    def record_predictions(
        self,
        model: str,
        version: str,
        ids: Sequence[str],
        confidences: ArrayLike,
        predicted: ArrayLike,
        now: float | None = None,
        probs: ArrayLike | None = None,
    ) -> None:
        """Store served predictions for the label join and count their confidences; with
        ``probs`` (the served (n, C) probabilities), each keeps its vector for recalibration
        (``config.score_top_k``, service.monitor.stores.scores) and the batch counts into the
        window's class mix (one bincount and one column sum per batch)."""
        t = self._clock() if now is None else now
        conf = np.asarray(confidences, dtype=np.float64).reshape(-1)
        pred = np.asarray(predicted).reshape(-1)
        _check_predictions(ids, conf, pred)
        scores = self._scores(len(ids), probs)
        mix = None if probs is None else ClassMixWindow.batch_sums(probs, pred)
        self.store.put(
            [
                PredictionRecord(pid, model, version, float(c), int(k), t, s)
                for pid, c, k, s in zip(ids, conf.tolist(), pred.tolist(), scores, strict=True)
            ]
        )
        with self._lock:
            state = self._state(model, version)
            state.predicted.add_checked(conf, t)  # checked above
            state.predictions_total += conf.size
            if mix is not None:
                state.class_mix.add(mix, t)
        if self.fleet is not None and time.monotonic() - self._published_at >= PUBLISH_EVERY_S:
            try:
                self.publish()
            except StoreError as exc:  # the predictions are stored; only the label-free counts wait
                log.warning("%s", exc)

    def _scores(self, n: int, probs: ArrayLike | None) -> Sequence[bytes | None]:
        """The encoded score vector of each of n rows (None each without probs or with top_k 0)."""
        if probs is None or self.config.score_top_k == 0:
            return [None] * n
        p = np.asarray(probs, dtype=np.float32)
        if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 1:
            raise MonitorInputError(f"probabilities must be (n={n}, C >= 1), got shape {p.shape}")
        return encode_scores(p, self.config.score_top_k)

    def lookup(self, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """Stored predictions of these ids (model, version, predicted class), e.g. to map class
        names to indices before ``record_feedback``; unknown ids are left out."""
        return self.store.fetch(ids)

    def served_rows(self, model: str, version: str, since: float, until: float) -> ServedRows:
        """The stored predictions of (model, version) created in [since, until) with their served
        log-probabilities and labels (-1 while unlabelled), oldest first; rows stored without
        scores are left out (PredictionStore.served_rows). Store I/O, outside the lock."""
        return self.store.served_rows(model, version, since, until)

    def record_feedback(self, labels: Sequence[tuple[str, int]], now: float | None = None) -> FeedbackResult:
        """Join (prediction_id, label index) pairs; accepted ones update their model's window."""
        return self.record_feedback_batches([labels], now)[0]

    def record_feedback_batches(
        self, batches: Sequence[Sequence[tuple[str, int]]], now: float | None = None
    ) -> list[FeedbackResult]:
        """``record_feedback`` for several callers in one store call (group commit); each batch
        gets its own counts, as if the batches had been sent one after the other in order."""
        t = self._clock() if now is None else now
        resolutions = self.store.resolve([pair for batch in batches for pair in batch], t)
        with self._lock:
            for outcome in Outcome:
                self._feedback[outcome] += sum(r.outcome is outcome for r in resolutions)
            self._apply_accepted(resolutions, t)
        if self.fleet is not None:
            self.publish()  # before the answer: a kill -9 loses no accepted label's contribution
        results, start = [], 0
        for batch in batches:
            results.append(_counts(resolutions[start : start + len(batch)]))
            start += len(batch)
        return results

    def resolve_feedback(self, labels: Sequence[tuple[str, Label]], now: float | None = None) -> FeedbackResult:
        """Join (prediction_id, class name or index) pairs: each label is checked against the
        classes of the version that made its prediction (BadRequest naming ``labels[i].label``
        before anything is recorded), then recorded as by ``record_feedback``."""
        result = self.resolve_feedback_batches([labels], now)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def resolve_feedback_batches(
        self, requests: Sequence[Sequence[tuple[str, Label]]], now: float | None = None
    ) -> list[FeedbackResult | Exception]:
        """``resolve_feedback`` for several callers: one store read, one store write (group
        commit); a bad label fails its own request only (its BadRequest is its result)."""
        records = self.lookup([pid for labels in requests for pid, _ in labels])
        with self._lock:
            classes = dict(self._classes)
        checked: list[list[tuple[str, int]] | Exception] = []
        for labels in requests:
            try:
                checked.append(label_pairs(labels, records, classes))
            except BadRequest as exc:
                checked.append(exc)
        valid = [pairs for pairs in checked if not isinstance(pairs, Exception)]
        results = iter(self.record_feedback_batches(valid, now))
        return [pairs if isinstance(pairs, Exception) else next(results) for pairs in checked]

    def _apply_accepted(self, resolutions: Sequence[Resolution], now: float) -> None:
        """Add accepted labels to their (model, version) windows (lock held)."""
        by_key: dict[ModelKey, list[tuple[PredictionRecord, int]]] = {}
        for r in resolutions:
            if r.record is not None:
                key = (r.record.model, r.record.version)
                by_key.setdefault(key, []).append((r.record, r.label))
        for (model, version), pairs in by_key.items():
            state = self._state(model, version)
            conf = np.array([rec.confidence for rec, _ in pairs])
            hit = np.array([float(rec.predicted == label) for rec, label in pairs])
            state.labelled.update(conf, hit, now=now)
            state.delays.observe(np.array([now - rec.created_at for rec, _ in pairs]))

    def models(self) -> list[ModelKey]:
        """Every (model, version) monitored (by any worker slot), sorted."""
        with self._lock:
            keys = set(self._states)
        if self.fleet is not None:
            for sibling in self.fleet.siblings():
                keys.update((m, v) for m, v, _ in sibling["models"])
        return sorted(keys)

    def snapshot(self, model: str, version: str, now: float | None = None) -> ModelSnapshot:
        """A consistent copy of one model's state (the sum over worker slots, each as last
        published, this one's published now); UnknownModelError if never seen."""
        t = self._clock() if now is None else now
        if self.fleet is None:
            with self._lock:
                state = self._states.get((model, version))
                if state is None:
                    raise UnknownModelError(model, version)
                return state.snapshot(t)
        c = self.config
        snaps = [
            ModelState.from_dict(m, v, data, c.n_bins, c.window_seconds, c.n_buckets, self._clock).snapshot(t)
            for published in self._fleet_states()
            for m, v, data in published["models"]
            if (m, v) == (model, version)
        ]
        if not snaps:
            raise UnknownModelError(model, version)
        with self._lock:
            state = self._states.get((model, version))
        return replace(merge_snapshots(snaps[0], snaps[1:]), reference=None if state is None else state.reference)

    def feedback_counts(self) -> dict[Outcome, int]:
        """Labels received since start (by every worker slot), per outcome."""
        if self.fleet is None:
            with self._lock:
                return dict(self._feedback)
        counts = dict.fromkeys(Outcome, 0)
        for published in self._fleet_states():
            for outcome in Outcome:
                counts[outcome] += int(published["feedback"].get(outcome.value, 0))
        return counts

    def drift(self, snap: ModelSnapshot) -> DriftResult:
        """The window's drift verdict, cached while the window's sums do not change."""
        return self.window_tests(snap)[0]

    def window_tests(self, snap: ModelSnapshot) -> WindowTests:
        """The drift verdict and the ECE's bootstrap interval, cached while the window's sums do
        not change."""
        w = snap.window
        key = w.counts.tobytes() + w.confidence_sums.tobytes() + w.correct_sums.tobytes()
        with self._lock:
            cached = self._drift_cache.get((snap.model, snap.version))
        if cached is not None and cached[0] == key:
            return cached[1]
        bins = None if snap.reference is None else snap.reference.bins
        # outside the lock: a few milliseconds
        result = drift_test(w, bins, self.config.drift), ece_interval(w, seed=self.config.drift.seed)
        with self._lock:
            self._drift_cache[(snap.model, snap.version)] = (key, result)
        return result

    def status(self, model: str, version: str, now: float | None = None) -> CalibrationStatus:
        """Window and since-start figures, reliability bins, drift verdict, label-free signals."""
        return self.status_of(self.snapshot(model, version, now))

    def status_of(self, snap: ModelSnapshot) -> CalibrationStatus:
        """The status of a snapshot (what ``status`` and the Prometheus collector read)."""
        ref = snap.reference
        (drift, interval), cfg = self.window_tests(snap), self.config.drift
        return CalibrationStatus(
            model=snap.model,
            version=snap.version,
            as_of=snap.now,
            window_seconds=self.config.window_seconds,
            window=LabelledFigures.of(snap.window),
            since_start=LabelledFigures.of(snap.since_start),
            predictions_since_start=snap.predictions_total,
            label_coverage=(snap.window.total / snap.window_predictions if snap.window_predictions else None),
            reliability=reliability_bins(snap.window, None if ref is None else reference_statistics(ref)),
            reference=None if ref is None else reference_summary(ref),
            drift=DriftStatus(
                verdict=drift.verdict.value,
                statistic=drift.statistic,
                threshold=drift.threshold,
                p_value=drift.p_value,
                n=drift.n,
                min_labels=cfg.min_labels,
                quantile=cfg.quantile,
                ece_interval=interval,
            ),
            label_free=label_free_signals(snap, cfg),
            label_delay=label_delay(snap),
        )

    def publish(self) -> None:
        """Write this slot's state to its fleet file (no-op without a fleet); StoreError on failure."""
        if self.fleet is None:
            return
        with self._publish_lock:  # an older export never overwrites a newer one
            self.fleet.publish(self.export_state())
            self._published_at = time.monotonic()

    def export_state(self) -> StateDict:
        """Every model's sums and the feedback counts (service.monitor.fleet's state format)."""
        with self._lock:
            return {
                "feedback": {o.value: n for o, n in self._feedback.items()},
                "models": [[m, v, state.to_dict()] for (m, v), state in sorted(self._states.items())],
            }

    def _restore(self, data: StateDict) -> None:
        """Start from a published state (this slot's, written before its worker was restarted)."""
        c = self.config
        with self._lock:
            for outcome in Outcome:
                self._feedback[outcome] = int(data["feedback"].get(outcome.value, 0))
            for m, v, state in data["models"]:
                restored = ModelState.from_dict(m, v, state, c.n_bins, c.window_seconds, c.n_buckets, self._clock)
                self._states[(m, v)] = restored

    def _fleet_states(self) -> list[StateDict]:
        """Every worker slot's published state, this slot's published now: a reader sums files
        only (its own live state may be ahead of its file), so counters read on any worker, one
        read after another, never go backwards."""
        assert self.fleet is not None
        with self._publish_lock:
            own = self.export_state()
            self.fleet.publish(own)
            self._published_at = time.monotonic()
        return [own, *self.fleet.siblings()]


def _counts(resolutions: Sequence[Resolution]) -> FeedbackResult:
    """How many resolutions had each outcome."""
    return FeedbackResult(**{o.value: sum(r.outcome is o for r in resolutions) for o in Outcome})


def _check_predictions(ids: Sequence[str], conf: np.ndarray, pred: np.ndarray) -> None:
    if not len(ids) == conf.size == pred.size:
        raise MonitorInputError(f"{len(ids)} ids, {conf.size} confidences, {pred.size} classes")
    if conf.size and not (conf.min() >= 0.0 and conf.max() <= 1.0):  # NaN and +-inf fail too
        raise MonitorInputError("confidences must be finite and lie in [0, 1]")
    if pred.size and (pred.dtype.kind not in "iu" or pred.min() < 0):  # integer dtypes only
        raise MonitorInputError("predicted classes must be non-negative integers")
