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

    .venv/bin/python -m bench.request_path
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.applications import Starlette
from starlette.routing import Route

from service.app import NO_OPENTELEMETRY
from service.inference.served import new_prediction_ids
from service.monitor import SQLiteStore, StoreLimits
from service.monitor.stores.pending_log import PendingLogStore
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=100_000, help="predictions in the store before timing")
    args = parser.parse_args()
    asyncio.run(routing(args.calls))
    store_writes(args.rows, 300)
    asyncio.run(thread_hop(args.calls // 2))


if __name__ == "__main__":
    main()
