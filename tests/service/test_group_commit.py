"""GroupCommit: concurrent submits share writes, off the loop; failures reach their own callers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.monitor.group_commit import GroupCommit


class Recorder:
    """A slow write (like an fsync) that records each group and the thread it ran on."""

    def __init__(self, fail_on: object = None) -> None:
        self.groups: list[list[object]] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on

    def write(self, items: list[object]) -> list[object]:
        time.sleep(0.02)
        self.groups.append(items)
        self.threads.add(threading.get_ident())
        if "boom" in items:
            raise OSError("disk gone")
        return [ValueError(f"bad {i}") if i == self.fail_on else f"ok {i}" for i in items]


def test_concurrent_submits_share_writes_run_off_the_loop_and_keep_order() -> None:
    recorder = Recorder()

    async def main() -> list[object]:
        commit = GroupCommit(recorder.write)
        return await asyncio.gather(*(commit.submit(i) for i in range(20)))

    assert asyncio.run(main()) == [f"ok {i}" for i in range(20)]
    assert [i for group in recorder.groups for i in group] == list(range(20))
    assert len(recorder.groups) <= 2  # the first write takes 0; the others queue behind it
    assert threading.get_ident() not in recorder.threads


def test_an_item_failure_reaches_its_caller_only() -> None:
    recorder = Recorder(fail_on=3)

    async def main() -> list[object]:
        commit = GroupCommit(recorder.write)
        return await asyncio.gather(*(commit.submit(i) for i in range(5)), return_exceptions=True)

    items = asyncio.run(main())
    assert [type(r).__name__ for r in items] == ["str", "str", "str", "ValueError", "str"]


class Transactional:
    """A write that records a whole group or nothing (a rolled-back transaction): it raises for
    any group holding a poisoned item, as SQLite did for a label above 2**63."""

    def __init__(self, poison: set[object]) -> None:
        self.poison = poison
        self.recorded: list[object] = []
        self.group_sizes: list[int] = []

    def write(self, items: list[object]) -> list[object]:
        time.sleep(0.01)  # long enough for the other submits to queue into one group
        self.group_sizes.append(len(items))
        bad = [i for i in items if i in self.poison]
        if bad:
            raise OverflowError(f"item {bad[0]} does not fit")
        self.recorded += items
        return [f"ok {i}" for i in items]


def test_a_write_that_raises_for_a_group_fails_only_the_items_that_fail_alone() -> None:
    """Issue 16 item 2: one bad item in a group commit failed every caller of the group."""
    writer = Transactional(poison={7, 13})

    async def main() -> list[object]:
        commit = GroupCommit(writer.write)
        return await asyncio.gather(*(commit.submit(i) for i in range(20)), return_exceptions=True)

    results = asyncio.run(main())
    assert max(writer.group_sizes) > 2  # the poisoned items did share groups with others
    assert [type(r).__name__ for r in results].count("OverflowError") == 2
    assert isinstance(results[7], OverflowError) and isinstance(results[13], OverflowError)
    assert [r for i, r in enumerate(results) if i not in (7, 13)] == [f"ok {i}" for i in range(20) if i not in (7, 13)]
    assert sorted(writer.recorded) == [i for i in range(20) if i not in (7, 13)]  # each once


def test_a_failure_of_every_write_reaches_every_caller() -> None:
    recorder = Recorder()

    async def main() -> list[object]:
        commit = GroupCommit(recorder.write)
        return await asyncio.gather(commit.submit("boom"), commit.submit("boom"), return_exceptions=True)

    assert all(isinstance(r, OSError) for r in asyncio.run(main()))


def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    recorder = Recorder()

    async def main() -> object:
        commit = GroupCommit(recorder.write)
        cancelled = asyncio.ensure_future(commit.submit("gone"))
        kept = asyncio.ensure_future(commit.submit("kept"))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        result = await kept
        await commit.drain()
        return result

    assert asyncio.run(main()) == "ok kept"
    assert "gone" in [i for group in recorder.groups for i in group]  # written all the same
