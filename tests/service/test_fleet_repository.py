"""The fleet's desired repository state: sequence numbers, atomic writes under the flock, and two
workers' followers (two ModelManagers on one run directory) converging on load, unload, promotion
and a restarted worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path

import pytest
from model_copies import copy_version

from service.inference.batching import BatchConfig
from service.inference.desired import DESIRED_FILE, DesiredState, DesiredStateFile, ModelEntry
from service.inference.fleet_repository import FleetRepository, following
from service.inference.model_manager import ModelManager
from service.inference.repository import load_repository
from service.settings import Settings
from service.worker_slot import WorkerSlot

MODEL = "digits-cnn"


def test_each_change_raises_the_sequence_and_names_its_model(tmp_path: Path) -> None:
    file = DesiredStateFile(tmp_path)
    assert file.read() == DesiredState() and file.stamp() is None
    first = file.update(lambda s: s.changed("a", False, None))
    second = file.update(lambda s: s.changed("b", True, "3"))
    third = file.update(lambda s: s.changed("a", True, None))
    assert (first.seq, second.seq, third.seq) == (1, 2, 3)
    assert file.read() == third
    assert third.models == {"a": ModelEntry(True, 3), "b": ModelEntry(True, 2)}
    assert third.defaults == {"b": "3"}
    assert file.read().changed("b", True, None).defaults == {}  # no override: the pin (or highest) rules
    assert DesiredState.from_json(third.to_json()) == third


def _bump(run_dir: str, times: int) -> None:
    file = DesiredStateFile(Path(run_dir))
    for i in range(times):
        file.update(lambda s, i=i: s.changed(f"m{os.getpid()}-{i % 3}", bool(i % 2), None))


def test_concurrent_writers_in_several_processes_lose_no_change(tmp_path: Path) -> None:
    """Read-modify-write under the flock: 4 processes x 25 changes -> seq 100, and every reader
    saw a whole file (temporary file + rename)."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(str(tmp_path), 25)) for _ in range(4)]
    for p in procs:
        p.start()
    file = DesiredStateFile(tmp_path)
    while any(p.is_alive() for p in procs):
        file.read()  # never a torn file
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert file.read().seq == 100
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_applied_sequences_are_per_slot(tmp_path: Path) -> None:
    file = DesiredStateFile(tmp_path)
    assert file.applied(0) == -1
    file.record_applied(0, 4)
    file.record_applied(1, 2)
    assert (file.applied(0), file.applied(1)) == (4, 2)


@pytest.fixture
def models(digits_artifact, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    copy_version(digits_artifact.models_dir, root, MODEL, "1", "1")
    return root


def worker(models: Path, run_dir: Path, slot: int, **overrides: object) -> FleetRepository:
    """One simulated worker slot of 2: its own repository and manager, the shared run directory."""
    options: dict[str, object] = {"fleet_wait_s": 5.0, "fleet_poll_interval_s": 0.02, **overrides}
    settings = Settings(models_dir=models, providers="cpu", **options)  # type: ignore[arg-type]
    repository = load_repository(models, "cpu", batching=BatchConfig(), default_versions=settings.default_versions)
    return FleetRepository(ModelManager(repository, settings), WorkerSlot(slot, 2, run_dir), settings)


def served(fleet: FleetRepository) -> dict[str, list[str]]:
    return {name: sorted(v, key=int) for name, v in fleet.manager.repository.models.items()}


async def converge(a: FleetRepository, b: FleetRepository, tmp: Path) -> None:
    """b follows in the background while a changes: unload, reload with a new version on disk."""
    await a.start()
    await b.start()
    follower = asyncio.create_task(b.follow())
    try:
        assert await a.unload(MODEL) == ["1"]
        assert served(a) == served(b) == {}  # a's answer waited for b
        copy_version(tmp / "models", tmp / "models", MODEL, "1", "2")
        assert await a.load(MODEL) == ["1", "2"]
        assert served(b) == {MODEL: ["1", "2"]}
        assert b.manager.repository.get(MODEL).manifest.version == "2"
    finally:
        follower.cancel()


def test_a_change_on_one_worker_is_served_by_the_other_before_the_answer(models: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    a, b = worker(models, run_dir, 0), worker(models, run_dir, 1)
    asyncio.run(converge(a, b, tmp_path))
    assert DesiredStateFile(run_dir).read().seq == 2
    assert (a.file.applied(0), a.file.applied(1)) == (2, 2)


def test_a_restarted_worker_starts_from_the_desired_state(models: Path, tmp_path: Path) -> None:
    """Unloaded stays unloaded and a run-time default override (a promotion over a pin) is kept."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    copy_version(models, models, MODEL, "1", "2")
    DesiredStateFile(run_dir).update(lambda s: s.changed(MODEL, True, "2").changed("other", False, None))
    restarted = worker(models, run_dir, 1, default_versions={MODEL: "1"})
    asyncio.run(restarted.start())
    assert restarted.manager.repository.get(MODEL).manifest.version == "2"
    assert restarted.file.applied(1) == 2
    DesiredStateFile(run_dir).update(lambda s: s.changed(MODEL, False, None))
    asyncio.run(restarted.start())
    assert served(restarted) == {}


def test_a_slot_that_does_not_follow_bounds_the_wait(models: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    a = worker(models, run_dir, 0, fleet_wait_s=0.2)
    asyncio.run(a.start())
    assert asyncio.run(a.unload(MODEL)) == ["1"]  # answers although slot 1 never applied it
    assert a.file.applied(1) == -1 and served(a) == {}


def test_a_single_process_starts_nothing(models: Path, tmp_path: Path) -> None:
    settings = Settings(models_dir=models, providers="cpu", state_dir=tmp_path / "state")
    manager = ModelManager(load_repository(models, "cpu"), settings)

    async def check() -> None:
        async with following(manager, None, settings) as fleet:
            assert fleet is None
            assert len(asyncio.all_tasks()) == 1

    asyncio.run(check())
    assert not (tmp_path / "state").exists() and not list(tmp_path.glob(f"**/{DESIRED_FILE}"))
