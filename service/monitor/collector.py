"""Prometheus exposition of the monitor: a custom Collector read at scrape time.

Register it on the app's own registry (never the global one):
``registry.register(MonitorCollector(monitor))``. It reads the monitor through ``MonitorReadings``,
so this module does not import the monitor (which knows nothing of Prometheus). Labels are only
model, version, bin and outcome; ``bin`` is the bin's upper edge with 4 decimals ("0.0667" ..
"1.0000"; bin b holds lower < c <= upper). The per-bin counters are cumulative since start, so
across replicas and over any range
fleet ECE = sum_b |sum increase(confidence_b) - sum increase(correct_b)| / sum increase(labeled_b).
Gauges describe this replica's own sliding window; a sample is left out while it is undefined.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from service.monitor.drift import Verdict
from service.monitor.errors import StoreError
from service.monitor.schemas import CalibrationStatus
from service.monitor.state import ModelSnapshot
from service.monitor.stores.store import Outcome, PredictionStore

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

MV = ["model", "version"]
_GAUGES = {  # name -> help; every one is labelled by model and version
    "candor_calibration_window_labels": "Labels received within the monitor's window.",
    "candor_calibration_window_predictions": "Predictions made within the monitor's window.",
    "candor_calibration_window_ece_ratio": "ECE of the labels within the window (15 bins).",
    "candor_calibration_window_accuracy_ratio": "Accuracy of the labelled predictions in the window.",
    "candor_calibration_window_confidence_ratio": "Mean confidence of the labelled predictions in the window.",
    "candor_calibration_window_label_coverage_ratio": "Labels / predictions within the window.",
    "candor_calibration_window_prediction_confidence_ratio": "Mean confidence of all predictions "
    "in the window (label-free).",
    "candor_calibration_window_confidence_psi": "PSI of the window's confidence histogram against "
    "the reference histogram (label-free).",
    "candor_calibration_window_class_mix_psi": "PSI of the window's mean served probability vector "
    "(its class mix) against the reference class priors (label-free).",
    "candor_calibration_window_class_mix_threshold_psi": "Class-mix PSI above which the mix is flagged "
    "at the window's n (label-free).",
    "candor_calibration_class_mix_shift_detected": "1 when the window's class mix shifted from the "
    "reference priors (label-free; prior-shift recalibration may help).",
    "candor_calibration_drift_ok": "1 when the window's drift verdict is ok.",
    "candor_calibration_drift_detected": "1 when the window's drift verdict is drift.",
    "candor_calibration_drift_insufficient_data": "1 when the window has too few labels for a verdict.",
    "candor_calibration_drift_statistic_ratio": "Drift test statistic (the window's ECE).",
    "candor_calibration_drift_threshold_ratio": "ECE threshold at the window's n (high quantile "
    "of a reference-calibrated model's ECE).",
    "candor_calibration_drift_p_value": "p-value of the window's ECE under the reference calibration.",
    "candor_calibration_reference_ece_ratio": "ECE of the manifest's held-out reference.",
    "candor_calibration_reference_accuracy_ratio": "Accuracy of the manifest's reference.",
    "candor_calibration_reference_confidence_ratio": "Mean confidence of the manifest's reference.",
}
_VERDICT_GAUGES = {
    Verdict.OK: "candor_calibration_drift_ok",
    Verdict.DRIFT: "candor_calibration_drift_detected",
    Verdict.INSUFFICIENT_DATA: "candor_calibration_drift_insufficient_data",
}


def bin_label(upper: float) -> str:
    """The ``bin`` label value: the bin's upper edge with 4 decimals."""
    return f"{upper:.4f}"


class MonitorReadings(Protocol):
    """What the collector reads of a monitor (service.monitor.monitor.Monitor has it all)."""

    @property
    def store(self) -> PredictionStore:
        """The prediction store (for its eviction count)."""
        ...

    def models(self) -> list[tuple[str, str]]:
        """Every (model, version) monitored."""
        ...

    def snapshot(self, model: str, version: str) -> ModelSnapshot:
        """A consistent copy of one model's state."""
        ...

    def status_of(self, snap: ModelSnapshot) -> CalibrationStatus:
        """The status of a snapshot."""
        ...

    def feedback_counts(self) -> dict[Outcome, int]:
        """Labels received since start, per outcome."""
        ...


