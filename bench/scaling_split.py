"""Where the CPU per answer of `--workers 2` goes: N=2 at R requests/s against one worker at R/s and
against two independent single-process servers at R/2 each (the same load split the same way,
without supervisor, shared store, fleet monitor or multiprocess metrics).

If `--workers 2` costs what the two singles cost, what it adds over one worker comes from
splitting the load over two processes (each idle longer between requests, smaller batches), not
from the worker machinery. Open loops (bench.loadgen.open_loop, 16 connections per server); CPU is
user + system of every server process from /proc; configurations alternate within each round.

    .venv/bin/python -m bench.scaling_split --rate 300 --rounds 4 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.loadgen import LoadResult, build_request, open_loop
from bench.processes import candor_serve, free_port
from bench.scaling import host_line, server_cpu_s, wait_workers_listening
from bench.serve import SMALL, build_models, predict_body, predict_path

CONFIGS = ("one worker", "--workers 2", "two singles")


async def run_loads(targets: list[tuple[int, float]], request: bytes, seconds: float) -> list[LoadResult]:
    return list(await asyncio.gather(*(open_loop(port, request, rate, seconds, 16) for port, rate in targets)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="total open-loop requests/s")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0, help="per run")
    args = parser.parse_args()
    request = build_request(predict_path(SMALL), predict_body((1, 28, 28)))
    results: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        models = build_models(Path(tmp), heavy=False)
        servers: dict[str, tuple[int, int]] = {}
        for name, n in (("one", 1), ("workers", 2), ("single a", 1), ("single b", 1)):
            port = free_port()
            proc = stack.enter_context(candor_serve(models, port, {"CANDOR_WORKERS": str(n)}))
            wait_workers_listening(proc.pid, port, n)
            servers[name] = (port, proc.pid)
        plans = {
            "one worker": [("one", args.rate)],
            "--workers 2": [("workers", args.rate)],
            "two singles": [("single a", args.rate / 2), ("single b", args.rate / 2)],
        }
        for r in range(args.rounds):
            for config in CONFIGS if r % 2 == 0 else CONFIGS[::-1]:
                pids = [servers[name][1] for name, _ in plans[config]]
                before = sum(server_cpu_s(pid) for pid in pids)
                loads = asyncio.run(
                    run_loads([(servers[n][0], rate) for n, rate in plans[config]], request, args.seconds)
                )
                cpu = sum(server_cpu_s(pid) for pid in pids) - before
                results[config].append(1e6 * cpu / max(sum(load.completed for load in loads), 1))
            print(f"round {r + 1}: " + ", ".join(f"{name} {values[-1]:.0f} us" for name, values in results.items()))
    print(host_line())
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(
        f"median CPU/answer at {args.rate:g}/s: "
        + ", ".join(f"{name} {value:.0f} us" for name, value in medians.items())
        + f"; --workers 2 / two singles {medians['--workers 2'] / medians['two singles']:.3f}, "
        f"--workers 2 / one worker {medians['--workers 2'] / medians['one worker']:.3f}"
    )


if __name__ == "__main__":
    main()
