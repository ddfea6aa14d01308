"""Benchmark: the results table as a pre-registered experiment (issue 17; "which method should I use").

Per preset: a grid of each tuned method's hyper-parameter on the first seed, the value chosen by
the pre-registered rule on a calibration split (bench/experiment_plan.py), then every method at its
value on every seed, plus the Chidambaram & Ge noise arm; TS and FTS fitted on the calibration split
only; the test split scored once. The claims table (bench/claims.py) leads the report.

    .venv/bin/python -m bench.calibration_table --preset small --workers 2   # 2-core CPU, ~40 min
    .venv/bin/python -m bench.calibration_table --preset full                # a GPU
    .venv/bin/python -m bench.calibration_table --preset tiny --out /tmp/t --methods ce,ls,gamma-net

Runs live in --runs/<preset>/<job key>; a re-run reuses finished runs and resumes partial ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.claims import evaluate_claims
from bench.experiment_plan import (
    MAIN_METHODS,
    Candidate,
    Job,
    grid_jobs,
    select,
    selected_jobs,
    untuned_jobs,
)
from bench.experiment_report import write_experiment_report
from bench.experiment_runs import LOGITS_FILE, RunResult, evaluate, run_jobs
from training.config import TrainConfig
from training.losses import LOSSES
from training.runlog import LOG_FILE


@dataclass(frozen=True)
class Preset:
    """One benchmark regime: the loss-agnostic run config, the seeds and the report's name."""

    name: str
    report: str
    config: TrainConfig
    seeds: tuple[int, ...]
    regime: str


PRESETS = {
    "tiny": Preset(
        "tiny",
        "digits-tiny",
        TrainConfig(
            data="digits",
            width=8,
            epochs=1,
            batch_size=64,
            validation_fraction=0.1,
            train_subset=800,
            calibration_size=300,
        ),
        (0, 1),
        "smoke test only: scikit-learn digits, 800 training images, 1 epoch, SmallCNN width 8",
    ),
    "small": Preset(
        "small",
        "fashion-mnist",
        TrainConfig(
            data="fashion-mnist",
            architecture="small-cnn",
            width=16,
            epochs=40,
            batch_size=128,
            optimizer="adam",
            lr=2e-3,
            schedule="cosine",
            validation_fraction=1 / 60,
            train_subset=2000,
            calibration_size=5000,
        ),
        (0, 1, 2, 3, 4),
        "2,000 training images (the first 2,000 of each seed's train split; gamma-net trains on "
        "1,778 of them and meta-validates on the other 222, its 8:1 carve), SmallCNN width 16, 40 "
        "epochs of Adam (lr 2e-3, cosine to 0, batch 128, clip 2), no augmentation: training accuracy "
        "reaches ~100% (interpolation) while test accuracy stays near 85%; validation 1,000 images",
    ),
    "full": Preset(
        "full",
        "fashion-mnist-full",
        TrainConfig(
            data="fashion-mnist",
            architecture="resnet18",
            epochs=60,
            batch_size=128,
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            schedule="multistep",
            milestones=(30, 45),
            validation_fraction=1 / 12,
            train_subset=50000,
            calibration_size=5000,
        ),
        (0, 1, 2, 3, 4),
        "50,000 training images, ResNet-18 (3x3 stem), SGD 0.1 momentum 0.9 wd 5e-4, x0.1 at epochs "
        "30 and 45 of 60, batch 128, clip 2, no augmentation; validation 5,000",
    ),
}


def train_all(preset: Preset, jobs: Sequence[Job], args: argparse.Namespace) -> list[RunResult]:
    """Train (or reuse) and score every job, printing one line per run as it finishes."""
    root = args.runs / preset.name
    planned = [(job, job.config(preset.config), root / job.key) for job in jobs]
    if args.report_only:  # score what has finished; train nothing
        planned = [p for p in planned if (p[2] / LOGITS_FILE).exists()]
    results = []
    for job, run_dir, seconds in run_jobs(planned, args.workers, args.threads):
        result = evaluate(job, run_dir, seconds)
        raw, ts = result.scores["raw"], result.scores["ts"]
        print(
            f"{job.key:>32}: acc {raw['accuracy']:.4f}  NLL {raw['nll']:.3f} -> TS {ts['nll']:.3f}  "
            f"ECE {100 * raw['ece']:.2f}% -> TS {100 * ts['ece']:.2f}%  ({seconds:.0f}s)",
            flush=True,
        )
        results.append(result)
    return results


def by_seed(jobs: Sequence[Job]) -> list[Job]:
    """Jobs seed by seed (stable within a seed), so an interrupted run leaves complete pairs."""
    return sorted(jobs, key=lambda job: job.seed)


def choose(grid: Sequence[RunResult]) -> tuple[dict[str, list[Candidate]], dict[str, Candidate]]:
    """Each tuned method's candidates (grid order) and the value the pre-registered rule selects."""
    candidates: dict[str, list[Candidate]] = {}
    for r in sorted(grid, key=lambda r: r.job.key):
        candidates.setdefault(r.job.method, []).append(
            Candidate(r.job.params, r.calibration["nll"], r.calibration["ece"])
        )
    return candidates, {method: select(rows) for method, rows in candidates.items()}


