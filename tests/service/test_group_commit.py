"""GroupCommit: concurrent submits share writes, off the loop; failures reach their own callers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.group_commit import GroupCommit


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


def test_an_item_failure_reaches_its_caller_only_and_a_write_failure_every_caller() -> None:
    recorder = Recorder(fail_on=3)

    async def main() -> tuple[list[object], list[object]]:
        commit = GroupCommit(recorder.write)
        items = await asyncio.gather(*(commit.submit(i) for i in range(5)), return_exceptions=True)
        whole = await asyncio.gather(commit.submit("boom"), commit.submit("x"), return_exceptions=True)
        return items, whole

    items, whole = asyncio.run(main())
    assert [type(r).__name__ for r in items] == ["str", "str", "str", "ValueError", "str"]
    assert all(isinstance(r, OSError) for r in whole)


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
