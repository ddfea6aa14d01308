"""Group commit: concurrent callers' items written together by one blocking call, off the loop.

``await commit.submit(item)`` queues the item and returns its result once written. One write runs
at a time, in the thread pool (never on the event loop); items submitted meanwhile queue up and
the next write takes them all. So under load the fsync of a durable store is paid once per group
instead of once per request, and alone a caller waits for one write only (no added delay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
R = TypeVar("R")
WriteFn = Callable[[list[T]], list[R | Exception]]


class GroupCommit(Generic[T, R]):
    """Coalesces ``submit`` calls into ``write`` calls (see the module docstring).

    ``write(items)`` returns one result per item, in order; an Exception in that list is raised
    to that item's caller only. If ``write`` itself raises for a group of several items, each item
    is written again alone, so a failure reaches only the callers whose own write fails (``write``
    must leave nothing behind when it raises, as a rolled-back transaction does).
    """

    def __init__(self, write: WriteFn[T, R]) -> None:
        self._write = write
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item``; its result once the write that took it has finished."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued())
        return await future

    async def _write_queued(self) -> None:
        """Write whatever queued while the previous write ran, until the queue is empty."""
        while self._queue:
            group, self._queue = self._queue, []
            results = await run_in_threadpool(self._write_group, [item for item, _ in group])
            for (_, future), result in zip(group, results, strict=True):
                _settle(future, result)

    def _write_group(self, items: list[T]) -> list[R | Exception]:
        """(blocking) One write for the group; if it raises, one write per item, so that one
        item's failure fails only that item."""
        try:
            return self._write(items)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        return [self._write_alone(item) for item in items]

    def _write_alone(self, item: T) -> R | Exception:
        """The result of writing ``item`` by itself, or the exception that write raised."""
        try:
            (result,) = self._write([item])
        except Exception as exc:
            return exc
        return result

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (shutdown)."""
        if self._writer is not None:
            await self._writer


def _settle(future: asyncio.Future[R], result: R | Exception) -> None:
    """Wake a waiting caller (a cancelled caller's future is already done: left alone)."""
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