def promote(grid: Sequence[RunResult], chosen: dict[str, Candidate]) -> list[RunResult]:
    """The grid runs at the selected values, relabelled as the first seed's main runs."""
    return [
        dataclasses.replace(r, job=dataclasses.replace(r.job, arm="main"))
        for r in grid
        if chosen[r.job.method].params == r.job.params
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--methods", default=",".join(MAIN_METHODS), help="comma-separated")
    parser.add_argument("--seeds", default="", help="comma-separated (default: the preset's)")
    parser.add_argument("--noise-seeds", default=None, help="noise-arm seeds (default: --seeds; '' for none)")
    parser.add_argument("--out", type=Path, default=Path("docs/results"), help="report directory")
    parser.add_argument("--runs", type=Path, default=Path("runs/calibration-table"), help="run directories")
    parser.add_argument("--workers", type=int, default=1, help="runs trained in parallel (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: report the finished runs, list the rest as not run"
    )
    parser.add_argument("--resamples", type=int, default=300, help="test-set bootstrap replicates")
    return parser.parse_args(argv)


def training_seconds(run_dirs: Sequence[Path]) -> float:
    """The summed per-epoch wall seconds of the runs' log.jsonl (what training them cost)."""
    total = 0.0
    for run_dir in run_dirs:
        log = run_dir / LOG_FILE
        if log.is_file():
            total += sum(json.loads(line)["seconds"] for line in log.read_text().splitlines() if line.strip())
    return total


def header_lines(
    preset: Preset, args: argparse.Namespace, command: str, wall: float, trained: int, run_dirs: Sequence[Path]
) -> list[str]:
    """Setup bullets: regime, config, command, wall time."""
    c = preset.config
    return [
        "## Setup",
        "",
        f"- regime: {preset.regime}; calibration split {c.calibration_size:,} images; test 10,000 (official)",
        f"- architecture {c.architecture} (width {c.width}), optimizer {c.optimizer}, lr {c.lr:g}, "
        f"schedule {c.schedule}, epochs {c.epochs}, batch {c.batch_size}, clip {c.clip_norm:g}",
        f"- command: `{command}`",
        f"- wall time: {wall / 60:.1f} min with {args.workers} worker(s) x {args.threads} torch thread(s); "
        f"{trained} of {len(run_dirs)} runs trained by this invocation, the rest reused from --runs; "
        f"training the {len(run_dirs)} runs took {training_seconds(run_dirs) / 60:.1f} worker-minutes "
        "(sum of their epochs' wall time)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pre-registered experiment and write the report; returns the exit status."""
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    methods = [name for name in args.methods.split(",") if name]
    unknown = sorted(set(methods) - set(LOSSES))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {sorted(LOSSES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s] or list(preset.seeds)
    noise_seeds = seeds if args.noise_seeds is None else [int(s) for s in args.noise_seeds.split(",") if s]
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    untuned = untuned_jobs(methods, seeds, noise_seeds)
    early = [j for j in untuned if j.seed == seeds[0] and j.arm == "main"]  # gamma-net and CE first
    plan_a = early + grid_jobs(methods, seeds[0])
    first = train_all(preset, plan_a, args)
    grid = [r for r in first if r.job.arm == "grid"]
    candidates, chosen = choose(grid)
    selected = selected_jobs({m: c.params for m, c in chosen.items()}, seeds, seeds[0])
    plan_b = by_seed([j for j in untuned if j not in early] + selected)  # whole seeds first: pairs grow evenly
    second = train_all(preset, plan_b, args)
    missing = [j.key for j in plan_a + plan_b if j.key not in {r.job.key for r in first + second}]
    results = [r for r in first if r.job.arm != "grid"] + promote(grid, chosen) + second
    results.sort(key=lambda r: (r.job.arm, methods.index(r.job.method) if r.job.method in methods else 99, r.job.seed))
    claims = evaluate_claims(results, args.resamples)
    command = " ".join(["python -m bench.calibration_table", *(argv if argv is not None else sys.argv[1:])])
    every = first + second
    run_dirs = [args.runs / preset.name / r.job.key for r in every]
    header = header_lines(preset, args, command, time.perf_counter() - started,
                          sum(r.seconds > 0 for r in every), run_dirs)  # fmt: skip
    if missing:
        header.append(f"- **not run** ({len(missing)} planned runs; no number below comes from them; "
                      f"rerun the command without --report-only to finish): {', '.join(missing)}")  # fmt: skip
    gamma_dirs = [args.runs / preset.name / r.job.key for r in results if r.job.method == "gamma-net"]
    path = write_experiment_report(args.out, preset.report, header, preset, seeds, results, claims,
                                   (candidates, chosen), args.threads, gamma_dirs)  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
