"""`candor serve --workers N` against one worker: CPU per answer at the same offered load, req/s at
concurrency 32, and concurrency-1 latency (TCP_NODELAY kept), both servers up at once, alternating.

Per round, for each server in turn (the order alternates between rounds):
- **CPU per answer**: an open loop (bench.loadgen.open_loop) at ``--rate`` requests/s on 32
  connections, a rate both sustain; the CPU seconds (user + system, from /proc through psutil) of
  every server process (the supervisor and all its workers) over the run, divided by the answers.
  Goal: N workers cost no more CPU per answer than one (ratio <= ~1).
- **Throughput**: wrk, 32 keep-alive connections, req/s; and N x one-worker: rate(N) / (N x
  rate(1)), meaningful only where the host has cores for N servers plus the load generator.
- **Latency**: wrk, 1 connection, median ms (tens of ms would mean TCP_NODELAY was lost), and the
  CPU per answer of that run (requests one at a time: no batching or contention differences).

Ratios are computed within each round (neighbours in time); the medians over rounds are printed.
The host (cores, model) is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.loadgen import build_request, open_loop, wrk_available, wrk_closed_loop
from bench.processes import candor_serve, free_port
from bench.serve import SMALL, build_models, predict_body, predict_path


@dataclass
class Round:
    """One server's figures in one round."""

    cpu_us_per_answer: float
    open_loop_rate: float
    rate_c32: float
    p50_c1_ms: float
    cpu_us_per_answer_c1: float


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (alive now)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wait_workers_listening(pid: int, port: int, n: int, timeout: float = 120.0) -> None:
    """Until ``n`` processes under ``pid`` (or ``pid`` itself for n = 1) listen on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        root = psutil.Process(pid)
        listening = 0
        for proc in [root, *root.children(recursive=True)]:
            try:
                conns = proc.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            listening += any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)
        if listening >= n:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{n} workers not listening on {port} after {timeout} s")


def measure(port: int, pid: int, path: str, body: bytes, rate: float, seconds: float) -> Round:
    """The three figures of one server (module docstring)."""
    request = build_request(path, body)
    before = server_cpu_s(pid)
    load = asyncio.run(open_loop(port, request, rate, seconds, 32))
    cpu = server_cpu_s(pid) - before
    c32 = wrk_closed_loop(port, path, body, 32, seconds)
    before = server_cpu_s(pid)
    c1 = wrk_closed_loop(port, path, body, 1, seconds)
    cpu_c1 = server_cpu_s(pid) - before
    return Round(1e6 * cpu / max(load.completed, 1), load.rate, c32.rate, c1.median_ms(), 1e6 * cpu_c1 / c1.completed)


def host_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return f"host: {platform.node()}, {os.cpu_count()} logical CPUs ({model}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="N, compared with 1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop requests/s for CPU per answer")
    parser.add_argument("--threads", type=int, default=None, help="CANDOR_INTRA_OP_THREADS (default: the setting's)")
    args = parser.parse_args()
    if not wrk_available():
        sys.exit("bench.scaling needs wrk: bash scripts/bench-deps.sh")
    body, path = predict_body((1, 28, 28)), predict_path(SMALL)
    names = ("1", str(args.workers))
    runs: dict[str, list[Round]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        models = build_models(Path(tmp), heavy=False)
        servers = {}
        for name in names:
            port = free_port()
            env = {"CANDOR_WORKERS": name}
            if args.threads is not None:
                env["CANDOR_INTRA_OP_THREADS"] = str(args.threads)
            proc = stack.enter_context(candor_serve(models, port, env))
            servers[name] = (port, proc.pid)
            wait_workers_listening(proc.pid, port, int(name))
        for port, _ in servers.values():
            wrk_closed_loop(port, path, body, 32, 2)  # warm-up: every worker's engine and batcher
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                port, pid = servers[name]
                runs[name].append(measure(port, pid, path, body, args.rate, args.seconds))
    one, many = runs[names[0]], runs[names[1]]
    n = args.workers
    print(host_line() + f"; CANDOR_INTRA_OP_THREADS {args.threads if args.threads is not None else 'default'}")
    for r, (a, b) in enumerate(zip(one, many, strict=True), start=1):
        print(
            f"round {r}: CPU/answer at {args.rate:g}/s: 1 worker {a.cpu_us_per_answer:.0f} us, {n} workers "
            f"{b.cpu_us_per_answer:.0f} us, ratio {b.cpu_us_per_answer / a.cpu_us_per_answer:.3f} "
            f"(answered {a.open_loop_rate:.0f}/s, {b.open_loop_rate:.0f}/s); c=32 req/s {a.rate_c32:.0f} vs "
            f"{b.rate_c32:.0f}, ratio {b.rate_c32 / a.rate_c32:.3f}, vs {n} x one {b.rate_c32 / (n * a.rate_c32):.3f}; "
            f"c=1 p50 {a.p50_c1_ms:.3f} ms vs {b.p50_c1_ms:.3f} ms, CPU/answer {a.cpu_us_per_answer_c1:.0f} us vs "
            f"{b.cpu_us_per_answer_c1:.0f} us, ratio {b.cpu_us_per_answer_c1 / a.cpu_us_per_answer_c1:.3f}"
        )

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(
        f"median over {args.rounds} rounds: CPU/answer ratio ({n} / 1) "
        f"{med([b.cpu_us_per_answer / a.cpu_us_per_answer for a, b in zip(one, many, strict=True)]):.3f}; "
        f"c=32 req/s ratio {med([b.rate_c32 / a.rate_c32 for a, b in zip(one, many, strict=True)]):.3f} "
        f"(vs {n} x one worker {med([b.rate_c32 / (n * a.rate_c32) for a, b in zip(one, many, strict=True)]):.3f}); "
        f"c=1 p50 {med([a.p50_c1_ms for a in one]):.3f} ms (1) vs {med([b.p50_c1_ms for b in many]):.3f} ms ({n}), "
        f"c=1 CPU/answer ratio "
        f"{med([b.cpu_us_per_answer_c1 / a.cpu_us_per_answer_c1 for a, b in zip(one, many, strict=True)]):.3f}"
    )


if __name__ == "__main__":
    main()
