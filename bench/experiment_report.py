"""The results page of the pre-registered experiment: protocol, claims table, selection, full
tables with 95% intervals, ECE beside its floor, FTS edge fits, reliability diagrams and the
gamma-net trajectory. Every number comes from the runs; nothing is typed in."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from bench.calibration_report import STAGES, machine_lines, reliability_png
from bench.claims import PRIMARY, ClaimResult
from bench.experiment_plan import GRIDS, NLL_TIE, NOISE_ETA, Candidate
from bench.experiment_runs import RunResult
from training.runlog import LOG_FILE

PERCENT = {"accuracy", "ece", "adaptive_ece", "classwise_ece", "smooth_ece"}
COLUMNS = (("accuracy", "Acc %"), ("nll", "NLL"), ("smooth_ece", "smECE %"), ("ece", "ECE %"),
           ("ece_floor", "ECE floor %"), ("adaptive_ece", "AdaECE %"), ("classwise_ece", "cw-ECE %"),
           ("brier", "Brier"))  # fmt: skip


def interval(values: Sequence[float], metric: str) -> str:
    """mean ± half-width of the Student-t 95% interval over seeds (in % for ECE-type metrics)."""
    x = np.asarray(values, dtype=np.float64) * (100 if metric in PERCENT or metric.startswith("ece") else 1)
    digits = 2 if metric not in ("nll", "brier") else 3
    if len(x) < 2:
        return f"{x.mean():.{digits}f}"
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return f"{x.mean():.{digits}f} ± {half:.{digits}f}"


def groups(results: Sequence[RunResult], arm: str) -> dict[str, list[RunResult]]:
    """Runs of one arm by method, in first-seen order."""
    out: dict[str, list[RunResult]] = {}
    for r in results:
        if r.job.arm == arm:
            out.setdefault(r.job.method, []).append(r)
    return out


def stage_table(by_method: Mapping[str, list[RunResult]], stage: str) -> list[str]:
    """One row per method: every column as mean ± 95% half-width over its seeds."""
    lines = ["| Method | seeds | " + " | ".join(h for _, h in COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for method, runs in by_method.items():
        cells = [interval([r.scores[stage][m] for r in runs], m) for m, _ in COLUMNS]
        lines.append(f"| {method} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines


def signed(d: Any, scale: float) -> str:
    return f"{scale * d.mean:+.3f} [{scale * d.low:+.3f}, {scale * d.high:+.3f}]"


def claims_table(claims: Sequence[ClaimResult]) -> list[str]:
    """The leading table: claim, comparison, pairs, differences with intervals, Holm p, verdict."""
    lines = [
        "| Claim (paper) | Comparison A vs B (stage) | pairs | ΔNLL per seed [95% CI] | ΔNLL bootstrap [95%] "
        "| ΔsmECE % per seed [95% CI] | ΔsmECE % bootstrap [95%] | Holm p (NLL, smECE) | Verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        k = c.comparison
        nll, sm = c.tests["nll"], c.tests["smooth_ece"]
        lines.append(
            f"| {k.claim} ({k.paper}) | {k.a[1]} ({k.a[2]}) vs {k.b[1]} ({k.b[2]}), {k.a[0]} arm | {c.pairs} "
            f"| {signed(nll.seeds, 1)} | {signed(nll.bootstrap, 1)} | {signed(sm.seeds, 100)} "
            f"| {signed(sm.bootstrap, 100)} | {nll.p_adjusted:.3g}, {sm.p_adjusted:.3g} | **{c.verdict}** |"
        )
    return lines


def selection_table(candidates: Mapping[str, Sequence[Candidate]], chosen: Mapping[str, Candidate]) -> list[str]:
    lines = ["| Method | value | calibration NLL | calibration ECE % | chosen |", "|---|---|---|---|---|"]
    for method, rows in candidates.items():
        for c in rows:
            value = ", ".join(f"{k} {v:g}" for k, v in c.params.items())
            mark = "**yes**" if c is chosen[method] else ""
            lines.append(f"| {method} | {value} | {c.nll:.4f} | {100 * c.ece:.2f} | {mark} |")
    partial = [
        f"{m} ({len(rows)} of {len(GRIDS[m])} values)" for m, rows in candidates.items() if len(rows) < len(GRIDS[m])
    ]
    if partial:
        lines += ["", "**Partial grid** (the rest not run; the choice may change when it is): " + ", ".join(partial)]
    return lines


def fts_lines(results: Sequence[RunResult]) -> list[str]:
    """FTS fits per (arm, method): the gammas, and how many sit at an edge of the gamma grid."""
    lines = ["| Arm | Method | FTS gamma per seed | at an edge | T (TS) per seed |", "|---|---|---|---|---|"]
    for arm in ("main", "noise"):
        for method, runs in groups(results, arm).items():
            gammas = ", ".join(f"{r.params['fts']['gamma']:g}" for r in runs)
            edges = sum(int(r.params["fts"]["edge"]) for r in runs)
            temps = ", ".join(f"{r.params['ts']['T']:.2f}" for r in runs)
            lines.append(f"| {arm} | {method} | {gammas} | {edges} of {len(runs)} | {temps} |")
    return lines


def gamma_trajectory_png(run_dirs: Sequence[Path], path: Path) -> bool:
    """Mean gamma per epoch (± std over the epoch's samples), one line per gamma-net seed."""
    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    drawn = False
    for run_dir in run_dirs:
        log = run_dir / LOG_FILE
        rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.is_file() else []
        rows = [r for r in rows if "gamma_mean" in r]
        if rows:
            epoch = [r["epoch"] for r in rows]
            mean, std = np.array([r["gamma_mean"] for r in rows]), np.array([r["gamma_std"] for r in rows])
            ax.plot(epoch, mean, label=run_dir.name)
            ax.fill_between(epoch, mean - std, mean + std, alpha=0.2)
            drawn = True
    if drawn:
        ax.set_xlabel("epoch")
        ax.set_ylabel("gamma (mean ± std over samples)")
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
    return drawn


def protocol_lines(preset: Any, seeds: Sequence[int]) -> list[str]:
    """The pre-registered protocol, as fixed before the numbers (bench/experiment_plan.py)."""
    grid = "; ".join(f"{m} {', '.join(str(dict(p)) for p in v)}" for m, v in GRIDS.items())
    return [
        "## Pre-registered protocol (fixed before any number below was computed)",
        "",
        f"- Splits per seed: training rows as in the regime; validation (checkpoint selection by accuracy, "
        f"CALS multipliers); a calibration split of {preset.config.calibration_size:,} images carved "
        "(seeded) from the training images the run does not train on: hyper-parameter selection and "
        "every TS / FTS fit; the official 10,000-image test set, scored once for the tables.",
        f"- Selection rule: on seed {seeds[0]}, every grid value; the lowest calibration-split NLL before "
        f"post-hoc calibration wins; values within {NLL_TIE} of it tie, and the lowest calibration-split "
        "ECE among them wins. Grid: " + grid + ".",
        f"- Then every method at its selected value on seeds {list(seeds)}; gamma-net and CE have no grid.",
        f"- Noise arm (Chidambaram & Ge): class-flip label noise eta = {NOISE_ETA} on training labels only; "
        "CE + TS against the Mixup loss at the paper code's alpha = 1.",
        f"- Primary metrics NLL and smECE; comparisons, tests and verdict rule: `bench/claims.py` "
        f"(per-seed paired t interval, paired test-set bootstrap, Holm across every comparison x "
        f"{len(PRIMARY)} metrics, alpha 0.05). ECE is shown beside its floor: the ECE of a perfectly "
        "calibrated model with the same confidences (labels redrawn from them, 100 draws).",
        "",
    ]


def write_experiment_report(out: Path, name: str, header: Sequence[str], preset: Any, seeds: Sequence[int],
                            results: Sequence[RunResult], claims: Sequence[ClaimResult],
                            selection: tuple[Mapping[str, Sequence[Candidate]], Mapping[str, Candidate]],
                            threads: int, gamma_dirs: Sequence[Path]) -> Path:  # fmt: skip
    """Write <out>/<name>.md and its PNGs; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Calibration methods on {preset.config.data}: a pre-registered comparison", "",
             f"Generated by `bench/calibration_table.py` on {datetime.date.today().isoformat()}.", "",
             "## Claims tested here", "", *claims_table(claims), "",
             "Differences are A − B (negative: A better). Verdict rule in the protocol below.", "",
             *header, *machine_lines(threads), "", *protocol_lines(preset, seeds),
             "## Hyper-parameter selection (seed " + str(seeds[0]) + ", calibration split)", "",
             *selection_table(*selection), ""]  # fmt: skip
    main = groups(results, "main")
    for stage in STAGES:
        lines += [f"## Test split, {STAGES[stage]} (mean ± 95% t half-width over seeds)", ""]
        lines += stage_table(main, stage) + [""]
        png = f"{name}-reliability-{stage}.png"
        reliability_png(main, stage, out / png)
        lines += [f"![reliability {stage}]({png})", ""]
    noise = groups(results, "noise")
    if noise:
        for stage in ("raw", "ts"):
            lines += [f"## Noise arm (eta = {NOISE_ETA}), test split, {STAGES[stage]}", ""]
            lines += stage_table(noise, stage) + [""]
    lines += ["## FTS fits (calibration split)", "", *fts_lines(results), "",
              "gamma = −1 is the lower edge of the grid and of the map's domain: for gamma < −1 the "
              "factor 1 − gamma p log p / (1 − p) of h_gamma reaches 0 as p → 1, so Phi_gamma is not "
              "defined on the whole simplex; the grid cannot be widened there. A fit at −1 means the "
              "best map lies at or beyond the edge of what FTS can express.", ""]  # fmt: skip
    if gamma_trajectory_png(gamma_dirs, out / f"{name}-gamma-net.png"):
        lines += ["## gamma-net: gamma per epoch", "", f"![gamma-net trajectory]({name}-gamma-net.png)", ""]
    path = out / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
