"""Reliability diagrams (Guo et al. 2017, fig. 1) from per-bin sums; numpy + matplotlib only.

Drawn on a bare ``Figure`` with the Agg canvas (no pyplot, no global figure state), so the service
can render in worker threads and offline reports can reuse the same function. Bins are the
equal-width bins of ``calibration.binning`` (lower < c <= upper), the same as ECE's.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from calibration.binning import DEFAULT_BINS, BinStatistics, bin_edges

BinData = BinStatistics | tuple[ArrayLike, ArrayLike]


def as_bin_statistics(data: BinData, n_bins: int = DEFAULT_BINS) -> BinStatistics:
    """``data`` itself, or the per-bin sums of (top-label confidences, correctness in {0, 1})."""
    if isinstance(data, BinStatistics):
        return data
    confidences, correct = data
    stats = BinStatistics(n_bins)
    stats.update(confidences, correct)
    return stats


def plot_reliability(
    data: BinData, reference: BinStatistics | None = None, *, n_bins: int = DEFAULT_BINS, title: str | None = None
) -> Figure:
    """Top: per-bin accuracy bars, the gap to each bin's mean confidence (hatched), the diagonal
    of perfect calibration and, if given, the reference's per-bin accuracy; bottom: the share of
    samples per confidence bin. The title carries ECE = sum_b |conf_b - correct_b| / N and N."""
    stats = as_bin_statistics(data, n_bins)
    fig = Figure(figsize=(5.0, 6.0))  # fixed margins: constrained layout doubles render time
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(
        2,
        1,
        sharex=True,
        gridspec_kw={"height_ratios": (3, 1), "left": 0.14, "right": 0.97, "top": 0.89, "bottom": 0.08, "hspace": 0.08},
    )
    draw_reliability(top, stats, reference)
    draw_confidence_histogram(bottom, stats)
    summary = f"ECE {stats.compute_ece():.4f}, N = {stats.total}" if stats.total else "no labels yet"
    fig.suptitle(summary if title is None else f"{title}\n{summary}")
    return fig


def draw_reliability(ax: Axes, stats: BinStatistics, reference: BinStatistics | None) -> None:
    """Accuracy per non-empty bin, its gap to the bin's mean confidence, and the diagonal."""
    edges = bin_edges(stats.n_bins)
    left, width, seen = edges[:-1], np.diff(edges), stats.counts > 0
    accuracy, confidence = stats.bin_accuracy()[seen], stats.bin_confidence()[seen]
    ax.bar(
        left[seen],
        accuracy,
        width[seen],
        align="edge",
        color="tab:blue",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    ax.bar(
        left[seen],
        confidence - accuracy,
        width[seen],
        bottom=accuracy,
        align="edge",
        color="tab:red",
        alpha=0.3,
        hatch="//",
        edgecolor="tab:red",
        label="gap to confidence",
    )
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="gray", label="perfect calibration")
    if reference is not None:
        ref_seen = reference.counts > 0
        ax.plot(
            reference.bin_confidence()[ref_seen],
            reference.bin_accuracy()[ref_seen],
            marker="o",
            markersize=3,
            color="black",
            linewidth=1,
            label="reference",
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize="small")


def draw_confidence_histogram(ax: Axes, stats: BinStatistics) -> None:
    """Share of the samples in each confidence bin."""
    edges = bin_edges(stats.n_bins)
    share = stats.counts / max(stats.total, 1)
    ax.bar(edges[:-1], share, np.diff(edges), align="edge", color="tab:gray", edgecolor="black", linewidth=0.5)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("confidence")
    ax.set_ylabel("share of samples")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
