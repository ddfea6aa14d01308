"""The dynamic batcher: coalescing, order, bounded queue, deadlines, failures, drain."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import numpy as np
import pytest

from service.errors import DeadlineExceeded, QueueFull
from service.inference.batching import BatchConfig, Batcher


class SlowDouble:
    """A fake model: 2x, sleeping ``delay`` seconds per call, recording batch sizes and threads."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sizes: list[int] = []
        self.threads: set[int] = set()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.sizes.append(len(rows))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        return rows * 2


def rows(n: int, start: float = 0.0) -> np.ndarray:
    return (np.arange(n, dtype=np.float32) + start).reshape(n, 1)


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_coalesced_and_each_gets_its_own_rows() -> None:
    model = SlowDouble(delay=0.02)
    batcher = Batcher(model, BatchConfig(max_batch_size=64))

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.submit(rows(2, 10 * i)) for i in range(20)))

    results = run(main())
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, rows(2, 10 * i) * 2)
    assert sum(model.sizes) == 40 and len(model.sizes) < 20  # fewer calls than requests
    assert max(model.sizes) <= 64
    assert threading.get_ident() not in model.threads  # never on the event loop's thread


def test_batches_never_exceed_max_batch_size_but_a_large_request_runs_alone() -> None:
    model = SlowDouble(delay=0.01)
    batcher = Batcher(model, BatchConfig(max_batch_size=8, max_queue_size=100))

    async def main() -> None:
        await asyncio.gather(*(batcher.submit(rows(3)) for _ in range(10)), batcher.submit(rows(20)))

    run(main())
    assert 20 in model.sizes
    assert all(size <= 8 for size in model.sizes if size != 20)


def test_a_lone_request_is_not_delayed_by_the_queue_delay() -> None:
    batcher = Batcher(SlowDouble(), BatchConfig(max_queue_delay_s=0.5))

    async def main() -> float:
        started = time.perf_counter()
        await batcher.submit(rows(1))
        return time.perf_counter() - started

    assert run(main()) < 0.1


def test_announced_arrivals_join_the_batch_within_the_queue_delay() -> None:
    model = SlowDouble()
    batcher = Batcher(model, BatchConfig(max_queue_delay_s=0.5))

    async def late() -> np.ndarray:
        with batcher.arriving():
            await asyncio.sleep(0.05)  # still parsing its body
            return await batcher.submit(rows(1))

    async def main() -> None:
        task = asyncio.create_task(late())
        await asyncio.sleep(0)
        await asyncio.gather(batcher.submit(rows(1)), task)

    run(main())
    assert model.sizes == [2]


def test_full_queue_refuses_with_503_and_retry_after() -> None:
    batcher = Batcher(SlowDouble(delay=0.1), BatchConfig(max_batch_size=1, max_queue_size=4, retry_after_s=3))

    async def main() -> list[object]:
        return await asyncio.gather(*(batcher.submit(rows(1)) for _ in range(10)), return_exceptions=True)

    results = run(main())
    refused = [r for r in results if isinstance(r, QueueFull)]
    served = [r for r in results if isinstance(r, np.ndarray)]
    assert len(refused) + len(served) == 10 and refused and len(served) >= 4
    assert refused[0].status == 503 and refused[0].headers() == {"Retry-After": "3"}
    assert "queue is full" in str(refused[0])


def test_deadline_answers_503_and_skips_the_expired_rows() -> None:
    model = SlowDouble(delay=0.2)
    batcher = Batcher(model, BatchConfig(max_batch_size=1, timeout_s=0.05))

    async def main() -> list[object]:
        return await asyncio.gather(*(batcher.submit(rows(1)) for _ in range(3)), return_exceptions=True)

    results = run(main())
    assert all(isinstance(r, DeadlineExceeded) and r.status == 503 for r in results)
    assert len(model.sizes) == 1  # the two still queued at their deadline never ran


