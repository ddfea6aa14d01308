"""Reliability-diagram PNGs for the calibration endpoint: cached per window state, rendered one at
a time on a thread of their own.

Rendering takes tens of milliseconds of CPU and matplotlib draws one figure per thread at a time.
On the shared thread pool (the one feedback and the prediction store use) a burst of PNG requests
held every thread waiting for the renderer, and feedback waited behind them. Here the pool is never
used: one render thread, at most ``max_waiting`` distinct renders waiting for it (beyond: 503), and
requests for a window state already rendered, or being rendered, share that PNG.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from calibration.binning import BinStatistics
from calibration.plots import figure_png, plot_reliability
from service.errors import Unavailable
from service.monitor import Monitor
from service.monitor.state import reference_statistics

ModelKey = tuple[str, str]
State = tuple[bytes, ...]
MAX_WAITING_RENDERS = 4  # distinct window states queued for the render thread; beyond: 503


@dataclass(frozen=True)
class Diagram:
    """Everything a reliability diagram shows: the window's bins, the reference's, the title."""

    window: BinStatistics
    reference: BinStatistics | None
    title: str

    def state(self) -> State:
        """The diagram's content: equal states draw equal PNGs."""
        reference = () if self.reference is None else bin_state(self.reference)
        return (self.title.encode(), *bin_state(self.window), *reference)


def bin_state(stats: BinStatistics) -> State:
    """Per-bin counts and sums of ``stats`` as bytes."""
    return (stats.counts.tobytes(), stats.confidence_sums.tobytes(), stats.correct_sums.tobytes())


def render_png(diagram: Diagram) -> bytes:
    """The diagram as PNG bytes (blocking, tens of milliseconds)."""
    return figure_png(plot_reliability(diagram.window, diagram.reference, title=diagram.title))


def diagram_of(monitor: Monitor, model: str, version: str) -> Diagram:
    """The window's per-bin sums beside the manifest's reference, titled with the model and window."""
    snap = monitor.snapshot(model, version)
    reference = None if snap.reference is None else reference_statistics(snap.reference)
    title = f"{model} version {version}, last {monitor.config.window_seconds:g} s"
    return Diagram(snap.window, reference, title)


class ReliabilityRenderer:
    """Renders diagrams on its own single thread; caches the last PNG of each model version."""

    def __init__(self, render: Callable[[Diagram], bytes] = render_png, max_waiting: int = MAX_WAITING_RENDERS) -> None:
        self._render = render
        self.max_waiting = max_waiting
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="candor-render")
        self._cache: dict[ModelKey, tuple[State, bytes]] = {}  # model version -> (state, png)
        self._rendering: dict[tuple[ModelKey, State], asyncio.Future[bytes]] = {}

    async def png(self, monitor: Monitor, model: str, version: str) -> bytes:
        """The PNG of the window as it is now: from the cache when its state has not changed,
        else rendered (or joined, when a render of that state is under way)."""
        diagram = diagram_of(monitor, model, version)
        state = diagram.state()
        cached = self._cache.get((model, version))
        if cached is not None and cached[0] == state:
            return cached[1]
        key = ((model, version), state)
        future = self._rendering.get(key) or self._start(key, diagram)
        return await asyncio.shield(future)  # a waiter that goes away leaves the render to the rest

    def _start(self, key: tuple[ModelKey, State], diagram: Diagram) -> asyncio.Future[bytes]:
        """Queue a render for the render thread, or refuse (503) when ``max_waiting`` are queued."""
        if len(self._rendering) > self.max_waiting:  # one rendering, max_waiting waiting
            raise Unavailable(
                f"{len(self._rendering)} reliability diagrams are being rendered; retry later", field="render"
            )
        future = asyncio.get_running_loop().run_in_executor(self.executor, self._render, diagram)
        self._rendering[key] = future
        future.add_done_callback(lambda done: self._finish(key, done))
        return future

    def _finish(self, key: tuple[ModelKey, State], done: asyncio.Future[bytes]) -> None:
        """A render ended: cache its PNG as the model version's latest."""
        del self._rendering[key]
        if not done.cancelled() and done.exception() is None:
            self._cache[key[0]] = (key[1], done.result())

    def close(self) -> None:
        """Stop the render thread; renders not started are cancelled."""
        self.executor.shutdown(wait=False, cancel_futures=True)
