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
   needs, i.e. what a put cost before scores were kept. Alternating rounds on stores opened once
   (``--score-rounds``); prints each variant's median us per prediction, the added us per
   prediction and the ratio to the store without scores.

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
from pathlib import Path
from typing import Annotated, Any

import numpy as np
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


def served_probs(n: int, classes: int, rng: np.random.Generator) -> Probs:
    """n float32 softmax rows, as an engine serves them."""
    logits = rng.normal(scale=3.0, size=(n, classes))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def scored_records(ids: list[str], probs: Probs | None, now: float) -> list[PredictionRecord]:
    """What Monitor.record_predictions builds: one record per id, the encoded vector when given."""
    blobs: list[bytes | None] = [None] * len(ids) if probs is None else list(encode_scores(probs, DEFAULT_TOP_K))
    return [PredictionRecord(pid, "m", "1", 0.5, 1, now, blob) for pid, blob in zip(ids, blobs, strict=True)]


@contextmanager
def redis_url() -> Iterator[str | None]:
    """A throwaway redis-server on a loopback port (no persistence), or None when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            import redis

            client = redis.Redis(port=port)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def score_stores(stack: ExitStack, backend: str, url: str | None) -> dict[str, PredictionStore]:
    """The stores one backend's variants write to, each opened once (own file or key prefix)."""
    stores: dict[str, PredictionStore] = {}
    variants = ["no scores", "scores"] if backend == "Redis" else ["no scores, no window index", "no scores", "scores"]
    for name in variants:
        if backend == "Redis":
            from service.monitor.stores.redis_store import RedisStore

            assert url is not None
            store: PredictionStore = RedisStore(url, StoreLimits(), prefix=f"{name}:")
        else:
            sqlite = SQLiteStore(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "p.db", StoreLimits())
            if name.endswith("no window index"):  # the write cost before scores were kept
                sqlite._conn.execute("DROP INDEX predictions_by_model_time")
            store = PendingLogStore(sqlite) if backend == "pending log" else sqlite
        stack.callback(store.close)
        stores[name] = store
    return stores


def time_puts(store: PredictionStore, size: int, calls: int, classes: int, scored: bool, seed: int) -> float:
    """Seconds per prediction of ``calls`` puts of ``size`` rows, records and encoding included."""
    rng = np.random.default_rng(seed)
    probs = [served_probs(size, classes, rng) if scored else None for _ in range(calls)]
    ids = [new_prediction_ids(size) for _ in range(calls)]
    started = time.perf_counter()
    for batch_ids, batch_probs in zip(ids, probs, strict=True):
        store.put(scored_records(batch_ids, batch_probs, time.time()))
    return (time.perf_counter() - started) / (calls * size)


def score_writes(rows: int, calls: int, classes: int, rounds: int) -> None:
    """Part 4 (module docstring): each backend, 32-row and 1-row puts, alternating variants."""
    with redis_url() as url, ExitStack() as stack:
        if url is None:
            print("scores    Redis: redis-server not installed, skipped")
        for backend in ["SQLite", "pending log"] + (["Redis"] if url else []):
            stores = score_stores(stack, backend, url)
            for name, store in stores.items():  # prefill: rows of the variant's own kind
                for k in range(rows // 32):
                    probs = served_probs(32, classes, np.random.default_rng(k)) if name == "scores" else None
                    store.put(scored_records(new_prediction_ids(32), probs, time.time()))
            for size in (32, 1):
                per_row: dict[str, list[float]] = {name: [] for name in stores}
                for r in range(rounds):
                    for name in list(stores) if r % 2 == 0 else list(reversed(stores)):
                        n = calls * 32 // size // rounds
                        per_row[name].append(time_puts(stores[name], size, n, classes, name == "scores", r))
                report_scores(backend, size, classes, per_row)


def report_scores(backend: str, size: int, classes: int, per_row: dict[str, list[float]]) -> None:
    """Median us per prediction of each variant; added us and ratio against each baseline."""
    median = {name: statistics.median(values) for name, values in per_row.items()}
    for name, value in median.items():
        print(
            f"scores    {backend:<11} {size:>2}-row put, {classes} classes, {name:<26} {1e6 * value:7.1f} us/prediction"
        )
    for base in (name for name in median if name != "scores"):
        added = median["scores"] - median[base]
        print(
            f"scores    {backend:<11} {size:>2}-row put: scores add {1e6 * added:6.1f} us/prediction "
            f"over '{base}' (ratio {median['scores'] / median[base]:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=100_000, help="predictions in the store before timing")
    parser.add_argument("--parts", nargs="+", default=["routing", "stores", "hop", "scores"])
    parser.add_argument("--classes", type=int, default=10, help="classes of the stored score vectors")
    parser.add_argument("--score-rounds", type=int, default=6)
    args = parser.parse_args()
    if "routing" in args.parts:
        asyncio.run(routing(args.calls))
    if "stores" in args.parts:
        store_writes(args.rows, 300)
    if "hop" in args.parts:
        asyncio.run(thread_hop(args.calls // 2))
    if "scores" in args.parts:
        score_writes(args.rows, 300, args.classes, args.score_rounds)


if __name__ == "__main__":
    main()
