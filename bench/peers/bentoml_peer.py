"""BentoML 1.4.40: a ``@bentoml.service`` with one async ``@bentoml.api`` taking Candor's V1 body
(``{"instances": [...]}``) and answering ``{"predictions": [[probabilities]]}``.

Configuration chosen: ``workers=1`` (one worker process under BentoML's supervisor), an ``async``
API (run on the event loop; a sync one goes through a thread pool), access log and metrics off
(service config ``logging.access`` and ``metrics``), no adaptive batching (``batchable`` off: its
dispatcher adds a queue for one-image requests), the API typed as plain ``list`` (least
validation), tracing as shipped (not sampled), uvloop and httptools added (BentoML depends on
uvicorn without its ``standard`` extra; its worker's uvicorn picks both up when installed),
``bentoml serve`` on 127.0.0.1. Measured here on 2026-12-07 at c=32, the host loaded by other
work: sync API with access log and metrics 86-121 req/s; those off 122-177; async 316 (one 6 s run).
Protocols: HTTP JSON only (its own route, /predict; BentoML 1.4 has no gRPC).
Stopping: the worker leaves the server's process group, so the driver stops the tree by parent pid.
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.base import V1_JSON, Launch, Peer, Ports, copy_model_module

REQUIREMENTS = ("bentoml==1.4.40", "onnxruntime==1.32.0", "uvloop==0.23.0", "httptools==0.9.0")

SERVICE = """
import os

import bentoml

from peer_model import PeerModel


@bentoml.service(workers=1, logging={"access": {"enabled": False}}, metrics={"enabled": False})
class Peer:
    def __init__(self) -> None:
        self.model = PeerModel(os.environ["PEER_MODEL_DIR"], threads=1)

    @bentoml.api
    async def predict(self, instances: list) -> dict:
        return {"predictions": self.model.predict(instances).tolist()}
"""


def write(directory: Path, model_dir: Path, ports: Ports, venv: Path) -> Launch:
    copy_model_module(directory)
    (directory / "service.py").write_text(SERVICE)
    return Launch(
        ["bentoml", "serve", "service:Peer", "--host", "127.0.0.1", "--port", str(ports.http)],
        env={"BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(directory)},
    )


PEER = Peer(
    name="bentoml",
    requirements=REQUIREMENTS,
    paths={V1_JSON: "/predict"},
    ready_path="/readyz",
    write=write,
    notes="its worker leaves the server's process group: stopped by parent pid",
)
