"""One side's figures for one kind of request: a run at concurrency 32 (requests/s, p99, server CPU
per answer) and one at concurrency 1 (p50, p99); HTTP with wrk, gRPC with ``bench.peers.grpc_load``.

Server CPU is the user + system time of the server's whole process tree over the c=32 run (from
/proc, descendants included: inference workers, Triton's processes, BentoML's worker), per answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from bench.loadgen import LoadResult, wrk_closed_loop
from bench.peers.base import GRPC
from bench.peers.requests import Request
from bench.peers.tree import tree_cpu_seconds
from bench.processes import REPO

HIGH, LOW = 32, 1


@dataclass(frozen=True)
class Target:
    """Where one side answers one kind of request: port, HTTP path (None for gRPC), the root pid."""

    port: int
    path: str | None
    pid: int


@dataclass(frozen=True)
class Figures:
    """One side, one round: c=32 rate, p99 and CPU per answer; c=1 p50 and p99; non-2xx answers."""

    rps: float
    p99_ms: float
    cpu_us: float
    p50_c1_ms: float
    p99_c1_ms: float
    failed: int = 0
    client_cpu_share: float = 0.0  # gRPC: the load generator's CPU seconds per second (1.0 = a core)


def run_http(target: Target, request: Request, concurrency: int, seconds: float) -> LoadResult:
    assert target.path is not None
    return wrk_closed_loop(target.port, target.path, request.body, concurrency, seconds, request.headers)


def run_grpc(target: Target, request: Request, concurrency: int, seconds: float) -> tuple[LoadResult, float]:
    """The gRPC load generator in a child process; (result, client CPU share)."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as fh:
        fh.write(request.body)
        fh.flush()
        out = subprocess.run(
            [sys.executable, "-m", "bench.peers.grpc_load", str(target.port), str(concurrency), str(seconds), fh.name],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    result = LoadResult(
        elapsed_s=figures["elapsed_s"],
        errors=figures["errors"],
        quantiles_ms={q: figures[str(q)] for q in (0.5, 0.9, 0.99)},
    )
    result.statuses[200] = figures["answers"]
    return result, figures["client_cpu_s"] / max(figures["elapsed_s"], 1e-9)


def run(kind: str, target: Target, request: Request, concurrency: int, seconds: float) -> tuple[LoadResult, float]:
    if kind == GRPC:
        return run_grpc(target, request, concurrency, seconds)
    return run_http(target, request, concurrency, seconds), 0.0


def failed(result: LoadResult) -> int:
    return result.errors + sum(n for code, n in result.statuses.items() if not 200 <= code < 300)


def measure(kind: str, target: Target, request: Request, seconds: float) -> Figures:
    """c=32 for ``seconds`` (tree CPU around it), then c=1 for ``seconds``."""
    before = tree_cpu_seconds(target.pid)
    high, client_share = run(kind, target, request, HIGH, seconds)
    cpu_s = tree_cpu_seconds(target.pid) - before
    low, _ = run(kind, target, request, LOW, seconds)
    return Figures(
        rps=high.rate,
        p99_ms=high.quantiles_ms[0.99],
        cpu_us=1e6 * cpu_s / max(high.completed, 1),
        p50_c1_ms=low.quantiles_ms[0.5],
        p99_c1_ms=low.quantiles_ms[0.99],
        failed=failed(high) + failed(low),
        client_cpu_share=client_share,
    )


def warm_up(kind: str, target: Target, request: Request) -> None:
    run(kind, target, request, HIGH, 2.0)
