"""One repository across the workers of ``candor serve --workers N`` (service.inference.desired).

A worker that changes its repository through the API (load, unload, promotion) applies the change
through its own ModelManager first, then records it in the run's desired state; every worker
follows: it stats the file every ``fleet_poll_interval_s`` and, when it changed, applies each model
entry newer than what it applied through the same ModelManager path (verified, atomic swap; a
refused load keeps the previous versions, logged), sets the run-time default overrides, and
reports the sequence number it reached (``repository.applied.<slot>``). The recording worker then
waits until every slot reports the new sequence, at most ``fleet_wait_s``: an answer of "loaded",
"unloaded" or "promoted" means served so by every worker that follows within that bound.

Within one process, applying a change and following are serialised (an asyncio lock), so a
follower pass never undoes a change this worker is about to record. A worker (re)started into a
slot applies the desired state before it listens: a kill -9 does not bring back a stale set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from service.errors import LoadRefused, ModelNotFound
from service.inference.desired import DesiredState, DesiredStateFile
from service.inference.model_manager import ModelManager
from service.settings import Settings
from service.worker_slot import WorkerSlot

T = TypeVar("T")
log = logging.getLogger("candor.models")
WAIT_POLL_S = 0.05
READ_EVERY = 8  # polls between reads of an unchanged-looking file (2 s at the default interval)


class FleetRepository:
    """This worker's side of the fleet's desired repository state (module docstring)."""

    def __init__(self, manager: ModelManager, worker: WorkerSlot, settings: Settings) -> None:
        self.manager = manager
        self.worker = worker
        self.settings = settings
        self.file = DesiredStateFile(worker.run_dir)
        self._applied: dict[str, int] = {}  # model -> seq of the entry last applied
        self._seq = -1  # the desired state's seq this worker serves
        self._lock = asyncio.Lock()

    async def load(self, name: str) -> list[str]:
        """Load ``name`` here, record it; every worker follows."""
        return await self.change(name, True, lambda: self.manager.load(name))

    async def unload(self, name: str) -> list[str]:
        """Unload ``name`` here, record it; every worker follows."""
        return await self.change(name, False, lambda: self.manager.unload(name))

    async def change(self, name: str, loaded: bool, apply: Callable[[], Awaitable[T]]) -> T:
        """Run ``apply`` (a load, unload or promotion of ``name`` on this worker), record the
        model's state and run-time default after it, and wait for every slot to follow."""
        async with self._lock:
            result = await apply()
            default = self._override(name)
            state = await asyncio.to_thread(self.file.update, lambda s: s.changed(name, loaded, default))
            self._applied[name] = state.models[name].seq
            await self._catch_up()  # changes others recorded meanwhile; reports state.seq or later
        await self.wait_for_all(state.seq)
        return result

    def _override(self, name: str) -> str | None:
        """The run-time default of ``name`` when it differs from the configured pin."""
        current = self.manager.repository.default_versions.get(name)
        return None if current == self.settings.default_versions.get(name) else current

    async def start(self) -> None:
        """Apply the desired state before serving: a (re)started worker loaded every model on
        disk, so models recorded loaded are served already; unloads and overrides are applied."""
        async with self._lock:
            await self._catch_up(starting=True)

    async def follow(self) -> None:
        """Poll the desired state until cancelled; apply it when its stamp changed (the first pass
        always reads it: a change recorded since ``start`` is not missed), and read it anyway every
        READ_EVERY polls (a stamp repeated by a reused inode within one clock tick is not missed)."""
        seen: tuple[int, int, int] | None | bool = False
        polls = 0
        while True:
            stamp = self.file.stamp()
            polls += 1
            if stamp != seen or polls % READ_EVERY == 0:
                seen = stamp
                async with self._lock:
                    await self._catch_up()
            await asyncio.sleep(self.settings.fleet_poll_interval_s)

    async def _catch_up(self, starting: bool = False) -> None:
        """Apply every model entry newer than what this worker applied; report the seq reached."""
        state = await asyncio.to_thread(self.file.read)
        if state.seq == self._seq:
            return
        for name, entry in sorted(state.models.items()):
            if entry.seq <= self._applied.get(name, 0):
                continue
            if not (starting and entry.loaded and name in self.manager.repository.models):
                await self._apply(name, entry.loaded)
            self._applied[name] = entry.seq
        self._set_defaults(state)
        self._seq = state.seq
        await asyncio.to_thread(self.file.record_applied, self.worker.slot, state.seq)

    async def _apply(self, name: str, loaded: bool) -> None:
        try:
            await (self.manager.load(name) if loaded else self.manager.unload(name))
        except (LoadRefused, ModelNotFound) as exc:
            log.error("candor: following the fleet's repository: %s; previous versions keep serving", exc)

    def _set_defaults(self, state: DesiredState) -> None:
        repository = self.manager.repository
        wanted = {**self.settings.default_versions, **state.defaults}
        if wanted != dict(repository.default_versions):
            repository.default_versions = wanted

    async def wait_for_all(self, seq: int) -> bool:
        """Wait until every slot reports ``seq`` applied, at most settings.fleet_wait_s; False
        (and a warning naming the slots behind) if some did not."""
        deadline = time.monotonic() + self.settings.fleet_wait_s
        while True:
            behind = [s for s in range(self.worker.n_slots) if self.file.applied(s) < seq]
            if not behind:
                return True
            if time.monotonic() >= deadline:
                log.warning(
                    "candor: worker slots %s have not applied repository change %d after %g s; they follow "
                    "when they can (a restarting worker applies it before it listens)",
                    behind,
                    seq,
                    self.settings.fleet_wait_s,
                )
                return False
            await asyncio.sleep(WAIT_POLL_S)


@asynccontextmanager
async def following(
    manager: ModelManager, worker: WorkerSlot | None, settings: Settings
) -> AsyncIterator[FleetRepository | None]:
    """For a worker slot: apply the desired state, then follow it for the block; None (nothing
    started, nothing polled) for a single process."""
    if worker is None:
        yield None
        return
    fleet = FleetRepository(manager, worker, settings)
    await fleet.start()
    task = asyncio.create_task(fleet.follow())
    try:
        yield fleet
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
