"""What a fleet-wide repository change costs: POST .../unload and .../load on `candor serve
--workers 2` (applied here, recorded, followed by the other worker, answered once both serve it)
against one process (applied here, answered), both servers up at once, alternating per round.

The bundled small model; per round and server, ``--cycles`` unload + load pairs, each call timed
from the client. Printed: per server the median ms of each call, and per round the ratio
workers-2 / workers-1 of the medians, then the median of those ratios. The wait for the other
worker is bounded below by its poll interval (CANDOR_FLEET_POLL_INTERVAL_S, 0.25 s by default:
on average half of it) plus its own load; ``--poll`` sets it for the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.processes import candor_serve, free_port
from bench.serve import SMALL, build_models


def all_ready(url: str, tries: int = 12) -> None:
    """Wait until ``tries`` fresh connections in a row answer ready (every worker listens)."""
    for _ in range(600):
        try:
            if all(httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200 for _ in range(tries)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready on every connection")


def timed_cycles(url: str, cycles: int) -> dict[str, list[float]]:
    """ms of each unload and load call, ``cycles`` pairs, on fresh connections."""
    times: dict[str, list[float]] = {"unload": [], "load": []}
    for _ in range(cycles):
        for action in ("unload", "load"):
            started = time.perf_counter()
            response = httpx.post(f"{url}/v2/repository/models/{SMALL}/{action}", timeout=60)
            times[action].append((time.perf_counter() - started) * 1e3)
            response.raise_for_status()
    return times


def medians_of(times: dict[str, list[float]]) -> dict[str, float]:
    return {action: statistics.median(values) for action, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--poll", type=float, default=0.25, help="CANDOR_FLEET_POLL_INTERVAL_S of the workers")
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, {platform.platform()}")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        models = build_models(Path(tmp), heavy=False)
        urls = {}
        for n in (1, 2):
            port = free_port()
            env = {"CANDOR_WORKERS": str(n), "CANDOR_FLEET_POLL_INTERVAL_S": str(args.poll)}
            stack.enter_context(candor_serve(models, port, env))
            urls[n] = f"http://127.0.0.1:{port}"
            all_ready(urls[n])
        ratios: dict[str, list[float]] = {"unload": [], "load": []}
        for r in range(args.rounds):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            medians = {n: medians_of(timed_cycles(urls[n], args.cycles)) for n in order}
            for action in ratios:
                ratios[action].append(medians[2][action] / medians[1][action])
            shown = [f"workers={n} {a} {ms:.1f} ms" for n, m in sorted(medians.items()) for a, ms in m.items()]
            print(f"round {r}: " + ", ".join(shown))
        for action, values in ratios.items():
            print(f"{action}: workers-2 / workers-1 median ratio {statistics.median(values):.2f} (per round {values})")


if __name__ == "__main__":
    main()
