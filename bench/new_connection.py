"""Benchmark (not a test): how long a connection opened during an overload waits for its first
answer, for `candor serve` and the bare Starlette baseline, on each event loop.

wrk keeps 1024 connections in a closed loop (as bench/overload.py); ``--after`` seconds in, a new
connection sends one predict and the time to its answer's status line is printed, then again every
``--every`` seconds until wrk stops.

    .venv/bin/python -m bench.new_connection
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from bench.loadgen import build_request, exchange, wrk_closed_loop
from bench.processes import bare_starlette, candor_serve, free_port
from bench.serve import SMALL, build_models, predict_body, predict_path


def first_answer(port: int, request: bytes) -> tuple[float, int]:
    """Seconds from connecting to the answer's status, and the status."""
    started = time.perf_counter()
    status, _ = asyncio.run(exchange(port, request))
    return time.perf_counter() - started, status


def probe_during_overload(label: str, port: int, seconds: int, after: float, every: float) -> None:
    path, body = predict_path(SMALL), predict_body((1, 28, 28))
    load = threading.Thread(target=wrk_closed_loop, args=(port, path, body, 1024, seconds), kwargs={"threads": 2})
    started = time.perf_counter()
    load.start()
    time.sleep(after)
    while time.perf_counter() - started < seconds - every:
        opened = time.perf_counter() - started
        wait, status = first_answer(port, build_request(path, body))
        print(f"{label:<28} connection opened {opened:5.1f} s into the overload: {status} after {wait:6.2f} s")
        time.sleep(every)
    load.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of the overload")
    parser.add_argument("--after", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), heavy=False)
        path, body = predict_path(SMALL), predict_body((1, 28, 28))
        for loop in ("asyncio", "uvloop"):
            port = free_port()
            env = {"CANDOR_MAX_QUEUE_SIZE": "64", "CANDOR_MAX_INSTANCES": "64", "CANDOR_EVENT_LOOP": loop}
            with candor_serve(models, port, env):
                _, response = asyncio.run(exchange(port, build_request(path, body)))
                probe_during_overload(f"candor serve, {loop}", port, args.seconds, args.after, args.every)
            port = free_port()
            with bare_starlette(port, response, loop):
                probe_during_overload(f"bare Starlette, {loop}", port, args.seconds, args.after, args.every)


if __name__ == "__main__":
    main()