def test_a_failing_call_fails_only_its_requests_and_the_batcher_keeps_working() -> None:
    calls = {"n": 0}

    def flaky(x: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return x

    batcher = Batcher(flaky, BatchConfig())

    async def main() -> tuple[object, np.ndarray]:
        first = await asyncio.gather(batcher.submit(rows(1)), return_exceptions=True)
        return first[0], await batcher.submit(rows(2))

    failed, ok = run(main())
    assert isinstance(failed, RuntimeError)
    np.testing.assert_array_equal(ok, rows(2))


def test_drain_waits_for_queued_requests() -> None:
    model = SlowDouble(delay=0.02)
    batcher = Batcher(model, BatchConfig(max_batch_size=1))

    async def main() -> list[asyncio.Task[np.ndarray]]:
        tasks = [asyncio.create_task(batcher.submit(rows(1))) for _ in range(5)]
        await asyncio.sleep(0)
        await batcher.drain()
        assert batcher.idle
        return tasks

    tasks = run(main())
    assert all(t.done() and not t.exception() for t in tasks)
    assert len(model.sizes) == 5


@pytest.mark.parametrize("field", ["max_batch_size", "max_queue_size"])
def test_config_is_read_from_settings(field: str) -> None:
    from service.settings import Settings

    config = BatchConfig.from_settings(Settings(max_batch_size=7, max_queue_size=2048, max_queue_delay_ms=5))
    assert {"max_batch_size": 7, "max_queue_size": 2048}[field] == getattr(config, field)
    assert config.max_queue_delay_s == pytest.approx(0.005)


def test_a_full_queue_refuses_arrivals_before_their_body_is_read() -> None:
    batcher = Batcher(SlowDouble(delay=0.2), BatchConfig(max_batch_size=1, max_queue_size=2))

    async def main() -> None:
        tasks = [asyncio.create_task(batcher.submit(rows(1))) for _ in range(2)]
        await asyncio.sleep(0.05)  # one running, one queued
        tasks.append(asyncio.create_task(batcher.submit(rows(1))))
        await asyncio.sleep(0)  # two queued: the queue is full
        with pytest.raises(QueueFull), batcher.arriving():
            pass
        await asyncio.gather(*tasks)

    run(main())


def test_requests_being_read_hold_no_place_in_the_queue() -> None:
    """Issue 16 item 1: with 3 places, requests still reading their bodies (a client may trickle
    one for minutes) keep no one out; only queued rows count, so the queue still takes 3 rows."""
    batcher = Batcher(SlowDouble(delay=0.2), BatchConfig(max_batch_size=1, max_queue_size=3))

    async def main() -> None:
        running = asyncio.create_task(batcher.submit(rows(1)))
        await asyncio.sleep(0.05)  # the first row runs; the queue is empty again
        with batcher.arriving(), batcher.arriving(), batcher.arriving(), batcher.arriving():
            queued = [asyncio.create_task(batcher.submit(rows(1))) for _ in range(3)]
            await asyncio.sleep(0)
            assert batcher.queued_rows == 3
            with pytest.raises(QueueFull, match="3 of 3 instances queued"), batcher.arriving():
                pass  # the queue itself is full: refused before the body is read
        await asyncio.gather(running, *queued)

    run(main())


def test_batches_waiting_in_the_job_still_count_against_the_queue() -> None:
    batcher = Batcher(SlowDouble(delay=0.2), BatchConfig(max_batch_size=1, max_queue_size=3))

    async def main() -> None:
        tasks = [asyncio.create_task(batcher.submit(rows(1))) for _ in range(3)]
        await asyncio.sleep(0.05)  # one call running, two waiting in the same job
        assert batcher.queued_rows == 2
        tasks.append(asyncio.create_task(batcher.submit(rows(1))))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull), batcher.arriving():
            pass
        await asyncio.gather(*tasks)
        assert batcher.queued_rows == 0

    run(main())


def test_calls_run_on_the_batcher_s_own_thread_which_exits_with_the_batcher() -> None:
    model = SlowDouble()
    batcher = Batcher(model, BatchConfig(), "m/1")

    async def main(b: Batcher[np.ndarray]) -> None:
        await asyncio.gather(*(b.submit(rows(1, k)) for k in range(5)))
        await b.submit(rows(2))

    run(main(batcher))
    (worker,) = [t for t in threading.enumerate() if t.ident in model.threads]
    assert worker.name.startswith("candor-batch-m/1") and worker is not threading.main_thread()
    del batcher
    gc.collect()
    worker.join(timeout=5)
    assert not worker.is_alive()


class Interrupted(BaseException):
    """Not an Exception (as KeyboardInterrupt or SystemExit are not)."""


class Interrupting(SlowDouble):
    """A model whose call raises a BaseException that is not an Exception."""

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        raise Interrupted


def test_a_call_raising_a_base_exception_fails_its_requests_instead_of_hanging() -> None:
    batcher = Batcher(Interrupting(), BatchConfig(timeout_s=30.0))

    async def main() -> list[object]:
        return await asyncio.wait_for(
            asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(1)), return_exceptions=True), 5
        )

    results = run(main())
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    assert "model call interrupted: Interrupted()" in str(results[0])
