"""The status a snapshot reads as: reference summary, label-free signals (confidence PSI and the
class-mix test) and label delay; pure functions of a ModelSnapshot (no lock, no store)."""

from __future__ import annotations

import numpy as np

from calibration.manifest import ReferenceFigures
from service.monitor.drift import PSI_SHIFT, DriftConfig, class_mix_test, psi
from service.monitor.schemas import ClassMix, LabelDelay, LabelFreeSignals, ReferenceSummary
from service.monitor.state import ModelSnapshot, reference_statistics


def reference_summary(ref: ReferenceFigures) -> ReferenceSummary:
    stats = reference_statistics(ref)
    mean_conf = float(stats.confidence_sums.sum() / max(stats.total, 1))
    return ReferenceSummary(n=ref.n, ece=ref.ece, accuracy=ref.accuracy, mean_confidence=mean_conf)


def label_free_signals(snap: ModelSnapshot, cfg: DriftConfig) -> LabelFreeSignals:
    """Mean confidence of the window's predictions, PSI of their histogram vs the reference, and
    the class-mix test; neither flag enters the drift verdict (that one needs labels)."""
    n = snap.window_predictions
    ref = snap.reference
    shift = None if ref is None else psi(snap.histogram, ref.confidence_histogram.fractions)
    mix = class_mix_status(snap, cfg)
    return LabelFreeSignals(
        predictions=n,
        mean_confidence=snap.window_confidence_sum / n if n else None,
        reference_mean_confidence=None if ref is None else reference_summary(ref).mean_confidence,
        confidence_psi=shift,
        confidence_shift=shift is not None and n >= cfg.min_labels and shift > PSI_SHIFT,
        class_mix=mix,
        class_mix_shift=mix is not None and mix.shift,
    )


def class_mix_status(snap: ModelSnapshot, cfg: DriftConfig) -> ClassMix | None:
    """The window's mean posterior against the reference priors (uniform where the manifest has
    none); None without a reference, without probabilities, or when the class counts differ."""
    ref, sums = snap.reference, snap.class_mix
    if ref is None or sums is None:
        return None
    n_classes = sums.shape[1]
    priors = ref.class_priors or [1.0 / n_classes] * n_classes
    n = int(round(float(sums[0].sum())))
    if len(priors) != n_classes or n == 0:
        return None
    test = class_mix_test(sums[1], n, priors, cfg)
    assert test is not None  # n > 0
    total = float(sum(priors))
    return ClassMix(
        predictions=n,
        predicted_counts=[int(round(c)) for c in sums[0].tolist()],
        estimated=(sums[1] / sums[1].sum()).tolist(),
        reference=[p / total for p in priors],
        reference_source="uniform" if ref.class_priors is None else "manifest",
        psi=test.statistic,
        threshold=test.threshold,
        p_value=test.p_value,
        shift=test.shift,
    )


def label_delay(snap: ModelSnapshot) -> LabelDelay:
    """Mean label delay since start and the upper bound of the bucket holding the median."""
    delays = snap.delays
    n = int(delays.counts.sum())
    if n == 0:
        return LabelDelay(labels=0, mean_seconds=None, median_at_most_seconds=None)
    bucket = int(np.searchsorted(delays.counts.cumsum(), (n + 1) / 2, side="left"))
    bound = float(delays.bounds[bucket]) if bucket < delays.bounds.size else None
    return LabelDelay(labels=n, mean_seconds=delays.total / n, median_at_most_seconds=bound)
