"""Dynamic batching: one bounded asyncio queue per model version, one ONNX Runtime call at a time.

Requests queue their preprocessed rows; a worker task takes everything queued, in arrival order,
as batches of whole requests of up to ``max_batch_size`` rows, and runs them one call after the
other in one job on the batcher's own thread (never on the event loop); each request gets its slice as soon as
its batch's call returns, so the loop answers one batch while the next one runs. While a job runs,
new requests queue up, so the batch size follows the load: 1 at concurrency 1 (no added latency),
up to max_batch_size under load. Before a job the worker
waits up to ``max_queue_delay_s`` only while more rows are expected: announced requests
(``arriving``) still being read and parsed, or fewer rows queued than the previous call took (its
clients are coming back), so a lone first request does not leave the rest for the next call.
The queue holds at most ``max_queue_size`` rows, counting batches taken into the job that have not
started: beyond it, QueueFull (503). A request still being read and parsed holds no place (a client
trickling its body must not keep others out); a full queue refuses it before its body is read.
Every request has a deadline: past it, DeadlineExceeded (503) and its rows are skipped if not run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from service.errors import DeadlineExceeded, QueueFull

Array = NDArray[np.float32]


class Rows(Protocol):
    """What a run returns: one row per input row, sliceable (an array, or service.inference.served.Served)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Self: ...


Out = TypeVar("Out", bound=Rows)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """Batching and backpressure limits of one model version (from Settings)."""

    max_batch_size: int = 8
    max_queue_delay_s: float = 0.0
    max_queue_size: int = 1024
    timeout_s: float = 30.0
    retry_after_s: int = 1

    @classmethod
    def from_settings(cls, settings: Any, model: str | None = None) -> BatchConfig:
        """Read ``max_batch_size``, ``max_queue_delay_ms``, ``max_queue_size``, ``request_timeout_s``;
        with ``model``, its ``model_batching`` overrides replace the global values they set."""
        override = settings.model_batching.get(model) if model is not None else None

        def value(name: str) -> Any:
            own = getattr(override, name, None)
            return getattr(settings, name) if own is None else own

        return cls(
            max_batch_size=value("max_batch_size"),
            max_queue_delay_s=value("max_queue_delay_ms") / 1000.0,
            max_queue_size=value("max_queue_size"),
            timeout_s=settings.request_timeout_s,
            retry_after_s=settings.retry_after_s,
        )


@dataclass(eq=False, slots=True)
class _Pending(Generic[Out]):
    """One request's rows and the future its handler awaits."""

    rows: Array
    future: asyncio.Future[Out]


