"""Benchmark (not a test): 10x overload for 60 s against `candor serve` (default settings, the
bundled small model, prediction store on disk).

1. capacity C: closed loop, 32 connections, ``--warmup`` seconds (requests/s, all 200).
2. overload for ``--seconds``, server RSS sampled every second; every answer must be 200 or 503
   (503 carries Retry-After). With wrk (default when installed): 1024 keep-alive connections in a
   closed loop, each sending again as soon as it is answered, so the requests made per second are
   whatever the server can answer, reported as a multiple of C; it must reach ``--factor``. With
   the asyncio client (``--loadgen python``): open loop at factor x C requests/s on up to 1024
   connections (starts that find no free connection are counted: on shared cores a Python client
   cannot always offer that rate).
3. recovery: right after, one request (its latency), then 32 connections for 5 s (rate vs C).

The server runs with max_queue_size 64 (``--queue``): with one instance per request, the client's
1024 connections could otherwise never fill the default 1024-instance queue (a full batch of 64
waits at most one call).

Pass: the load reached factor x C, no answer other than 200/503, no connection error, RSS at the
end within 10% of RSS 10 s into the overload (memory flat while overloaded; the step when 1024
connections open is reported too), first request after the overload answered 200 in under a
second, rate back to >= 0.9 C.

    .venv/bin/python -m bench.overload --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

import psutil
import uvloop

from bench.loadgen import LoadResult, build_request, closed_loop, open_loop, wrk_available, wrk_closed_loop
from bench.processes import candor_serve, free_port
from bench.serve import SMALL, build_models, predict_body, predict_path, run_load
from service.settings import Settings


def sample_rss(pid: int, stop: threading.Event, samples: list[float]) -> None:
    """RSS (MiB) of the server every second until ``stop`` is set."""
    proc = psutil.Process(pid)
    while not stop.wait(1.0):
        samples.append(proc.memory_info().rss / 2**20)


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def overload_load(port: int, path: str, body: bytes, rate: float, seconds: float, loadgen: str) -> LoadResult:
    """wrk: 1024 connections in a closed loop; python: open loop at ``rate`` on 1024 connections."""
    if loadgen == "wrk":
        return wrk_closed_loop(port, path, body, 1024, seconds, threads=2)
    return asyncio.run(open_loop(port, build_request(path, body), rate, seconds, connections=1024))


def overload(port: int, pid: int, seconds: float, warmup: float, factor: float, loadgen: str) -> bool:
    path, body = predict_path(SMALL), predict_body((1, 28, 28))
    capacity = run_load(port, path, body, 32, warmup, loadgen)
    rss_start = rss_mib(pid)
    print(f"load generator: {loadgen}")
    print(
        f"capacity C = {capacity.rate:.0f} req/s (c=32, {warmup:.0f} s, answers {dict(capacity.statuses)}); "
        f"RSS after warm-up {rss_start:.1f} MiB"
    )
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=sample_rss, args=(pid, stop, samples))
    sampler.start()
    offered = factor * capacity.rate
    load = overload_load(port, path, body, offered, seconds, loadgen)
    stop.set()
    sampler.join()
    rss_end = rss_mib(pid)
    started = time.perf_counter()
    first = asyncio.run(closed_loop(port, build_request(path, body), 1, 10.0, max_requests=1))
    first_ms = 1000 * (time.perf_counter() - started)
    after = run_load(port, path, body, 32, 5.0, loadgen)
    sent = load.completed + load.errors
    reached = sent / load.elapsed_s / capacity.rate
    if loadgen == "wrk":
        print(
            f"overload: 1024 connections, closed loop, for {seconds:.0f} s: {sent} requests "
            f"({sent / load.elapsed_s:.0f}/s = {reached:.1f} x C; goal {factor:g} x C)"
        )
    else:
        print(
            f"overload: offered {offered:.0f} req/s ({factor:g} x C) for {seconds:.0f} s; sent {sent} "
            f"({sent / load.elapsed_s:.0f}/s = {reached:.1f} x C), client could not start {load.client_saturated}"
        )
    print(
        f"  answers {dict(load.statuses)}, connection errors {load.errors}; "
        f"200s at {load.statuses[200] / load.elapsed_s:.0f}/s; p50 {load.median_ms():.1f} ms, "
        f"p99 {load.percentile_ms(0.99):.1f} ms"
    )
    settled = samples[min(9, len(samples) - 1)]
    growth = (rss_end - settled) / settled
    print(
        f"  RSS MiB: before {rss_start:.1f}, 10 s into the overload {settled:.1f}, max {max(samples):.1f}, "
        f"end {rss_end:.1f}: growth over the overload {100 * growth:+.1f}% "
        f"({100 * (rss_end - rss_start) / rss_start:+.1f}% vs before, open connections and buffers)"
    )
    print(
        f"recovery: first request {dict(first.statuses)} in {first_ms:.1f} ms; then {after.rate:.0f} req/s "
        f"({after.rate / capacity.rate:.2f} x C), answers {dict(after.statuses)}"
    )
    ok = (
        reached >= factor
        and set(load.statuses) <= {200, 503}
        and load.errors == 0
        and growth < 0.10
        and first.statuses == {200: 1}
        and first_ms < 1000
        and after.rate >= 0.9 * capacity.rate
    )
    print("PASS" if ok else "FAIL")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--factor", type=float, default=10.0, help="offered load / capacity")
    parser.add_argument(
        "--queue", type=int, default=64, help="server max_queue_size (instances); max_instances is set to it too"
    )
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
        help="uvicorn's loop for candor serve (default: candor's default)",
    )
    args = parser.parse_args()
    uvloop.install()
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), heavy=False)
        port = free_port()
        env = {
            "CANDOR_MAX_QUEUE_SIZE": str(args.queue),
            "CANDOR_MAX_INSTANCES": str(args.queue),
            "CANDOR_EVENT_LOOP": args.event_loop,
        }
        print(f"event loop: {args.event_loop}, max_queue_size {args.queue}")
        with candor_serve(models, port, env) as proc:
            ok = overload(port, proc.pid, args.seconds, args.warmup, args.factor, args.loadgen)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
