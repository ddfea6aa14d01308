"""Benchmark (not a test): `candor serve` against raw ONNX Runtime and a bare Starlette endpoint,
all measured in this one invocation on loopback, each figure printed with its ratio to its baseline.

(a) compute-heavy model (ResNet-18, CIFAR variant, on 1x28x28, random weights, exported here):
    served samples/s at concurrency 32, one instance per request, vs raw in-process ONNX Runtime
    samples/s at its best batch size (goal >= 0.90).
(b) default small model (models/fashion-mnist-cnn): served requests/s at concurrency 32 vs a bare
    Starlette endpoint parsing the same payload and returning a same-sized response (goal >= 0.70).
(c) default small model at concurrency 1: served median latency minus raw ONNX Runtime batch-1
    median latency (goal <= 1 ms).
Each served figure alternates with its baseline over --rounds rounds; the figures are medians over
rounds (this host's speed drifts by tens of percent within minutes).

The load generator is wrk when installed (`apt-get install wrk`), else the asyncio client of
bench/loadgen.py (``--loadgen``); either runs on the same machine as the servers. Each served figure
also prints the server's CPU time per answer (user + system, from psutil), the cost that decides
the ratios when the load generator and the server share the cores.

    .venv/bin/python -m bench.serve --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import psutil
import uvloop

from bench.loadgen import LoadResult, build_request, closed_loop, exchange, wrk_available, wrk_closed_loop
from bench.processes import REPO, bare_starlette, candor_serve, free_port
from calibration.manifest import load_manifest
from service.settings import Settings

SMALL = "fashion-mnist-cnn"
HEAVY = "resnet18-28"
BATCHES = (1, 2, 4, 8, 16, 32, 64)


def build_models(root: Path, heavy: bool = True) -> Path:
    """models/ with the bundled small model and a freshly exported ResNet-18 on 1x28x28."""
    models = root / "models"
    shutil.copytree(REPO / "models" / SMALL, models / SMALL)
    if not heavy:
        return models
    import torch

    from training.module_artifact import export_module
    from training.networks import ResNet18

    torch.manual_seed(0)
    export_module(ResNet18((1, 28, 28), 10), (1, 28, 28), HEAVY, "1", models, architecture="resnet18")
    return models


def session(directory: Path, threads: int) -> ort.InferenceSession:
    """A session opened exactly as the service opens it (service.inference.engine.open_session options)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"])


def raw_throughput(sess: ort.InferenceSession, shape: tuple[int, ...], seconds: float) -> dict[int, float]:
    """Samples/s of back-to-back session.run at each batch size."""
    return {batch: raw_samples_per_s(sess, shape, batch, seconds) for batch in BATCHES}


def raw_samples_per_s(sess: ort.InferenceSession, shape: tuple[int, ...], batch: int, seconds: float) -> float:
    """Samples/s of back-to-back session.run at one batch size for ``seconds``."""
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    sess.run(None, {name: x})
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        sess.run(None, {name: x})
        runs += 1
    return runs * batch / (time.perf_counter() - started)


def raw_latency_ms(sess: ort.InferenceSession, shape: tuple[int, ...], runs: int = 2000, idle_s: float = 0.0) -> float:
    """Median wall time of one batch-1 session.run, back to back or after ``idle_s`` of sleep
    (a server at concurrency 1 idles between requests; on this VM that alone slows the call)."""
    name = sess.get_inputs()[0].name
    x = np.zeros((1, *shape), np.float32)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - started)
        if idle_s:
            time.sleep(idle_s)
    return 1000 * statistics.median(times[100:])


def predict_body(shape: tuple[int, ...]) -> bytes:
    """V1 predict body with one raw 0-255 image of the model's instance shape, as JSON."""
    image = np.random.default_rng(1).integers(0, 256, size=shape).tolist()
    return json.dumps({"instances": [image]}).encode()


def predict_path(model: str) -> str:
    return f"/v1/models/{model}:predict"


