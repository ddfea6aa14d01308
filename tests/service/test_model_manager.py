"""Hot reload: versions side by side, atomic swaps, every kind of broken artifact refused."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from model_copies import BREAKERS, copy_version, edit_manifest

from service.errors import LoadRefused, ModelNotFound
from service.inference.batching import BatchConfig
from service.inference.model_manager import ModelManager
from service.inference.repository import load_from_settings, load_repository
from service.inference.served import Served
from service.settings import Settings

MODEL = "digits-cnn"
X = np.zeros((1, 1, 8, 8), np.float32)


@pytest.fixture
def models(digits_artifact, tmp_path: Path) -> Path:
    """A models dir holding digits-cnn version 1 only."""
    root = tmp_path / "models"
    copy_version(digits_artifact.models_dir, root, MODEL, "1", "1")
    return root


def manager_for(models: Path, **settings: object) -> ModelManager:
    s = Settings(models_dir=models, providers="cpu", **settings)
    return ModelManager(load_repository(models, "cpu", batching=BatchConfig(), default_versions=s.default_versions), s)


def test_loading_a_new_version_serves_both_and_unversioned_goes_to_the_newest(models: Path) -> None:
    manager = manager_for(models)
    old = manager.repository.get(MODEL, "1")
    copy_version(models, models, MODEL, "1", "2")
    assert asyncio.run(manager.load(MODEL)) == ["1", "2"]
    assert manager.repository.get(MODEL).manifest.version == "2"
    assert manager.repository.get(MODEL, "1") is old  # unchanged directory: same engine, same queue


def test_a_pinned_default_version_answers_unversioned_calls(models: Path) -> None:
    copy_version(models, models, MODEL, "1", "2")
    manager = manager_for(models, default_versions={MODEL: "1"})
    assert manager.repository.get(MODEL).manifest.version == "1"
    asyncio.run(manager.unload(MODEL))
    shutil.rmtree(models / MODEL / "1")
    asyncio.run(manager.load(MODEL))
    with pytest.raises(ModelNotFound, match="pinned default version '1'"):
        manager.repository.get(MODEL)


@pytest.mark.parametrize("breaker", sorted(BREAKERS))
def test_a_broken_new_version_is_refused_and_the_previous_keeps_serving(models: Path, breaker: str) -> None:
    manager = manager_for(models)
    old = manager.repository.get(MODEL)
    phrase = BREAKERS[breaker](copy_version(models, models, MODEL, "1", "2"))
    with pytest.raises(LoadRefused) as info:
        asyncio.run(manager.load(MODEL))
    assert info.value.status == 400 and phrase in str(info.value) and "2/manifest.json" in str(info.value)
    assert manager.repository.get(MODEL) is old and list(manager.repository.models[MODEL]) == ["1"]
    assert asyncio.run(old.infer(X)).probs.shape == (1, 10)


@pytest.mark.parametrize("breaker", sorted(BREAKERS))
def test_a_broken_replacement_of_the_served_version_is_refused(models: Path, breaker: str) -> None:
    manager = manager_for(models)
    old = manager.repository.get(MODEL)
    phrase = BREAKERS[breaker](models / MODEL / "1")
    with pytest.raises(LoadRefused, match=phrase.replace(".", r"\.")):
        asyncio.run(manager.load(MODEL))
    assert manager.repository.get(MODEL) is old
    assert asyncio.run(old.infer(X)).probs.shape == (1, 10)


def test_in_flight_requests_finish_on_the_old_session_new_ones_use_the_new(models: Path) -> None:
    manager = manager_for(models)
    old = manager.repository.get(MODEL)
    started, used = threading.Event(), []

    def slow_old(batch: np.ndarray) -> Served:
        started.set()
        time.sleep(0.3)
        used.append("old")
        return old.serve_rows(batch)

    old.batcher._run = slow_old  # type: ignore[union-attr]

    async def main() -> tuple[Served, object]:
        in_flight = asyncio.create_task(manager.repository.get(MODEL).infer(X))
        await asyncio.to_thread(started.wait)
        edit_manifest(models / MODEL / "1", lambda m: m.update(created_at="2030-01-01T00:00:00Z"))
        await manager.load(MODEL)
        new = manager.repository.get(MODEL)
        await new.infer(X)
        return await in_flight, new

    result, new = asyncio.run(main())
    assert result.probs.shape == (1, 10) and len(result.ids) == 1 and used == ["old"]
    assert new is not old and new.manifest.created_at.year == 2030 and new.batcher.calls == 1


def test_unload_then_load_and_invalid_names(models: Path) -> None:
    manager = manager_for(models)
    assert asyncio.run(manager.unload(MODEL)) == ["1"]
    assert asyncio.run(manager.unload(MODEL)) == []  # idempotent
    with pytest.raises(ModelNotFound):
        manager.repository.get(MODEL)
    assert asyncio.run(manager.load(MODEL)) == ["1"]
    for name in ("../etc", ".hidden", "nope"):
        with pytest.raises(ModelNotFound):
            asyncio.run(manager.load(name))


def test_index_lists_disk_and_served_state(models: Path) -> None:
    manager = manager_for(models)
    copy_version(models, models, MODEL, "1", "3")
    states = {(e.version, e.state) for e in manager.index()}
    assert states == {("1", "READY"), ("3", "UNAVAILABLE")}


def test_watch_pass_reloads_changes_refuses_broken_once_and_unloads_removed(
    models: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = manager_for(models)
    copy_version(models, models, MODEL, "1", "2")
    asyncio.run(manager.sync())
    assert sorted(manager.repository.models[MODEL]) == ["1", "2"]
    BREAKERS["sha256"](models / MODEL / "2")
    with caplog.at_level(logging.ERROR, logger="candor.models"):
        asyncio.run(manager.sync())
        asyncio.run(manager.sync())  # the same broken files are not retried every pass
    assert sum("onnx_sha256" in r.getMessage() for r in caplog.records) == 1
    assert manager.repository.get(MODEL, "2").manifest.version == "2"  # previous v2 keeps serving
    shutil.rmtree(models / MODEL)
    asyncio.run(manager.sync())
    assert MODEL not in manager.repository.models


def test_a_manifest_naming_another_model_is_refused(models: Path) -> None:
    manager = manager_for(models)
    target = copy_version(models, models, MODEL, "1", "2")
    edit_manifest(target, lambda m: m.update(name="other"))
    with pytest.raises(LoadRefused, match="manifest says other/2"):
        asyncio.run(manager.load(MODEL))
    assert json.loads((target / "manifest.json").read_text())["name"] == "other"


def test_a_model_s_own_batching_applies_to_its_versions_loaded_at_start_and_later(models: Path) -> None:
    settings = Settings(
        models_dir=models,
        providers="cpu",
        max_batch_size=64,
        model_batching={MODEL: {"max_batch_size": 3, "max_queue_delay_ms": 15}},
    )
    manager = ModelManager(load_from_settings(settings), settings)
    config = manager.repository.get(MODEL, "1").batcher.config  # type: ignore[union-attr]
    assert (config.max_batch_size, config.max_queue_delay_s) == (3, 0.015)
    copy_version(models, models, MODEL, "1", "2")
    asyncio.run(manager.load(MODEL))
    assert manager.repository.get(MODEL, "2").batcher.config.max_batch_size == 3  # type: ignore[union-attr]


def test_each_successful_load_and_unload_logs_one_info_line(models: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 16 item 11: a reload through the repository API was not logged at all."""
    manager = manager_for(models)
    copy_version(models, models, MODEL, "1", "2")
    with caplog.at_level(logging.INFO, logger="candor.models"):
        asyncio.run(manager.load(MODEL))  # POST /v2/repository/models/{m}/load
        copy_version(models, models, MODEL, "1", "3")
        asyncio.run(manager.sync())  # the watcher
        BREAKERS["sha256"](models / MODEL / "3")
        asyncio.run(manager.sync())  # refused: an error, no "loaded" line
        asyncio.run(manager.unload(MODEL))
        asyncio.run(manager.unload(MODEL))  # nothing left to unload: nothing logged
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "candor.models"]
    assert [line for line in lines if line[0] == "INFO"] == [
        ("INFO", "candor: loaded digits-cnn versions 1, 2"),
        ("INFO", "candor: loaded digits-cnn versions 1, 2, 3"),
        ("INFO", "candor: unloaded digits-cnn versions 1, 2, 3"),
    ]
    assert [level for level, _ in lines] == ["INFO", "INFO", "ERROR", "INFO"]


