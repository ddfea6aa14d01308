"""Response models of the monitor: what ``GET /v1/models/{m}/calibration`` and feedback return."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from calibration.binning import BinStatistics, bin_edges


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeedbackResult(_Frozen):
    """How many of the labels sent were accepted, unknown, duplicate or expired."""

    accepted: int = Field(default=0, ge=0)
    unknown: int = Field(default=0, ge=0)
    duplicate: int = Field(default=0, ge=0)
    expired: int = Field(default=0, ge=0)


class LabelledFigures(_Frozen):
    """Figures of labelled predictions over a span (None where no label was seen)."""

    labels: int = Field(ge=0)
    ece: float | None = Field(description="sum_b |sum conf_b - sum correct_b| / N, 15 bins")
    mce: float | None
    accuracy: float | None
    mean_confidence: float | None

    @classmethod
    def of(cls, stats: BinStatistics) -> LabelledFigures:
        """Read the figures off per-bin sums."""
        n = stats.total
        if n == 0:
            return cls(labels=0, ece=None, mce=None, accuracy=None, mean_confidence=None)
        return cls(
            labels=n,
            ece=stats.compute_ece(),
            mce=stats.compute_mce(),
            accuracy=float(stats.correct_sums.sum() / n),
            mean_confidence=float(stats.confidence_sums.sum() / n),
        )


class ReliabilityBin(_Frozen):
    """One equal-width bin (lower < c <= upper) of the window's reliability diagram."""

    lower: float
    upper: float
    count: int = Field(ge=0)
    accuracy: float | None
    mean_confidence: float | None
    reference_accuracy: float | None = None
    reference_confidence: float | None = None


def reliability_bins(window: BinStatistics, reference: BinStatistics | None) -> list[ReliabilityBin]:
    """Per-bin accuracy and confidence of the window, beside the reference's where it has one."""
    edges = bin_edges(window.n_bins)
    acc, conf = window.bin_accuracy(), window.bin_confidence()
    ref_acc = reference.bin_accuracy() if reference is not None else None
    ref_conf = reference.bin_confidence() if reference is not None else None
    return [
        ReliabilityBin(
            lower=float(edges[b]),
            upper=float(edges[b + 1]),
            count=int(window.counts[b]),
            accuracy=_finite(acc[b]),
            mean_confidence=_finite(conf[b]),
            reference_accuracy=None if ref_acc is None else _finite(ref_acc[b]),
            reference_confidence=None if ref_conf is None else _finite(ref_conf[b]),
        )
        for b in range(window.n_bins)
    ]


def _finite(value: float) -> float | None:
    return None if value != value else float(value)  # NaN (empty bin) -> None


class ReferenceSummary(_Frozen):
    """The manifest's held-out figures this model is compared against."""

    n: int
    ece: float
    accuracy: float
    mean_confidence: float


class DriftStatus(_Frozen):
    """Sample-size-aware drift verdict of the window (see service.monitor.drift)."""

    verdict: Literal["ok", "drift", "insufficient_data"]
    statistic: float = Field(description="the window's ECE")
    threshold: float | None = Field(
        description="q-quantile of the ECE a reference-calibrated model shows on the same bins and n"
    )
    p_value: float | None
    n: int
    min_labels: int
    quantile: float
    ece_interval: tuple[float, float] | None = Field(
        default=None, description="95% bootstrap interval of the window's ECE (None without labels)"
    )


class ClassMix(_Frozen):
    """The window's class mix against the reference's (label-free; service.monitor.drift.class_mix_test)."""

    predictions: int = Field(ge=0, description="predictions within the window served with probabilities")
    predicted_counts: list[int] = Field(description="predictions per predicted (argmax) class")
    estimated: list[float] = Field(description="mean served probability per class: the estimated class mix")
    reference: list[float] = Field(description="reference class priors (mean posterior on the reference split)")
    reference_source: Literal["manifest", "uniform"] = Field(
        description="manifest: reference.class_priors; uniform: the manifest has none (as prior-shift assumes)"
    )
    psi: float = Field(description="PSI of the estimated mix against the reference priors")
    threshold: float = Field(description="max(PSI floor, q-quantile of the PSI of a multinomial sample at n)")
    p_value: float
    shift: bool = Field(description="psi > threshold with at least min_labels predictions")


class LabelFreeSignals(_Frozen):
    """Signals that need no labels: the window's predictions against the reference histogram and
    the reference class mix. Neither flag changes the (labelled) drift verdict."""

    predictions: int = Field(ge=0, description="predictions made within the window")
    mean_confidence: float | None
    reference_mean_confidence: float | None
    confidence_psi: float | None = Field(description="PSI of the confidence histogram")
    confidence_shift: bool = Field(description="PSI > 0.25 with at least min_labels predictions")
    class_mix: ClassMix | None = Field(
        default=None, description="None without a reference or before any prediction with probabilities"
    )
    class_mix_shift: bool = Field(
        default=False, description="the class mix shifted (a prior-shift recalibration may help)"
    )


class LabelDelay(_Frozen):
    """Seconds from prediction to accepted label, over every label since start."""

    labels: int = Field(ge=0)
    mean_seconds: float | None
    median_at_most_seconds: float | None = Field(
        description="upper bound of the delay bucket holding the median (None: beyond the last bucket or no labels)"
    )


class CalibrationStatus(_Frozen):
    """Everything the monitor knows about one (model, version), as of ``as_of``."""

    model: str
    version: str
    as_of: float = Field(description="epoch seconds the window ends at")
    window_seconds: float
    window: LabelledFigures
    since_start: LabelledFigures
    predictions_since_start: int
    label_coverage: float | None = Field(
        description="labels / predictions within the window (labels count when they arrive)"
    )
    reliability: list[ReliabilityBin]
    reference: ReferenceSummary | None
    drift: DriftStatus
    label_free: LabelFreeSignals
    label_delay: LabelDelay | None = None
