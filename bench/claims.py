"""The pre-registered comparisons of the results table, each testing one seed paper's claim, with
paired statistics (calibration.significance) and Holm's correction across all of them.

Every comparison is "A is better calibrated than B" on the primary metrics NLL and smECE (lower is
better), each at a stated stage (raw softmax, TS, FTS). For each metric: the per-seed paired
difference A - B with its Student-t 95% interval, and the paired test-set bootstrap of the same
difference. Its p-value is the larger of the two tests' (both must reject); the p-values of every
(comparison, metric) are Holm-adjusted together. Verdict, per comparison: "supported" when A is
significantly lower on both metrics, "not supported" when A is significantly higher on either,
"inconclusive at this power" otherwise (including a split between the metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.experiment_runs import RunResult
from calibration.significance import (
    TOP_LABEL_METRICS,
    PairedDifference,
    TopLabel,
    holm,
    paired_bootstrap,
    paired_seed_interval,
)

PRIMARY = ("nll", "smooth_ece")
ALPHA = 0.05
Selector = Callable[[RunResult], bool]


@dataclass(frozen=True)
class Comparison:
    """A paper's claim, tested as arm/method/stage A against arm/method/stage B (paired by seed)."""

    claim: str
    paper: str
    a: tuple[str, str, str]  # (arm, method, stage)
    b: tuple[str, str, str]


COMPARISONS = (
    Comparison("MbLS calibrates better than label smoothing", "Liu et al. CVPR 2022",
               ("main", "mbls", "raw"), ("main", "ls", "raw")),
    Comparison("CALS calibrates better than MbLS", "Liu, Rony et al. CVPR 2023",
               ("main", "cals", "raw"), ("main", "mbls", "raw")),
    Comparison("focal loss calibrates better than cross-entropy", "Mukhoti et al. 2020 (via FTS)",
               ("main", "focal", "raw"), ("main", "ce", "raw")),
    Comparison("under class overlap, Mixup beats ERM + TS", "Chidambaram & Ge ICLR 2024",
               ("noise", "mixup", "raw"), ("noise", "ce", "ts")),
    Comparison("FTS beats TS (every trained model)", "Komisarenko & Kull ECAI 2024",
               ("*", "*", "fts"), ("*", "*", "ts")),
    Comparison("gamma-net beats a tuned focal loss", "Wang & Golebiowski TMLR 2024",
               ("main", "gamma-net", "raw"), ("main", "focal", "raw")),
)  # fmt: skip


@dataclass(frozen=True)
class MetricTest:
    """One (comparison, metric): the seed interval, the bootstrap, and the Holm-adjusted p."""

    seeds: PairedDifference
    bootstrap: PairedDifference
    p_adjusted: float = 1.0


@dataclass(frozen=True)
class ClaimResult:
    """A comparison, its pairs, and its tests per primary metric, with the verdict."""

    comparison: Comparison
    pairs: int
    tests: Mapping[str, MetricTest]
    verdict: str


def pairs(results: Sequence[RunResult], c: Comparison) -> list[tuple[TopLabel, TopLabel, RunResult, RunResult]]:
    """(A, B) test records paired by (arm, method, seed); "*" pairs every main/noise run with itself."""

    def matches(r: RunResult, side: tuple[str, str, str]) -> bool:
        arm, method, _ = side
        return r.job.arm != "grid" and arm in ("*", r.job.arm) and method in ("*", r.job.method)

    def record(r: RunResult, stage: str) -> TopLabel:
        return TopLabel.from_probs(r.probs[stage], r.labels)

    b_runs = {(r.job.arm, r.job.method if c.b[1] == "*" else "", r.job.seed): r for r in results if matches(r, c.b)}
    out = []
    for ra in (r for r in results if matches(r, c.a)):
        rb = b_runs.get((ra.job.arm, ra.job.method if c.b[1] == "*" else "", ra.job.seed))
        if rb is not None:
            out.append((record(ra, c.a[2]), record(rb, c.b[2]), ra, rb))
    return out


def test_comparison(results: Sequence[RunResult], c: Comparison, n_resamples: int) -> dict[str, MetricTest] | None:
    """Seed interval and bootstrap per primary metric; None with fewer than two pairs."""
    paired = pairs(results, c)
    if len(paired) < 2:
        return None
    tests = {}
    for metric in PRIMARY:
        fn = TOP_LABEL_METRICS[metric]
        seeds = paired_seed_interval([ra.scores[c.a[2]][metric] for *_, ra, _ in paired],
                                     [rb.scores[c.b[2]][metric] for *_, rb in paired])  # fmt: skip
        boot = paired_bootstrap(fn, [a for a, *_ in paired], [b for _, b, *_ in paired], n_resamples)
        tests[metric] = MetricTest(seeds, boot)
    return tests


def verdict(tests: Mapping[str, MetricTest]) -> str:
    """Supported / not supported / inconclusive at this power (module docstring)."""
    better = [t.p_adjusted < ALPHA and t.seeds.mean < 0 for t in tests.values()]
    worse = [t.p_adjusted < ALPHA and t.seeds.mean > 0 for t in tests.values()]
    if any(worse):
        return "not supported"
    return "supported" if all(better) else "inconclusive at this power"


def evaluate_claims(results: Sequence[RunResult], n_resamples: int = 300) -> list[ClaimResult]:
    """Every comparison that has two or more pairs, Holm-adjusted across all their metric tests."""
    tested = [(c, t, len(pairs(results, c))) for c in COMPARISONS if (t := test_comparison(results, c, n_resamples))]
    raw = [max(m.seeds.p_value, m.bootstrap.p_value) for _, tests, _ in tested for m in tests.values()]
    adjusted = iter(holm(raw))
    out = []
    for c, tests, n in tested:
        final = {k: MetricTest(m.seeds, m.bootstrap, next(adjusted)) for k, m in tests.items()}
        out.append(ClaimResult(c, n, final, verdict(final)))
    return out
