"""bench/peers without installs or network: the wrk parser and Lua body literal, the ratio/median
table, the answer check against Candor itself (in-process app, the bundled model), the process
tree from a fake /proc, and what every peer module declares and writes."""

from __future__ import annotations

import json
import py_compile
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.loadgen import lua_literal, parse_wrk
from bench.peers.answers import TOLERANCE, Answer, compare
from bench.peers.base import GRPC, KINDS, MODEL, V1_JSON, V2_BINARY, V2_JSON, Ports, candor_path
from bench.peers.measure import Figures
from bench.peers.peer_model import PeerModel
from bench.peers.registry import PEERS
from bench.peers.requests import Request, build, fixed_images, probabilities
from bench.peers.running import model_dir
from bench.peers.table import Round, markdown, median_figures, median_ratios
from bench.peers.tree import cpu_seconds, descendants
from bench.processes import REPO
from service.app import create_app
from service.settings import Settings

HTTP_KINDS = (V1_JSON, V2_JSON, V2_BINARY)


def test_parse_wrk_reads_rate_statuses_and_quantiles() -> None:
    out = (
        "Running 1s test\n"
        'CANDOR_WRK {"duration_us": 2000000, "statuses": [{"200": 90}, {"200": 8, "503": 2}], '
        '"latency_us": {"50": 1500, "90": 2500, "99": 9000}, "errors": 3}\n'
    )
    result = parse_wrk(out)
    assert result.completed == 100 and result.statuses[503] == 2 and result.errors == 3
    assert result.rate == pytest.approx(50.0)
    assert result.quantiles_ms == {0.5: 1.5, 0.9: 2.5, 0.99: 9.0}


def test_lua_literal_keeps_every_byte() -> None:
    data = bytes(range(256)) + b'{"a": "\\\\"}0123'
    literal = lua_literal(data)
    assert literal[0] == literal[-1] == '"' and literal.isascii()
    decoded = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), literal[1:-1])
    assert decoded.encode("latin-1") == data


def figures(rps: float, p50: float, cpu: float) -> Figures:
    return Figures(rps=rps, p99_ms=4 * p50, cpu_us=cpu, p50_c1_ms=p50, p99_c1_ms=2 * p50)


def test_ratios_are_taken_within_each_round_then_the_median() -> None:
    rounds = [
        Round("x", V1_JSON, figures(200, 1.0, 300), figures(100, 2.0, 600)),  # ratio 2.0
        Round("x", V1_JSON, figures(100, 1.0, 300), figures(25, 1.0, 300)),  # ratio 4.0
        Round("x", V1_JSON, figures(300, 1.0, 300), figures(100, 1.0, 300)),  # ratio 3.0
    ]
    ratios = median_ratios(rounds)
    assert ratios["rps"] == 3.0  # the median of per-round ratios, not 200 / 100
    assert ratios["cpu_us"] == 1.0 and ratios["p50_c1_ms"] == 1.0
    assert median_figures([r.other for r in rounds]).rps == 100
    table = markdown(rounds).splitlines()
    assert len(table) == 3 and "| x | json-v1 | 3 |" in table[2] and "200 / 100 (3.00)" in table[2]


@pytest.fixture(scope="module")
def candor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Candor in-process over the bundled model, one ONNX Runtime thread, store on."""
    settings = Settings(models_dir=REPO / "models", intra_op_threads=1, state_dir=tmp_path_factory.mktemp("state"))
    with TestClient(create_app(settings)) as client:
        yield client


def candor_answer(client: TestClient) -> Answer:
    def answer(kind: str, request: Request) -> np.ndarray:
        path = candor_path(kind)
        assert path is not None
        response = client.post(path, content=request.body, headers=request.headers)
        assert response.status_code == 200, response.text
        return probabilities(kind, response.content, dict(response.headers))

    return answer


def local_answer(model: PeerModel, shift: float = 0.0) -> Answer:
    """A fake peer: the peers' model code in-process, parsing the same request bodies."""

    def answer(kind: str, request: Request) -> np.ndarray:
        if kind == V1_JSON:
            raw = json.loads(request.body)["instances"]
        elif kind == V2_JSON:
            tensor = json.loads(request.body)["inputs"][0]
            raw = np.asarray(tensor["data"]).reshape(tensor["shape"])
        else:
            header = int(request.headers["Inference-Header-Content-Length"])
            raw = np.frombuffer(request.body[header:], np.uint8).reshape(1, 1, 28, 28)
        return model.predict(raw).astype(np.float64) + shift

    return answer


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_peer_model_answers_equal_candors(candor: TestClient, kind: str) -> None:
    model = PeerModel(model_dir(), threads=1)
    assert compare(kind, fixed_images(4), candor_answer(candor), local_answer(model)) is None


