"""The reliability-diagram renderer: cached per window state, its own bounded thread (issue 16 item 8)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from service.api.reliability import Diagram, ReliabilityRenderer
from service.errors import Unavailable
from service.monitor import Monitor, SQLiteStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class CountingRender:
    """A render function that counts its calls, the threads it ran on, and may be held back."""

    def __init__(self) -> None:
        self.calls = 0
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, diagram: Diagram) -> bytes:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        self.release.wait(30)
        return f"png {self.calls}: {diagram.window.total} labels".encode()


@pytest.fixture
def monitor(tmp_path: Path) -> Monitor:
    monitor = Monitor(SQLiteStore(tmp_path / "p.db"))
    monitor.record_predictions("m", "1", ["a", "b", "c"], [0.9, 0.8, 0.7], [0, 0, 0])
    monitor.record_feedback([("a", 0)])
    return monitor


def test_the_same_window_state_is_served_from_the_cache_and_a_new_label_re_renders(monitor: Monitor) -> None:
    render = CountingRender()
    renderer = ReliabilityRenderer(render)

    async def main() -> list[bytes]:
        first = await renderer.png(monitor, "m", "1")
        again = await renderer.png(monitor, "m", "1")
        monitor.record_feedback([("b", 1)])
        after_label = await renderer.png(monitor, "m", "1")
        return [first, again, after_label]

    try:
        first, again, after_label = asyncio.run(main())
    finally:
        renderer.close()
    assert again == first and render.calls == 2
    assert first == b"png 1: 1 labels" and after_label == b"png 2: 2 labels"


def test_renders_run_on_the_renderer_s_own_single_thread_and_concurrent_requests_share_one(
    monitor: Monitor,
) -> None:
    render = CountingRender()
    renderer = ReliabilityRenderer(render)
    assert renderer.executor._max_workers == 1  # the bound: one render at a time, never the shared pool

    async def main() -> list[bytes]:
        return await asyncio.gather(*(renderer.png(monitor, "m", "1") for _ in range(20)))

    try:
        pngs = asyncio.run(main())
    finally:
        renderer.close()
    assert render.calls == 1 and set(pngs) == {b"png 1: 1 labels"}
    assert len(render.threads) == 1 and next(iter(render.threads)).startswith("candor-render")


def test_beyond_max_waiting_distinct_renders_the_renderer_answers_503(monitor: Monitor) -> None:
    render = CountingRender()
    render.release.clear()  # the first render holds the thread
    renderer = ReliabilityRenderer(render, max_waiting=1)
    for i in range(3):
        monitor.add_model("m", str(10 + i), None)

    async def main() -> list[bytes | BaseException]:
        tasks = [asyncio.create_task(renderer.png(monitor, "m", str(10 + i))) for i in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Unavailable, match="being rendered") as refused:
            await renderer.png(monitor, "m", "12")
        assert refused.value.status == 503 and refused.value.field == "render"
        render.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        render.release.set()
        renderer.close()
    assert results == [b"png 1: 0 labels", b"png 2: 0 labels"]


def test_the_default_render_draws_a_png(monitor: Monitor) -> None:
    renderer = ReliabilityRenderer()
    try:
        png = asyncio.run(renderer.png(monitor, "m", "1"))
    finally:
        renderer.close()
    assert png.startswith(PNG_MAGIC)
