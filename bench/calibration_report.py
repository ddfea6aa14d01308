"""The results table's report: mean +- std over seeds in Markdown, the machine, reliability PNGs.

ECE-type metrics and accuracy are shown in %, NLL and Brier as they are (METHODS Decisions 1).
Standard deviations are the sample std over seeds (ddof 1). Reliability diagrams pool the test
predictions of every seed (the test split is the same for every seed).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calibration.plots import as_bin_statistics, draw_reliability
from training.config import TrainConfig
from training.losses import build_loss

STAGES = {
    "raw": "before post-hoc calibration",
    "ts": "after temperature scaling (TS)",
    "fts": "after focal temperature scaling (FTS)",
}
COLUMNS = (
    ("accuracy", "Acc %"),
    ("ece", "ECE %"),
    ("adaptive_ece", "AdaECE %"),
    ("classwise_ece", "cw-ECE %"),
    ("sece", "SECE %"),
    ("smooth_ece", "smECE %"),
    ("nll", "NLL"),
    ("brier", "Brier"),
)
PERCENT = {"accuracy", "ece", "adaptive_ece", "classwise_ece", "sece", "smooth_ece", "gap"}


@dataclass
class RunScores:
    """One (loss, seed): metrics and fitted map parameters per stage, test probabilities, labels."""

    loss: str
    seed: int
    scores: dict[str, dict[str, float]]
    params: dict[str, dict[str, float]]
    probs: dict[str, np.ndarray]
    labels: np.ndarray


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def cell(values: list[float], metric: str) -> str:
    """``mean ± std``, x100 for the % metrics."""
    scale, digits = (100.0, 2) if metric in PERCENT else (1.0, 3)
    mean, std = mean_std([scale * v for v in values])
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def by_loss(results: list[RunScores]) -> dict[str, list[RunScores]]:
    """Runs grouped by loss, in the order the losses were run."""
    groups: dict[str, list[RunScores]] = {}
    for result in results:
        groups.setdefault(result.loss, []).append(result)
    return groups


def values(runs: list[RunScores], stage: str, metric: str) -> list[float]:
    """One metric of one stage over the seeds; ``gap`` is mean confidence - accuracy."""
    if metric == "gap":
        return [r.scores[stage]["confidence"] - r.scores[stage]["accuracy"] for r in runs]
    return [r.scores[stage][metric] for r in runs]


def headline_table(groups: dict[str, list[RunScores]]) -> list[str]:
    """Per loss: accuracy, conf - acc, ECE and AdaECE before / after TS / after FTS, T, gamma."""
    lines = [
        "| Loss | Acc % | conf − acc % | ECE % | ECE % TS | ECE % FTS | AdaECE % | "
        "AdaECE % TS | AdaECE % FTS | T (TS) | γ (FTS) |",
        "|" + "---|" * 11,
    ]
    for loss, runs in groups.items():
        ece_cells = [cell(values(runs, s, "ece"), "ece") for s in STAGES]
        ada_cells = [cell(values(runs, s, "adaptive_ece"), "ece") for s in STAGES]
        t_mean, t_std = mean_std([r.params["ts"]["T"] for r in runs])
        gammas = ", ".join(f"{r.params['fts']['gamma']:g}" for r in runs)
        lines.append(
            f"| {loss} | {cell(values(runs, 'raw', 'accuracy'), 'accuracy')} | "
            f"{cell(values(runs, 'raw', 'gap'), 'gap')} | {' | '.join(ece_cells)} | "
            f"{' | '.join(ada_cells)} | {t_mean:.2f} ± {t_std:.2f} | {gammas} |"
        )
    return lines


def stage_table(groups: dict[str, list[RunScores]], stage: str) -> list[str]:
    """Every metric of one stage, one row per loss."""
    lines = [
        "| Loss | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for loss, runs in groups.items():
        row = [cell(values(runs, stage, metric), metric) for metric, _ in COLUMNS]
        lines.append(f"| {loss} | " + " | ".join(row) + " |")
    return lines


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


def reliability_png(groups: dict[str, list[RunScores]], stage: str, path: Path) -> None:
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


def observations(groups: dict[str, list[RunScores]]) -> list[str]:
    """Factual comparisons computed from the numbers (no interpretation)."""
    lines = []
    if "ce" in groups:
        ce = groups["ce"]
        lines.append(
            f"- cross-entropy, before post-hoc calibration: mean confidence − accuracy "
            f"= {cell(values(ce, 'raw', 'gap'), 'gap')} %, ECE "
            f"{cell(values(ce, 'raw', 'ece'), 'ece')} % → after TS "
            f"{cell(values(ce, 'ts', 'ece'), 'ece')} %."
        )
    for stage in STAGES:
        means = {loss: mean_std(values(runs, stage, "ece"))[0] for loss, runs in groups.items()}
        order = sorted(means, key=means.__getitem__)
        lines.append(
            f"- ECE {STAGES[stage]}, lowest to highest mean: "
            + ", ".join(f"{loss} {100 * means[loss]:.2f}" for loss in order)
            + "."
        )
    return lines


def write_report(
    out_dir: Path,
    report: str,
    regime: str,
    config: TrainConfig,
    results: list[RunScores],
    command: str,
    seconds: float,
    threads: int,
) -> Path:
    """Write <out_dir>/<report>.md and <report>-reliability-<stage>.png; returns the .md path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = by_loss(results)
    seeds = sorted({r.seed for r in results})
    num_classes = results[0].probs["raw"].shape[1]
    for stage in STAGES:
        reliability_png(groups, stage, out_dir / f"{report}-reliability-{stage}.png")
    hyper = "; ".join(f"{loss} {build_loss(loss, num_classes=num_classes).hyperparameters()}" for loss in groups)
    text = [
        f"# Calibration-aware training on {config.data}: results table",
        "",
        f"Generated by `bench/calibration_table.py` on {datetime.date.today().isoformat()}.",
        "",
        "## Setup",
        "",
        f"- regime: {regime}",
        f"- architecture {config.architecture} (width {config.width or 'default'}), optimizer "
        f"{config.optimizer}, lr {config.lr:g}, schedule {config.schedule}, epochs "
        f"{config.epochs}, batch {config.batch_size}, clip {config.clip_norm:g}, seeds {seeds}",
        f"- test split: {len(results[0].labels)} images (never used for fitting); checkpoint: "
        "best validation accuracy; TS and FTS fitted on the validation split by NLL",
        f"- loss hyper-parameters (registry defaults): {hyper}",
        f"- command: `{command}`",
        *machine_lines(threads),
        f"- wall time: {seconds / 60:.1f} min ({len(results)} runs)",
        "",
        "## Headline: ECE before and after post-hoc calibration (mean ± std over seeds)",
        "",
        *headline_table(groups),
        "",
    ]
    for stage, title in STAGES.items():
        text += [
            f"## All metrics, {title}",
            "",
            *stage_table(groups, stage),
            "",
            f"![reliability {stage}]({report}-reliability-{stage}.png)",
            "",
        ]
    text += ["## Observations (computed)", "", *observations(groups), ""]
    path = out_dir / f"{report}.md"
    path.write_text("\n".join(text))
    return path