class Batcher(Generic[Out]):
    """Coalesces concurrent ``submit`` calls into single ``run`` calls (see the module docstring).
    ``run(rows)`` is blocking and returns one output row per input row; each request gets its slice."""

    def __init__(self, run: Callable[[Array], Out], config: BatchConfig, name: str = "model") -> None:
        self._run = run
        self.config = config
        self.name = name
        self._queue: deque[_Pending[Out]] = deque()
        self._queued_rows = 0
        self._waiting_in_job = 0  # rows taken into the worker's job whose call has not started
        self._arriving = 0
        self._changed: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._last_rows = 0  # rows in the previous call: its requests are likely to come back
        self.calls = 0  # ONNX Runtime calls made (for tests and benchmarks)
        # One thread per batcher (its calls never overlap); it exits when the batcher is collected.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"candor-batch-{name}")

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a call (not counting the call in progress)."""
        return self._queued_rows + self._waiting_in_job

    @property
    def idle(self) -> bool:
        """No queued rows and no call in progress."""
        return self._worker is None and not self._queue

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Announce a request being read and parsed, so an idle worker may wait for it briefly
        (it holds no place in the queue). A full queue refuses it here, before its body is read
        (503 stays cheap under overload)."""
        self.admit(1)
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            self._signal()

    async def submit(self, rows: Array, deadline: float | None = None) -> Out:
        """Queue ``rows`` (N, ...) and return the model's output for them; 503 errors when full
        or when the loop-time ``deadline`` (default: now + timeout) passes first."""
        loop = asyncio.get_running_loop()
        self.admit(len(rows))
        pending: _Pending[Out] = _Pending(rows, loop.create_future())
        self._queue.append(pending)
        self._queued_rows += len(rows)
        self._signal()
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        when = loop.time() + self.config.timeout_s if deadline is None else deadline
        timer = loop.call_at(when, self._expire, pending)
        try:
            return await pending.future
        finally:
            timer.cancel()

    def admit(self, n: int) -> None:
        """Refuse (QueueFull) a request whose ``n`` rows do not fit beside the rows queued;
        requests still being read and parsed are not counted (they may never complete)."""
        c = self.config
        if self.queued_rows + n > c.max_queue_size:
            raise QueueFull(
                f"model '{self.name}' queue is full ({self.queued_rows} of "
                f"{c.max_queue_size} instances queued); retry later",
                field="instances",
                retry_after_s=c.retry_after_s,
            )

    def _expire(self, pending: _Pending[Out]) -> None:
        """Deadline timer: fail the request unless it was answered."""
        if not pending.future.done():
            pending.future.set_exception(
                DeadlineExceeded(
                    f"no answer within the request deadline of {self.config.timeout_s:g} s",
                    field="request",
                    retry_after_s=self.config.retry_after_s,
                )
            )

    def _signal(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _work(self) -> None:
        """Run batches until the queue is empty, then exit (the next submit starts a new worker)."""
        try:
            while self._queue:
                await self._await_arrivals()
                chunks = self._take_chunks()
                if chunks:
                    await self._run_chunks(chunks)
        finally:
            self._worker = None

    async def _await_arrivals(self) -> None:
        """Wait up to max_queue_delay_s while more rows are expected: announced requests still
        being parsed, or fewer rows queued than the previous call had (its clients come back)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.config.max_queue_delay_s
        if self._changed is None:
            self._changed = asyncio.Event()
        target = min(self.config.max_batch_size, max(self._last_rows, 1))
        while (self._arriving or self._queued_rows < target) and self._queued_rows < self.config.max_batch_size:
            left = until - loop.time()
            if left <= 0:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return

    def _take_chunks(self) -> list[list[_Pending[Out]]]:
        """Everything queued, in arrival order, as batches of whole requests of up to
        max_batch_size rows each (a larger request goes alone); requests already answered
        (deadline, client gone) are dropped."""
        chunks: list[list[_Pending[Out]]] = []
        taken: list[_Pending[Out]] = []
        rows = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():
                self._pop()
                continue
            if taken and rows + len(head.rows) > self.config.max_batch_size:
                chunks.append(taken)
                taken, rows = [], 0
            taken.append(self._pop())
            rows += len(head.rows)
        return [*chunks, taken] if taken else chunks

    def _pop(self) -> _Pending[Out]:
        pending = self._queue.popleft()
        self._queued_rows -= len(pending.rows)
        return pending

    async def _run_chunks(self, chunks: list[list[_Pending[Out]]]) -> None:
        """One model call per chunk, one after the other in one job on this batcher's thread;
        each chunk's requests are answered as soon as its call returns, while the next one runs. A
        backlog is thus worked off without a trip through a busy event loop between calls. The
        last chunk's delivery also ends the job: one wake-up of the loop per call, no more."""
        loop = asyncio.get_running_loop()
        sizes = [sum(len(p.rows) for p in chunk) for chunk in chunks]
        self._last_rows = max(sizes)
        self._waiting_in_job = sum(sizes[1:])
        done: asyncio.Future[None] = loop.create_future()
        try:
            try:
                self._thread.submit(self._call_each, loop, chunks, done)
            except RuntimeError as exc:  # the interpreter is shutting down: fail, never hang
                for index in range(len(chunks)):
                    self._deliver(chunks, index, None, exc, done)
            await done
        finally:
            self._waiting_in_job = 0

    def _call_each(
        self, loop: asyncio.AbstractEventLoop, chunks: list[list[_Pending[Out]]], done: asyncio.Future[None]
    ) -> None:
        """(worker thread) Run each chunk whose requests are not all answered yet (past their
        deadline); hand its output or exception to the loop, the last one with ``done``."""
        index = 0
        try:
            for index, chunk in enumerate(chunks):
                out: Out | None = None
                error: Exception | None = None
                try:
                    if not all(p.future.done() for p in chunk):  # a plain read; _settle checks again
                        rows = chunk[0].rows if len(chunk) == 1 else np.concatenate([p.rows for p in chunk])
                        self.calls += 1
                        out = self._run(rows)
                except Exception as exc:  # a failed call fails exactly the requests in it
                    error = exc
                last = index + 1 == len(chunks)
                loop.call_soon_threadsafe(self._deliver, chunks, index, out, error, done if last else None)
        except BaseException as exc:  # not an Exception: fail what is left, never leave it hanging
            failure = RuntimeError(f"model call interrupted: {exc!r}")
            for rest in range(index, len(chunks)):
                loop.call_soon_threadsafe(
                    self._deliver, chunks, rest, None, failure, done if rest + 1 == len(chunks) else None
                )
            raise

    def _deliver(
        self,
        chunks: list[list[_Pending[Out]]],
        index: int,
        out: Out | None,
        error: Exception | None,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        """(event loop) Chunk ``index`` is done: its requests get their slices of ``out`` (or
        ``error``; neither when it was skipped), and the next chunk leaves the queue's count;
        ``done`` (with the last chunk) ends the job."""
        if index + 1 < len(chunks):
            self._waiting_in_job -= sum(len(p.rows) for p in chunks[index + 1])
        start = 0
        for p in chunks[index]:
            if error is not None:
                _settle(p.future, exception=error)
            elif out is not None:
                _settle(p.future, result=out[start : start + len(p.rows)])
            start += len(p.rows)
        if done is not None and not done.done():  # after the requests: their handlers run first
            done.set_result(None)

    async def drain(self) -> None:
        """Return once every queued request has been run (used at shutdown and on unload)."""
        while self._worker is not None:
            await asyncio.shield(self._worker)


def _settle(future: asyncio.Future[Out], result: Out | None = None, exception: BaseException | None = None) -> None:
    """Set a future's outcome unless it already has one (expired or cancelled)."""
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    elif result is not None:
        future.set_result(result)
