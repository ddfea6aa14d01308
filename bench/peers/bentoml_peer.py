"""BentoML 1.4.40: a ``@bentoml.service`` with one sync ``@bentoml.api`` taking Candor's V1 body
(``{"instances": [...]}``) and answering ``{"predictions": [[probabilities]]}``.

Configuration chosen: ``workers=1`` (one worker process under BentoML's supervisor), no adaptive
batching (``batchable`` off: its dispatcher adds a queue for one-image requests), the API typed as
plain ``list`` (least validation), tracing and metrics left as shipped (they cannot be turned off
per service in 1.4), ``bentoml serve`` on 127.0.0.1.
Protocols: HTTP JSON only (its own route, /predict; BentoML 1.4 has no gRPC).
Stopping: the worker leaves the server's process group, so the driver stops the tree by parent pid.
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.base import V1_JSON, Launch, Peer, Ports, copy_model_module

REQUIREMENTS = ("bentoml==1.4.40", "onnxruntime==1.32.0")

SERVICE = """
import os

import bentoml

from peer_model import PeerModel


@bentoml.service(workers=1)
class Peer:
    def __init__(self) -> None:
        self.model = PeerModel(os.environ["PEER_MODEL_DIR"], threads=1)

    @bentoml.api
    def predict(self, instances: list) -> dict:
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