class MonitorCollector(Collector):
    """Reads a monitor at each scrape; holds no state of its own."""

    def __init__(self, monitor: MonitorReadings) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        """Every candor_ monitor metric family, one sample per (model, version[, bin])."""
        gauges = {name: GaugeMetricFamily(name, doc, labels=MV) for name, doc in _GAUGES.items()}
        predictions = CounterMetricFamily("candor_predictions", "Predictions served.", labels=MV)
        bins = {
            part: CounterMetricFamily(f"candor_calibration_bin_{part}", doc, labels=[*MV, "bin"])
            for part, doc in (
                ("labeled", "Labelled predictions per confidence bin."),
                ("confidence", "Sum of labelled predictions' confidences per bin."),
                ("correct", "Correct labelled predictions per confidence bin."),
            )
        }
        delay = HistogramMetricFamily(
            "candor_label_delay_seconds", "Seconds from prediction to accepted label.", labels=MV
        )
        for model, version in self.monitor.models():
            snap = self.monitor.snapshot(model, version)
            status = self.monitor.status_of(snap)
            labels = [model, version]
            predictions.add_metric(labels, snap.predictions_total)
            _add_bins(bins, labels, snap)
            _add_gauges(gauges, labels, status)
            _add_delay(delay, labels, snap)
        yield predictions
        yield from bins.values()
        yield from gauges.values()
        yield delay
        yield from self._store_metrics()

    def _store_metrics(self) -> Iterator[Metric]:
        feedback = CounterMetricFamily("candor_feedback_labels", "Labels received, per outcome.", labels=["outcome"])
        for outcome, count in self.monitor.feedback_counts().items():
            feedback.add_metric([outcome.value], count)
        yield feedback
        try:
            evicted = self.monitor.store.evicted()
        except StoreError:
            return  # the scrape still answers; up stays 1 and the store's absence shows here
        yield CounterMetricFamily(
            "candor_prediction_store_evicted",
            "Unlabelled predictions dropped from the full prediction store "
            "(store-wide: shared by replicas using the same Redis).",
            value=evicted,
        )


def _add_bins(bins: dict[str, CounterMetricFamily], labels: list[str], snap: ModelSnapshot) -> None:
    stats = snap.since_start
    for b in range(stats.n_bins):
        key = [*labels, bin_label((b + 1) / stats.n_bins)]
        bins["labeled"].add_metric(key, float(stats.counts[b]))
        bins["confidence"].add_metric(key, float(stats.confidence_sums[b]))
        bins["correct"].add_metric(key, float(stats.correct_sums[b]))


def _add_gauges(gauges: dict[str, GaugeMetricFamily], labels: list[str], status: CalibrationStatus) -> None:
    window, drift, free, ref = status.window, status.drift, status.label_free, status.reference
    mix = free.class_mix
    values: dict[str, float | None] = {
        "candor_calibration_window_labels": window.labels,
        "candor_calibration_window_predictions": free.predictions,
        "candor_calibration_window_ece_ratio": window.ece,
        "candor_calibration_window_accuracy_ratio": window.accuracy,
        "candor_calibration_window_confidence_ratio": window.mean_confidence,
        "candor_calibration_window_label_coverage_ratio": status.label_coverage,
        "candor_calibration_window_prediction_confidence_ratio": free.mean_confidence,
        "candor_calibration_window_confidence_psi": free.confidence_psi,
        "candor_calibration_window_class_mix_psi": None if mix is None else mix.psi,
        "candor_calibration_window_class_mix_threshold_psi": None if mix is None else mix.threshold,
        "candor_calibration_class_mix_shift_detected": None if mix is None else float(mix.shift),
        "candor_calibration_drift_statistic_ratio": drift.statistic,
        "candor_calibration_drift_threshold_ratio": drift.threshold,
        "candor_calibration_drift_p_value": drift.p_value,
        "candor_calibration_reference_ece_ratio": None if ref is None else ref.ece,
        "candor_calibration_reference_accuracy_ratio": None if ref is None else ref.accuracy,
        "candor_calibration_reference_confidence_ratio": None if ref is None else ref.mean_confidence,
    }
    for verdict, name in _VERDICT_GAUGES.items():
        values[name] = float(drift.verdict == verdict.value)
    for name, value in values.items():
        if value is not None:
            gauges[name].add_metric(labels, float(value))


def _add_delay(delay: HistogramMetricFamily, labels: list[str], snap: ModelSnapshot) -> None:
    cumulative = snap.delays.counts.cumsum()
    buckets = [
        (repr(float(bound)), float(count)) for bound, count in zip(snap.delays.bounds, cumulative[:-1], strict=True)
    ]
    buckets.append(("+Inf", float(cumulative[-1])))
    delay.add_metric(labels, buckets, sum_value=snap.delays.total)
