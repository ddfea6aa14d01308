"""Fixtures of the monitor tests: a session redis-server and stores of both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from monitor_procs import RedisServer, free_port

from service.monitor.redis_store import RedisStore
from service.monitor.sqlite_store import SQLiteStore
from service.monitor.store import PredictionStore, StoreLimits


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server (no persistence) shared by the session; tests isolate by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port()).start()
    yield server
    server.stop()


StoreFactory = Callable[[StoreLimits], PredictionStore]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.e2e)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds stores of one backend; each call is another handle on the same data (a replica)."""
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    opened: list[PredictionStore] = []

    def build(limits: StoreLimits) -> PredictionStore:
        store: PredictionStore
        if request.param == "sqlite":
            store = SQLiteStore(tmp_path / "predictions.db", limits)
        else:
            store = RedisStore(redis_url, limits, prefix=prefix)
        opened.append(store)
        return store

    yield build
    for store in opened:
        store.close()
