"""Benchmark (not a test): our numpy metrics against torchmetrics on CPU, measured in the same run.

Data: N x 10 float32 softmax rows (logits ~ N(0, 3^2)) with labels drawn from the rows, shared by
both sides (torch.from_numpy, no copy). Each repetition times every metric once, in a fresh random
order, so drift in machine load hits all alike; a metric's time is the median over repetitions and
the ratio is the median of (ours / torchmetrics) within a repetition. Both sides validate their
inputs (torchmetrics with validate_args=True, its default). Metrics torchmetrics lacks are timed
alone. Goal: ratio <= 1 for every metric both have.

    PYTHONPATH=. .venv/bin/python bench/metrics.py --sizes 1e6 1e7 --repetitions 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torchmetrics.classification import MulticlassCalibrationError

from calibration import metrics

NUM_CLASSES = 10
N_BINS = 15

Pair = tuple[Callable[[], float], Callable[[], float] | None]


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities (n, K) and int64 labels drawn from them, built in blocks."""
    rng = np.random.default_rng(seed)
    probs = np.empty((n, NUM_CLASSES), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, 1 << 20):
        z = rng.standard_normal((min(1 << 20, n - start), NUM_CLASSES), dtype=np.float32) * 3
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.uniform(size=(p.shape[0], 1))
        probs[start : start + p.shape[0]] = p
        labels[start : start + p.shape[0]] = np.minimum((u > np.cumsum(p, axis=1)).sum(1), 9)
    return probs, labels


def torchmetrics_metric(norm: str, preds: torch.Tensor, target: torch.Tensor) -> Callable[[], float]:
    """A closure: a fresh MulticlassCalibrationError, update with all samples, compute."""

    def run() -> float:
        metric = MulticlassCalibrationError(num_classes=NUM_CLASSES, n_bins=N_BINS, norm=norm)
        metric.update(preds, target)
        return float(metric.compute())

    return run


def pairs(probs: np.ndarray, labels: np.ndarray) -> dict[str, Pair]:
    """Metric name -> (ours, torchmetrics or None)."""
    preds, target = torch.from_numpy(probs), torch.from_numpy(labels)

    def ours(fn: Callable[..., float]) -> Callable[[], float]:
        return lambda: fn(probs, labels)

    return {
        "ece": (ours(metrics.ece), torchmetrics_metric("l1", preds, target)),
        "mce": (ours(metrics.mce), torchmetrics_metric("max", preds, target)),
        "adaptive_ece": (ours(metrics.adaptive_ece), None),
        "classwise_ece": (ours(metrics.classwise_ece), None),
        "smooth_ece": (ours(metrics.smooth_ece), None),
    }


def timed(fn: Callable[[], float]) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run_size(n: int, repetitions: int) -> None:
    probs, labels = make_data(n)
    jobs = pairs(probs, labels)
    times: dict[tuple[str, str], list[float]] = {}
    values: dict[tuple[str, str], float] = {}
    for _ in range(repetitions):
        order = [(name, side) for name, (_, tm) in jobs.items() for side in ("ours", "tm") if side == "ours" or tm]
        random.shuffle(order)
        for name, side in order:
            fn = jobs[name][0] if side == "ours" else jobs[name][1]
            assert fn is not None
            elapsed, values[name, side] = timed(fn)
            times.setdefault((name, side), []).append(elapsed)
    print(f"\nN = {n:.0e} x {NUM_CLASSES} classes, float32, {repetitions} repetitions (median s)")
    print(f"{'metric':15s} {'ours':>9s} {'torchmetrics':>13s} {'ratio':>7s}  values (ours / tm)")
    for name, (_, tm) in jobs.items():
        ours_t = statistics.median(times[name, "ours"])
        if tm is None:
            print(f"{name:15s} {ours_t:9.3f} {'-':>13s} {'-':>7s}  {values[name, 'ours']:.6f}")
            continue
        tm_t = statistics.median(times[name, "tm"])
        ratio = statistics.median(o / t for o, t in zip(times[name, "ours"], times[name, "tm"], strict=True))
        print(
            f"{name:15s} {ours_t:9.3f} {tm_t:13.3f} {ratio:7.2f}  {values[name, 'ours']:.6f} / {values[name, 'tm']:.6f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(0)
    print(f"torch threads: {torch.get_num_threads()}; numpy is single-threaded")
    for size in args.sizes:
        run_size(int(size), args.repetitions)


if __name__ == "__main__":
    main()