@dataclass
class Measured:
    """A closed-loop run and the server's CPU seconds (user + system) during it."""

    load: LoadResult
    server_cpu_s: float

    @property
    def cpu_us_per_answer(self) -> float:
        return 1e6 * self.server_cpu_s / max(self.load.completed, 1)


def run_load(port: int, path: str, body: bytes, concurrency: int, seconds: float, loadgen: str) -> LoadResult:
    """One closed-loop run with wrk or the asyncio client."""
    if loadgen == "wrk":
        return wrk_closed_loop(port, path, body, concurrency, seconds)
    return asyncio.run(closed_loop(port, build_request(path, body), concurrency, seconds))


def measure(port: int, pid: int, path: str, body: bytes, concurrency: int, seconds: float, loadgen: str) -> Measured:
    """Warm up for a fifth of the time, then measure (with the server's CPU time)."""
    run_load(port, path, body, concurrency, max(1.0, seconds / 5), loadgen)
    server = psutil.Process(pid)
    before = server.cpu_times()
    load = run_load(port, path, body, concurrency, seconds, loadgen)
    after = server.cpu_times()
    return Measured(load, (after.user - before.user) + (after.system - before.system))


def report(label: str, value: float, unit: str, baseline: float, ratio: float, goal: str) -> str:
    return f"{label:<58} {value:>10.2f} {unit:<10} baseline {baseline:>10.2f}  ratio {ratio:6.3f}  goal {goal}"


def heavy_figures(
    models: Path,
    seconds: float,
    threads: int,
    env: dict[str, str],
    delay_ms: float,
    loadgen: str,
    batch: int,
    rounds: int,
) -> dict[str, float | list[float]]:
    """(a): served samples/s at c=32 vs raw ORT at its best batch size, same thread setting; the
    served model's own max_batch_size is ``batch`` (CANDOR_MODEL_BATCHING). After the sweep that
    picks the best batch size, served and raw alternate over ``rounds`` rounds of ``seconds /
    rounds``; the ratio is the median of the rounds' ratios."""
    shape = tuple(d for d in load_manifest(models / HEAVY / "1").input.shape[1:] if d)
    sess = session(models / HEAVY / "1", threads)
    raw = raw_throughput(sess, shape, seconds / 5)
    best = max(raw, key=raw.__getitem__)
    port, part = free_port(), seconds / rounds
    batching = {HEAVY: {"max_batch_size": batch, "max_queue_delay_ms": delay_ms}}
    settings = {**env, "CANDOR_INTRA_OP_THREADS": str(threads), "CANDOR_MODEL_BATCHING": json.dumps(batching)}
    pairs: list[tuple[LoadResult, float]] = []
    with candor_serve(models, port, settings) as proc:
        for _ in range(rounds):
            served = measure(port, proc.pid, predict_path(HEAVY), predict_body(shape), 32, part, loadgen).load
            pairs.append((served, raw_samples_per_s(sess, shape, best, part)))
    ratios = [s.rate / b for s, b in pairs]
    ratio = statistics.median(ratios)
    served_rate, baseline = statistics.median(s.rate for s, _ in pairs), statistics.median(b for _, b in pairs)
    print(
        f"raw ORT {HEAVY} samples/s by batch ({threads} threads, {seconds / 5:g} s each): "
        + ", ".join(f"{b}: {v:.1f}" for b, v in raw.items())
    )
    print(f"{rounds} rounds of {part:g} s each, served then raw ORT at batch {best}; figures are medians over rounds")
    for k, ((s, b), r) in enumerate(zip(pairs, ratios, strict=True), start=1):
        print(
            f"    round {k}: {s.rate:.1f} / {b:.1f} samples/s = {r:.3f}; p50 {s.median_ms():.1f} ms, "
            f"p99 {s.percentile_ms(0.99):.1f} ms, answers {dict(s.statuses)}"
        )
    print(
        report(
            f"(a) {HEAVY} served samples/s, c=32",
            served_rate,
            "samples/s",
            baseline,
            ratio,
            f">= 0.90 (raw ORT, best batch {best}; served with max_batch_size {batch})",
        )
    )
    return {
        "threads_a": threads,
        "max_queue_delay_ms_a": delay_ms,
        "rounds_a": rounds,
        "raw_ort_heavy_sweep_best_samples_per_s": raw[best],
        "raw_ort_heavy_best_batch": best,
        "raw_ort_heavy_best_batch_samples_per_s": baseline,
        "served_heavy_samples_per_s_c32": served_rate,
        "ratio_a": ratio,
        "ratio_a_rounds": ratios,
        "served_heavy_c32_p99_ms": pairs[-1][0].percentile_ms(0.99),
    }


