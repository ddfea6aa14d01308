"""Pieces of the results page shared by its writers: the stages, the machine, reliability PNGs.

Reliability diagrams pool the test predictions of every seed (the test split is the same for every
seed); equal-width 15 bins (METHODS Decisions 1).
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calibration.plots import as_bin_statistics, draw_reliability

STAGES = {
    "raw": "before post-hoc calibration",
    "ts": "after temperature scaling (TS)",
    "fts": "after focal temperature scaling (FTS)",
}


class ScoredRuns(Protocol):
    """One run's test probabilities per stage and the test labels."""

    probs: dict[str, np.ndarray]
    labels: np.ndarray


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() otherwise)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(threads: int) -> list[str]:
    """nproc, CPU model, torch, device and threads, as Markdown bullet points."""
    device = f"CUDA: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else f"CPU, torch threads {threads}"
    return [
        f"- machine: `nproc` = {len(os.sched_getaffinity(0))}, CPU {cpu_model()}, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        f"- device: {device}",
    ]


def reliability_png(groups: Mapping[str, Sequence[ScoredRuns]], stage: str, path: Path) -> None:
    """One reliability panel per loss (equal-width 15 bins, test predictions of all seeds)."""
    columns = min(4, len(groups))
    rows = math.ceil(len(groups) / columns)
    fig = Figure(figsize=(3.2 * columns, 3.2 * rows + 0.5))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for index, (ax, (loss, runs)) in enumerate(zip(axes, groups.items(), strict=False)):
        probs = np.concatenate([r.probs[stage] for r in runs])
        labels = np.concatenate([r.labels for r in runs])
        stats = as_bin_statistics((probs.max(axis=1), probs.argmax(axis=1) == labels))
        draw_reliability(ax, stats, None)
        ax.set_title(f"{loss}: ECE {100 * stats.compute_ece():.2f}%", fontsize="medium")
        legend = ax.get_legend()
        if index and legend is not None:
            legend.remove()
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle(f"Reliability {STAGES[stage]} (test split, pooled over {len(runs)} seeds)")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.07, top=0.9, wspace=0.3, hspace=0.35)
    fig.savefig(path, dpi=80)
