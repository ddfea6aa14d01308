"""Rendered pages kept for a second: however many browsers watch, a page (its snapshots, drift
tests and HTML) is rendered at most once per ``ttl_s``, so viewers cannot take CPU from predict
and feedback (bench/ui.py measures it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

PAGE_TTL_S = 1.0


class PageCache:
    """scope (None for /ui, a model name) -> (rendered at, HTML). Only pages that rendered are
    kept (an unknown model's 404 is not), so the cache holds at most one page per model plus one.
    Renders take turns under one lock: requests for a stale page wait for one render."""

    def __init__(self, ttl_s: float = PAGE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._pages: dict[str | None, tuple[float, str]] = {}
        self._lock = asyncio.Lock()

    async def get(self, scope: str | None, render: Callable[[], Awaitable[str]]) -> str:
        """The page of ``scope``: cached when younger than ttl_s, else ``render()``ed now."""
        async with self._lock:
            cached = self._pages.get(scope)
            if cached is not None and self._clock() - cached[0] < self.ttl_s:
                return cached[1]
            page = await render()
            self._pages[scope] = (self._clock(), page)
            return page