def test_a_load_rehashes_an_onnx_file_tampered_with_the_same_size_and_mtime(models: Path) -> None:
    """Size and mtime say nothing about content: the load call re-hashes and refuses it."""
    manager = manager_for(models)
    old = manager.repository.get(MODEL)
    onnx = models / MODEL / "1" / "model.onnx"
    before = onnx.stat()
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    os.utime(onnx, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (onnx.stat().st_size, onnx.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(LoadRefused, match="onnx_sha256"):
        asyncio.run(manager.load(MODEL))
    assert manager.repository.get(MODEL) is old


def test_an_unchanged_version_keeps_its_engine_after_a_rehash(models: Path) -> None:
    manager = manager_for(models)
    old = manager.repository.get(MODEL)
    asyncio.run(manager.load(MODEL))
    assert manager.repository.get(MODEL) is old


def test_watch_refuses_a_manifest_edited_alone_and_says_so(models: Path, caplog: pytest.LogCaptureFixture) -> None:
    manager = manager_for(models)
    classes = manager.repository.get(MODEL).manifest.classes
    BREAKERS["manifest_digest"](models / MODEL / "1")
    with caplog.at_level(logging.ERROR, logger="candor.models"):
        asyncio.run(manager.sync())
    assert any("manifest_sha256" in r.getMessage() for r in caplog.records)
    assert manager.repository.get(MODEL).manifest.classes == classes
