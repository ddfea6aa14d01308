"""Benchmark (not a test): labels/s of the calibration monitor, in the core and over HTTP.

Core: batched ``BinStatistics.update`` and ``CalibrationWindow.update`` (bin sums plus the time
ring) on batches of random (confidence, correct) pairs; best of the repetitions. Goal: at least
10 million labels/s.

End to end, in one run against one `candor serve` on loopback (its own SQLite store in a temp
dir): a bounded asyncio httpx client sends predict requests for a fixed time and keeps every
prediction_id, then sends one label for each of them to ``POST /v1/feedback``; several rounds of
the two phases alternate, so drift in machine load hits both alike. Prints predictions/s,
feedback labels/s and their ratio per round and the median ratio. Goal: ratio >= 1 (feedback is
not the service's bottleneck). Bodies are encoded before timing, so the client costs little.

    .venv/bin/python bench/monitor.py --seconds 5 --rounds 3 --predict-batch 1 --feedback-batch 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import orjson

from calibration.binning import BinStatistics
from calibration.manifest import load_manifest
from service.monitor.windows import CalibrationWindow

REPO = Path(__file__).resolve().parent.parent
CORE_GOAL = 10_000_000


def core_labels_per_second(update: Callable[[np.ndarray, np.ndarray], None], batch: int, repetitions: int) -> float:
    """Best labels/s of ``update`` over repetitions of one batch of random labelled predictions."""
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.0, 1.0, batch)
    correct = (rng.uniform(size=batch) < conf).astype(np.float64)
    best = float("inf")
    for _ in range(repetitions):
        started = time.perf_counter()
        update(conf, correct)
        best = min(best, time.perf_counter() - started)
    return batch / best


@contextmanager
def candor_serve(models_dir: Path, port: int) -> Iterator[str]:
    """`candor serve` on 127.0.0.1:port with a temp state dir; stopped (SIGTERM) at the end."""
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "CANDOR_STATE_DIR": state}
        proc = subprocess.Popen(
            [sys.executable, "-m", "candor.cli", "serve", "--port", str(port), "--models-dir", str(models_dir)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).json().get("ready"):
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"candor serve at {url} did not become ready")


async def run_workers(concurrency: int, work: Callable[[], Awaitable[bool]]) -> float:
    """Run ``concurrency`` workers, each calling ``work`` until it returns False; elapsed s."""

    async def worker() -> None:
        while await work():
            pass

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def predict_phase(
    client: httpx.AsyncClient, model: str, body: bytes, seconds: float, concurrency: int
) -> tuple[list[str], float]:
    """Predict requests for ``seconds``; every prediction_id returned, and the elapsed time."""
    ids: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def one() -> bool:
        response = await client.post(f"/v1/models/{model}:predict", content=body)
        response.raise_for_status()
        ids.extend(p["prediction_id"] for p in orjson.loads(response.content)["predictions"])
        return time.perf_counter() < stop_at

    elapsed = await run_workers(concurrency, one)
    return ids, elapsed


async def feedback_phase(client: httpx.AsyncClient, ids: list[str], batch: int, concurrency: int) -> tuple[int, float]:
    """One label per id, ``batch`` per request; labels accepted and the elapsed time."""
    bodies = [
        orjson.dumps({"labels": [{"prediction_id": pid, "label": 0} for pid in ids[i : i + batch]]})
        for i in range(0, len(ids), batch)
    ]
    accepted = 0

    async def one() -> bool:
        nonlocal accepted
        if not bodies:
            return False
        response = await client.post("/v1/feedback", content=bodies.pop())
        response.raise_for_status()
        accepted += orjson.loads(response.content)["accepted"]
        return True

    elapsed = await run_workers(concurrency, one)  # before reading ``accepted``
    return accepted, elapsed


def predict_body(models_dir: Path, batch: int) -> tuple[str, bytes]:
    """The first model's name and a predict body of ``batch`` random in-range instances."""
    manifest = load_manifest(next(models_dir.glob("*/*/manifest.json")).parent)
    shape = [int(d) for d in manifest.input.shape[1:] if d is not None]
    low, high = manifest.preprocessing.input_range
    images = np.random.default_rng(0).uniform(low, high, (batch, *shape)).round(1)
    return manifest.name, orjson.dumps({"instances": images.tolist()})


async def end_to_end(url: str, args: argparse.Namespace) -> list[float]:
    """Rounds of (predict phase, feedback phase) against the running server; the ratios."""
    model, body = predict_body(args.models_dir, args.predict_batch)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    headers = {"content-type": "application/json"}
    ratios = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60, headers=headers) as client:
        await predict_phase(client, model, body, 1.0, args.concurrency)  # warm-up
        for round_number in range(1, args.rounds + 1):
            ids, predict_s = await predict_phase(client, model, body, args.seconds, args.concurrency)
            accepted, feedback_s = await feedback_phase(client, ids, args.feedback_batch, args.concurrency)
            if accepted != len(ids):
                raise RuntimeError(f"{accepted} of {len(ids)} labels accepted")
            predictions_s, labels_s = len(ids) / predict_s, accepted / feedback_s
            ratios.append(labels_s / predictions_s)
            print(
                f"round {round_number}: predict {predictions_s:8.0f} predictions/s "
                f"({len(ids)} in {predict_s:.2f} s)   feedback {labels_s:8.0f} labels/s "
                f"({accepted} in {feedback_s:.2f} s)   ratio {ratios[-1]:.2f}"
            )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1_000_000, help="core: labels per update")
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--seconds", type=float, default=5.0, help="predict phase duration")
    parser.add_argument("--rounds", type=int, default=3, help="predict + feedback rounds")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--predict-batch", type=int, default=1, help="instances per request")
    parser.add_argument("--feedback-batch", type=int, default=100, help="labels per request")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    stats, window = BinStatistics(), CalibrationWindow()
    for name, update in (("BinStatistics.update", stats.update), ("CalibrationWindow.update", window.update)):
        rate = core_labels_per_second(update, args.batch, args.repetitions)
        print(
            f"core {name:26s} {rate / 1e6:8.1f} M labels/s  (goal {CORE_GOAL / 1e6:.0f} M: "
            f"{'met' if rate >= CORE_GOAL else 'NOT met'})"
        )

    print(
        f"end to end: {args.predict_batch} instances per predict request, "
        f"{args.feedback_batch} labels per feedback request, concurrency {args.concurrency}"
    )
    with candor_serve(args.models_dir, args.port) as url:
        ratios = asyncio.run(end_to_end(url, args))
    ratio = statistics.median(ratios)
    print(
        f"median ratio feedback labels/s / predictions/s = {ratio:.2f}  "
        f"(goal >= 1: {'met' if ratio >= 1 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