def test_answers_that_differ_are_refused_with_the_reason(candor: TestClient) -> None:
    model = PeerModel(model_dir(), threads=1)
    why = compare(V2_JSON, fixed_images(2), candor_answer(candor), local_answer(model, shift=10 * TOLERANCE))
    assert why is not None and "differ by up to" in why and "image 0" in why


def test_a_peer_that_fails_to_answer_is_refused(candor: TestClient) -> None:
    def broken(kind: str, request: Request) -> np.ndarray:
        raise RuntimeError("HTTP 500")

    why = compare(V1_JSON, fixed_images(1), candor_answer(candor), broken)
    assert why is not None and "HTTP 500" in why


def test_peer_model_refuses_out_of_range_and_misshapen_input() -> None:
    model = PeerModel(model_dir(), threads=1)
    with pytest.raises(ValueError, match="within"):
        model.predict(np.full((1, 1, 28, 28), 256.0))
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((1, 1, 27, 28)))


def test_requests_of_every_kind_carry_the_image() -> None:
    image = fixed_images(1)[0]
    assert json.loads(build(V1_JSON, image).body)["instances"] == [image[0].tolist()]
    binary = build(V2_BINARY, image)
    assert binary.body.endswith(image.tobytes())
    header = json.loads(binary.body[: int(binary.headers["Inference-Header-Content-Length"])])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == image.nbytes


def fake_proc(root: Path, processes: dict[int, tuple[int, int, int]]) -> Path:
    """/proc/PID/stat for pid -> (ppid, utime ticks, stime ticks); the command holds ') ('."""
    for pid, (ppid, utime, stime) in processes.items():
        (root / str(pid)).mkdir()
        rest = ["S", str(ppid), *["0"] * 9, str(utime), str(stime), *["0"] * 5]
        (root / str(pid) / "stat").write_text(f"{pid} (odd) (name) " + " ".join(rest) + "\n")
    return root


def test_process_tree_counts_descendants_outside_the_group(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {10: (1, 100, 50), 11: (10, 10, 0), 12: (11, 5, 5), 20: (1, 999, 999)})
    assert sorted(descendants(10, proc)) == [10, 11, 12]
    from bench.peers.tree import TICKS

    assert cpu_seconds(descendants(10, proc), proc) == pytest.approx(170 / TICKS)


def serve_pins() -> dict[str, str]:
    lock = (REPO / "requirements" / "requirements-serve.txt").read_text().splitlines()
    return dict(line.split("==", 1) for line in lock if "==" in line and not line.startswith("#"))


@pytest.mark.parametrize("name", sorted(PEERS))
def test_every_peer_declares_pins_and_writes_a_server(name: str, tmp_path: Path) -> None:
    peer = PEERS[name]
    framework = peer.requirements[0]
    assert re.fullmatch(r"[a-z-]+==[0-9][0-9.]*", framework), "the framework itself is pinned exactly"
    assert f"onnxruntime=={serve_pins()['onnxruntime']}" in peer.requirements, "Candor's ONNX Runtime"
    assert peer.kinds and set(peer.kinds) <= set(KINDS)
    assert all((path is None) == (kind == GRPC) for kind, path in peer.paths.items())
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    launch = peer.write(tmp_path, model_dir(), Ports(1, 2, 3), venv)
    assert launch.argv and (tmp_path / "peer_model.py").exists()
    for script in tmp_path.glob("*.py"):
        py_compile.compile(str(script), doraise=True)
    assert MODEL in {p.name for p in (REPO / "models").iterdir()}
