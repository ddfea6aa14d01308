"""Fixtures of the monitor tests: a session redis-server and stores of both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from monitor_procs import RedisServer, free_port

from service.monitor.stores.pending_log import PendingLogStore
from service.monitor.stores.redis_store import RedisStore
from service.monitor.stores.sqlite_store import SQLiteStore
from service.monitor.stores.store import PredictionStore, StoreLimits


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server (no persistence) shared by the session; tests isolate by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port()).start()
    yield server
    server.stop()


StoreFactory = Callable[[StoreLimits], PredictionStore]


def store_factory(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, opened: list[PredictionStore]
) -> StoreFactory:
    """Builds stores of ``backend``: sqlite, sqlite-log (behind its pending log) or redis."""
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else ""

    def build(limits: StoreLimits) -> PredictionStore:
        store: PredictionStore
        if backend == "redis":
            store = RedisStore(redis_url, limits, prefix=prefix)
        else:
            store = SQLiteStore(tmp_path / "predictions.db", limits)
            if backend == "sqlite-log":
                store = PendingLogStore(store, flush_rows=4)
        opened.append(store)
        return store

    return build


@pytest.fixture(params=["sqlite", "sqlite-log", pytest.param("redis", marks=pytest.mark.e2e)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds stores of one backend (one handle per test for sqlite-log, which owns its file)."""
    opened: list[PredictionStore] = []
    yield store_factory(request.param, request, tmp_path, opened)
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.e2e)])
def make_shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds stores of a backend that replicas share; each call is another handle on the same
    data (a replica)."""
    opened: list[PredictionStore] = []
    yield store_factory(request.param, request, tmp_path, opened)
    for store in opened:
        store.close()
