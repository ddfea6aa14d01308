"""Benchmark (not a test): the costs behind the serving path's design, each against its alternative
in this one process.

1. routing: an in-process ASGI call through a FastAPI route with three dependencies, a FastAPI
   route without any, a plain Starlette route inside the same FastAPI app (what candor's inference
   routes are), and a bare Starlette app (the floor).
2. store writes: 32-row (a batch under load) and 1-row (concurrency 1) puts into a store already
   holding ``--rows`` predictions: SQLiteStore with random 128-bit ids, with candor's time-ordered
   ids, and PendingLogStore in front of it (candor's default; its bulk moves included).
3. thread hop: one ``run_in_executor`` round trip around 300 us of work, wall time and the event
   loop thread's CPU time.
4. stored scores: the same 32-row and 1-row puts with and without each prediction's probability
   vector (``--classes`` classes, encoded as the monitor does, the encoding timed with the put),
   for a SQLite transaction, the pending log and Redis (a redis-server started here, when
   installed); for SQLite also without the (model, version, created_at) index the window read
   needs, i.e. what a put cost before scores were kept. Stores opened once and prefilled with
   ``--rows``, then ``--score-blocks`` blocks of 1024 rows each, the variants alternating block by
   block; prints each variant's median over blocks in us per prediction, wall time and CPU time
   (this process's, plus the Redis server's: less sensitive than wall time to other processes on
   a shared host), the added us per prediction and the ratio to the store without scores. Then
   the window read: ``served_rows`` of every row with scores, and of the last second's.

    .venv/bin/python -m bench.request_path
    .venv/bin/python -m bench.request_path --parts scores --classes 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import psutil
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.applications import Starlette
from starlette.routing import Route

from bench.processes import free_port
from service.app import NO_OPENTELEMETRY
from service.inference.served import new_prediction_ids
from service.monitor import SQLiteStore, StoreLimits
from service.monitor.stores.pending_log import PendingLogStore
from service.monitor.stores.scores import DEFAULT_TOP_K, encode_scores
from service.monitor.stores.store import PredictionRecord, PredictionStore

ASGIApp = Callable[..., Any]


async def state_value(request: Request) -> int:
    return int(request.app.state.value)


Value = Annotated[int, Depends(state_value)]


async def plain(request: Request) -> Response:
    await request.body()
    return Response(b"{}", media_type="application/json")


def routing_apps() -> dict[str, tuple[ASGIApp, str]]:
    """The four ways of answering the same POST (with 30 other routes registered, as in an app)."""
    router = APIRouter()

    @router.post("/deps/{model_name}:predict", dependencies=[Depends(state_value)])
    async def with_deps(model_name: str, request: Request, a: Value, b: Value) -> Response:
        return await plain(request)

    @router.post("/nodeps/{model_name}:predict")
    async def without_deps(model_name: str, request: Request) -> Response:
        return await plain(request)

    for i in range(30):
        router.add_api_route(f"/other{i}/{{item}}", plain, methods=["GET"])
    app = FastAPI(telemetry=NO_OPENTELEMETRY)  # as candor's app
    app.state.value = 1
    app.include_router(router)
    app.router.routes.insert(0, Route("/plain/{model_name}:predict", plain, methods=["POST"]))
    bare = Starlette(routes=[Route("/plain/{model_name}:predict", plain, methods=["POST"])])
    return {
        "FastAPI route, 3 dependencies": (app, "/deps/m:predict"),
        "FastAPI route, no dependencies": (app, "/nodeps/m:predict"),
        "Starlette route in the FastAPI app": (app, "/plain/m:predict"),
        "bare Starlette app": (bare, "/plain/m:predict"),
    }


async def asgi_call(app: ASGIApp, path: str) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-length", b"2"), (b"content-type", b"application/json")],
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(_: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


async def routing(calls: int) -> None:
    for label, (app, path) in routing_apps().items():
        for _ in range(200):
            await asgi_call(app, path)
        started = time.perf_counter()
        for _ in range(calls):
            await asgi_call(app, path)
        print(f"routing   {label:<36} {1e6 * (time.perf_counter() - started) / calls:7.1f} us per call")


def random_ids(n: int) -> list[str]:
    digits = os.urandom(16 * n).hex()
    return [digits[32 * i : 32 * (i + 1)] for i in range(n)]


STORE_VARIANTS: list[tuple[str, Callable[[int], list[str]], bool]] = [
    ("random ids", random_ids, False),
    ("time-ordered ids", new_prediction_ids, False),
    ("time-ordered, pending log", new_prediction_ids, True),
]


def store_writes(rows: int, calls: int) -> None:
    """Puts of 32 rows (a batch under load) and of 1 row (concurrency 1) into a store of ``rows``:
    SQLite transactions with random or time-ordered ids, and through the pending log (its bulk
    moves into the file, every 1024 rows, included in the average)."""
    for size in (32, 1):
        for label, make_ids, logged in STORE_VARIANTS:
            with tempfile.TemporaryDirectory() as tmp:
                sqlite = SQLiteStore(Path(tmp) / "p.db", StoreLimits())
                store: PredictionStore = PendingLogStore(sqlite) if logged else sqlite

                def records(n: int, ids: Callable[[int], list[str]] = make_ids) -> list[PredictionRecord]:
                    now = time.time()
                    return [PredictionRecord(pid, "m", "1", 0.5, 1, now) for pid in ids(n)]

                for _ in range(rows // 32):
                    store.put(records(32))
                n = calls * 32 // size
                batches = [records(size) for _ in range(n)]
                started = time.perf_counter()
                for batch in batches:
                    store.put(batch)
                per_call = (time.perf_counter() - started) / n
                print(f"store     {size:>2}-row put into {rows:>7} rows, {label:<26} {1e6 * per_call:7.0f} us")
                store.close()


async def thread_hop(calls: int) -> None:
    loop = asyncio.get_running_loop()

    def work() -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.0003:
            pass

    await loop.run_in_executor(None, work)
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(calls):
        await loop.run_in_executor(None, work)
    print(
        f"hop       run_in_executor around 300 us of work: {1e6 * (time.perf_counter() - wall) / calls:.0f} us wall, "
        f"{1e6 * (time.thread_time() - cpu) / calls:.0f} us of the loop thread's CPU"
    )


Probs = np.ndarray
BLOCK_ROWS = 1024  # rows per timed block of part 4: the pending log's flush_rows


def served_probs(n: int, classes: int, rng: np.random.Generator) -> Probs:
    """n float32 softmax rows, as an engine serves them."""
    logits = rng.normal(scale=3.0, size=(n, classes))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def scored_records(ids: list[str], probs: Probs | None, now: float) -> list[PredictionRecord]:
    """What Monitor.record_predictions builds: one record per id, the encoded vector when given."""
    blobs: list[bytes | None] = [None] * len(ids) if probs is None else list(encode_scores(probs, DEFAULT_TOP_K))
    return [PredictionRecord(pid, "m", "1", 0.5, 1, now, blob) for pid, blob in zip(ids, blobs, strict=True)]


@dataclass(frozen=True)
class Redis:
    """A throwaway redis-server: its URL and its process (whose CPU time counts in a put's cost)."""

    url: str
    process: psutil.Process


@contextmanager
def redis_server() -> Iterator[Redis | None]:
    """A redis-server on a loopback port (no persistence), or None when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            wait_for_redis(port)
            yield Redis(f"redis://127.0.0.1:{port}/0", psutil.Process(process.pid))
        finally:
            process.terminate()
            process.wait(timeout=10)


def wait_for_redis(port: int) -> None:
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()


def score_stores(stack: ExitStack, backend: str, server: Redis | None) -> dict[str, PredictionStore]:
    """The stores one backend's variants write to, each opened once (own file or key prefix)."""
    stores: dict[str, PredictionStore] = {}
    variants = ["no scores", "scores"] if backend == "Redis" else ["no scores, no window index", "no scores", "scores"]
    for name in variants:
        if backend == "Redis":
            from service.monitor.stores.redis_store import RedisStore

            assert server is not None
            store: PredictionStore = RedisStore(server.url, StoreLimits(), prefix=f"{name}:")
        else:
            sqlite = SQLiteStore(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "p.db", StoreLimits())
            if name.endswith("no window index"):  # the write cost before scores were kept
                sqlite._conn.execute("DROP INDEX predictions_by_model_time")
            store = PendingLogStore(sqlite) if backend == "pending log" else sqlite
        stack.callback(store.close)
        stores[name] = store
    return stores


def cpu_seconds(server: Redis | None) -> float:
    """This process's CPU time, plus the Redis server's when there is one."""
    cpu = time.process_time()
    if server is not None:
        times = server.process.cpu_times()
        cpu += times.user + times.system
    return cpu


def time_block(
    store: PredictionStore, size: int, classes: int, scored: bool, rng: np.random.Generator, server: Redis | None
) -> tuple[float, float]:
    """Wall and CPU seconds per prediction of puts of ``size`` rows, BLOCK_ROWS rows in all (so each
    block of the pending log holds exactly one bulk move into the file), records and encoding
    included; CPU counts the Redis server's too (``server``)."""
    calls = BLOCK_ROWS // size
    probs = [served_probs(size, classes, rng) if scored else None for _ in range(calls)]
    ids = [new_prediction_ids(size) for _ in range(calls)]
    cpu, started = cpu_seconds(server), time.perf_counter()
    for batch_ids, batch_probs in zip(ids, probs, strict=True):
        store.put(scored_records(batch_ids, batch_probs, time.time()))
    wall = time.perf_counter() - started
    return wall / BLOCK_ROWS, (cpu_seconds(server) - cpu) / BLOCK_ROWS


def score_writes(rows: int, classes: int, blocks: int) -> None:
    """Part 4 (module docstring): each backend, 32-row and 1-row puts, the variants alternating
    block by block (the host drifts by tens of percent within minutes)."""
    rng = np.random.default_rng(0)
    with redis_server() as server, ExitStack() as stack:
        if server is None:
            print("scores    Redis: redis-server not installed, skipped")
        for backend in ["SQLite", "pending log"] + (["Redis"] if server else []):
            stores = score_stores(stack, backend, server)
            for name, store in stores.items():  # prefill: rows of the variant's own kind
                for _ in range(rows // 32):
                    probs = served_probs(32, classes, rng) if name == "scores" else None
                    store.put(scored_records(new_prediction_ids(32), probs, time.time()))
            watched = server if backend == "Redis" else None
            for size in (32, 1):
                per_row: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
                for b in range(blocks):
                    for name in list(stores) if b % 2 == 0 else list(reversed(stores)):
                        scored = name == "scores"
                        per_row[name].append(time_block(stores[name], size, classes, scored, rng, watched))
                report_scores(backend, size, classes, per_row)
            window_reads(backend, stores["scores"])


def window_reads(backend: str, store: PredictionStore) -> None:
    """Time ``served_rows`` over everything stored and over the last second's rows only."""
    now = time.time()
    for label, since in (("all", 0.0), ("last 1 s", now - 1.0)):
        started = time.perf_counter()
        rows = store.served_rows("m", "1", since, now + 1.0)
        took = time.perf_counter() - started
        print(f"window    {backend:<11} served_rows, {label:<8}: {len(rows):>7} rows in {1e3 * took:7.1f} ms")


def report_scores(backend: str, size: int, classes: int, per_row: dict[str, list[tuple[float, float]]]) -> None:
    """Median wall and CPU us per prediction of each variant; added us and ratios against each
    baseline."""
    wall = {name: statistics.median(w for w, _ in values) for name, values in per_row.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in per_row.items()}
    for name in per_row:
        print(
            f"scores    {backend:<11} {size:>2}-row put, {classes} classes, {name:<26} "
            f"{1e6 * wall[name]:7.1f} us wall, {1e6 * cpu[name]:7.1f} us CPU per prediction"
        )
    for base in (name for name in per_row if name != "scores"):
        print(
            f"scores    {backend:<11} {size:>2}-row put: scores add {1e6 * (wall['scores'] - wall[base]):6.1f} us "
            f"wall (ratio {wall['scores'] / wall[base]:.2f}), {1e6 * (cpu['scores'] - cpu[base]):6.1f} us CPU "
            f"(ratio {cpu['scores'] / cpu[base]:.2f}) per prediction over '{base}'"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=100_000, help="predictions in the store before timing")
    parser.add_argument("--parts", nargs="+", default=["routing", "stores", "hop", "scores"])
    parser.add_argument("--classes", type=int, default=10, help="classes of the stored score vectors")
    parser.add_argument("--score-blocks", type=int, default=15, help=f"alternating blocks of {BLOCK_ROWS} rows")
    args = parser.parse_args()
    if "routing" in args.parts:
        asyncio.run(routing(args.calls))
    if "stores" in args.parts:
        store_writes(args.rows, 300)
    if "hop" in args.parts:
        asyncio.run(thread_hop(args.calls // 2))
    if "scores" in args.parts:
        score_writes(args.rows, args.classes, args.score_blocks)


if __name__ == "__main__":
    main()
