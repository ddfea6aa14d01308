"""``candor recalibrate``: durations, the offline path on a temp store, and the path through a
running server (never both owning the SQLite store)."""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from model_copies import copy_version
from recalibration_rows import FakeSource, served_rows

from candor.cli import main
from service.app import create_app
from service.monitor.wiring import open_store
from service.recalibration.candidate import CANDIDATES
from service.recalibration.cli import duration
from service.recalibration.guard import recalibrating
from service.settings import Settings

MODEL = "digits-cnn"
TOKEN = "cli-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(digits_artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """CANDOR_* for a private models dir and state dir, and a port nothing listens on."""
    copy_version(digits_artifact.models_dir, tmp_path / "models", MODEL, "1", "1")
    values = {
        "CANDOR_MODELS_DIR": str(tmp_path / "models"),
        "CANDOR_STATE_DIR": str(tmp_path / "state"),
        "CANDOR_PORT": str(free_port()),
        "CANDOR_RECALIBRATION_MIN_LABELS": "300",
        "CANDOR_RECALIBRATION_RESAMPLES": "200",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


class FakeStore(FakeSource):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_durations() -> None:
    assert (duration("90s"), duration("30m"), duration("2h"), duration("1.5d")) == (90, 1800, 7200, 129600)
    for bad in ("10", "10x", "-1h", "0m", "h"):
        with pytest.raises(argparse.ArgumentTypeError, match="s, m, h or d"):
            duration(bad)


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["recalibrate", MODEL, "--window", "10x", "--method", "ts"])
    assert exited.value.code == 2 and "is not a duration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["recalibrate", MODEL, "--window", "1h", "--method", "vs"])
    assert exited.value.code == 2


def test_offline_without_a_server_promotes_into_models_dir(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FakeStore(served_rows(2000))
    monkeypatch.setattr("service.monitor.wiring.open_store", lambda settings: store)
    assert main(["recalibrate", f"{MODEL}/1", "--window", "2h", "--method", "ts", "--promote", "auto"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["outcome"] == "promoted" and answer["new_version"] == "2"
    assert (Path(env["CANDOR_MODELS_DIR"]) / MODEL / "2" / "manifest.json").is_file()
    assert store.closed and store.calls[0][:2] == (MODEL, "1") and store.calls[0][3] - store.calls[0][2] == 7200


def test_offline_never_opens_a_store_another_process_owns(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    owner = open_store(Settings())  # what a running server holds
    try:
        assert main(["recalibrate", MODEL, "--window", "1h", "--method", "ts"]) == 2
    finally:
        owner.close()
    assert "pass --url where it listens" in capsys.readouterr().err


def test_offline_is_refused_while_a_recalibration_of_the_model_runs(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server's endpoint (any worker) holds the model's lock: the offline run exits 2 and
    writes nothing, instead of racing for the next version number."""
    store = FakeStore(served_rows(2000))
    monkeypatch.setattr("service.monitor.wiring.open_store", lambda settings: store)
    with recalibrating(Path(env["CANDOR_STATE_DIR"]) / CANDIDATES, MODEL):
        assert main(["recalibrate", MODEL, "--window", "2h", "--method", "ts", "--promote", "auto"]) == 2
    assert "already running" in capsys.readouterr().err and store.calls == []
    assert not (Path(env["CANDOR_MODELS_DIR"]) / MODEL / "2").exists()


@contextmanager
def running_server(settings: Settings, source: FakeSource) -> Iterator[str]:
    """The app under uvicorn on a free port in a thread, its monitor reading ``source``."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        app.state.monitoring.monitor.served_rows = source.served_rows
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def test_with_a_server_the_cli_goes_through_its_endpoint(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server_state = tmp_path / "server-state"
    settings = Settings(
        models_dir=Path(env["CANDOR_MODELS_DIR"]),
        state_dir=server_state,
        auth_token=TOKEN,
        recalibration_min_labels=300,
        recalibration_resamples=200,
    )
    with running_server(settings, FakeSource(served_rows(2000))) as url:
        monkeypatch.setenv("CANDOR_AUTH_TOKEN", "wrong")
        assert main(["recalibrate", MODEL, "--window", "1h", "--method", "ts", "--url", url]) == 2
        assert "answered 401" in capsys.readouterr().err
        monkeypatch.setenv("CANDOR_AUTH_TOKEN", TOKEN)
        assert main(["recalibrate", MODEL, "--window", "1h", "--method", "ts", "--url", url]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["outcome"] == "written"
    assert answer["artifact_path"] == str(server_state / "candidates" / MODEL / "2")  # the server's own work


def test_offline_reads_the_store_a_stopped_server_left(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Predictions and labels served by an app (now stopped) are read from its SQLite store."""
    from fastapi.testclient import TestClient

    from training.data import load_digits

    digits = load_digits()
    with TestClient(create_app(Settings())) as client:
        predictions = client.post(f"/v1/models/{MODEL}:predict", json={"instances": digits.test_x[:120, 0].tolist()})
        ids = [p["prediction_id"] for p in predictions.json()["predictions"]]
        labels = [{"prediction_id": i, "label": int(y)} for i, y in zip(ids[:80], digits.test_y[:80], strict=True)]
        assert client.post("/v1/feedback", json={"labels": labels}).json()["accepted"] == 80
    assert main(["recalibrate", MODEL, "--window", "1h", "--method", "prior-shift"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["n_fit"] + answer["n_heldout"] + answer["n_unlabelled"] == 120
    assert answer["outcome"] == "insufficient_labels" and answer["new_version"] == "2"  # 300 labels needed
    assert Path(answer["artifact_path"]) == Path(env["CANDOR_STATE_DIR"]) / "candidates" / MODEL / "2"


def test_an_explicit_url_that_does_not_answer_is_an_error(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{env['CANDOR_PORT']}"
    assert main(["recalibrate", MODEL, "--window", "1h", "--method", "ts", "--url", url]) == 2
    assert "no server answers" in capsys.readouterr().err