def small_figures(
    models: Path, seconds: float, threads: int, env: dict[str, str], loadgen: str, rounds: int
) -> dict[str, float | list[float]]:
    """(b) requests/s at c=32 vs bare Starlette; (c) c=1 median latency minus raw ORT batch-1.
    Both servers run at once (the idle one costs nothing) and the measurements alternate over
    ``rounds`` rounds of ``seconds / rounds``: each round's ratio and overhead compare neighbours in
    time, and the figure is the median over rounds (this host's speed drifts by tens of percent
    within minutes)."""
    shape = tuple(d for d in load_manifest(models / SMALL / "1").input.shape[1:] if d)
    sess = session(models / SMALL / "1", threads)
    raw_idle_ms = raw_latency_ms(sess, shape, 1000, idle_s=0.001)
    raw_row_us = 1e6 / raw_throughput(sess, shape, 1.0)[32]
    path, body = predict_path(SMALL), predict_body(shape)
    port, bare_port, part = free_port(), free_port(), seconds / rounds
    b_rounds: list[tuple[Measured, Measured]] = []
    c_rounds: list[tuple[float, Measured]] = []
    with candor_serve(models, port, {**env, "CANDOR_INTRA_OP_THREADS": str(threads)}) as proc:
        _, response = asyncio.run(exchange(port, build_request(path, body)))
        with bare_starlette(bare_port, response, env["CANDOR_EVENT_LOOP"]) as bare_proc:
            for _ in range(rounds):
                c_rounds.append((raw_latency_ms(sess, shape), measure(port, proc.pid, path, body, 1, part, loadgen)))
                b_rounds.append(
                    (
                        measure(port, proc.pid, path, body, 32, part, loadgen),
                        measure(bare_port, bare_proc.pid, path, body, 32, part, loadgen),
                    )
                )
    ratios = [s.load.rate / b.load.rate for s, b in b_rounds]
    overheads = [c.load.median_ms() - raw for raw, c in c_rounds]
    ratio, overhead = statistics.median(ratios), statistics.median(overheads)
    served, bare = (
        statistics.median(s.load.rate for s, _ in b_rounds),
        statistics.median(b.load.rate for _, b in b_rounds),
    )
    single_ms = statistics.median(c.load.median_ms() for _, c in c_rounds)
    raw_ms = statistics.median(raw for raw, _ in c_rounds)
    print(f"{rounds} rounds of {part:g} s each, alternating; figures are medians over rounds")
    for k, ((s, b), (raw, c)) in enumerate(zip(b_rounds, c_rounds, strict=True), start=1):
        print(
            f"    round {k}: (b) {s.load.rate:7.1f} / {b.load.rate:7.1f} req/s = {ratios[k - 1]:.3f} "
            f"(CPU per answer {s.cpu_us_per_answer:.0f} / {b.cpu_us_per_answer:.0f} us); "
            f"(c) {c.load.median_ms():.3f} - {raw:.3f} ms = {overheads[k - 1]:.3f} ms"
        )
    print(
        report(
            f"(b) {SMALL} served requests/s, c=32",
            served,
            "req/s",
            bare,
            ratio,
            ">= 0.70 (bare Starlette, same payload)",
        )
    )
    last = b_rounds[-1][0].load
    print(
        f"    last round: p50 {last.median_ms():.2f} ms, p99 {last.percentile_ms(0.99):.2f} ms, "
        f"answers {dict(last.statuses)}; the model alone at batch 32 (raw ORT) {raw_row_us:.0f} us per row"
    )
    print(
        f"{'(c) ' + SMALL + ' c=1 median latency':<58} {single_ms:>10.3f} ms         "
        f"raw ORT batch-1 {raw_ms:.3f} ms  overhead {overhead:.3f} ms  goal <= 1 ms"
    )
    print(f"    raw ORT batch-1 after 1 ms idle (as between c=1 requests) {raw_idle_ms:.3f} ms")
    return {
        "threads_bc": threads,
        "rounds_bc": rounds,
        "bare_starlette_requests_per_s_c32": bare,
        "served_small_requests_per_s_c32": served,
        "ratio_b": ratio,
        "ratio_b_rounds": ratios,
        "raw_ort_small_batch1_median_ms": raw_ms,
        "raw_ort_small_batch1_after_1ms_idle_ms": raw_idle_ms,
        "served_small_c1_median_ms": single_ms,
        "overhead_c_ms": overhead,
        "overhead_c_rounds_ms": overheads,
        "cpu_us_per_answer_served_c32": statistics.median(s.cpu_us_per_answer for s, _ in b_rounds),
        "cpu_us_per_answer_bare_c32": statistics.median(b.cpu_us_per_answer for _, b in b_rounds),
        "raw_ort_small_us_per_row_b32": raw_row_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measurement per figure")
    parser.add_argument(
        "--heavy-threads",
        type=int,
        default=1,
        help="ONNX Runtime intra-op threads for (a), raw and served (0: ORT default, one "
        "per core; 1 leaves a core to the event loop and the load generator)",
    )
    parser.add_argument(
        "--heavy-delay-ms",
        type=float,
        default=20.0,
        help="the served model's max_queue_delay_ms in (a): time to wait for the "
        "previous batch's clients to come back (default setting: 2)",
    )
    parser.add_argument(
        "--heavy-batch",
        type=int,
        default=16,
        help="the served model's max_batch_size in (a): with 32 clients, 16 lets one "
        "batch's clients come back while the other batch runs",
    )
    parser.add_argument(
        "--small-threads", type=int, default=1, help="ONNX Runtime intra-op threads for (b) and (c), raw and served"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of --seconds / rounds each, served and baseline alternating; medians reported",
    )
    parser.add_argument(
        "--state-dir", type=Path, help="where candor's prediction store lives (default: a fresh temp dir)"
    )
    parser.add_argument("--only", choices=["heavy", "small"], help="run one part")
    parser.add_argument(
        "--loadgen",
        choices=["wrk", "python"],
        default="wrk" if wrk_available() else "python",
        help="load generator (default: wrk when installed)",
    )
    parser.add_argument(
        "--event-loop",
        choices=["asyncio", "uvloop"],
        default=Settings().event_loop,
        help="uvicorn's loop for candor serve and the bare baseline (default: candor's default)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    uvloop.install()
    results: dict[str, float | list[float]] = {}
    print(f"load generator: {args.loadgen}; event loop of both servers: {args.event_loop}")
    env = {"CANDOR_EVENT_LOOP": args.event_loop}
    if args.state_dir:
        env["CANDOR_STATE_DIR"] = str(args.state_dir)
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), heavy=args.only != "small")
        if args.only != "small":
            results |= heavy_figures(
                models,
                args.seconds,
                args.heavy_threads,
                env,
                args.heavy_delay_ms,
                args.loadgen,
                args.heavy_batch,
                args.rounds,
            )
        if args.only != "heavy":
            results |= small_figures(models, args.seconds, args.small_threads, env, args.loadgen, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
