"""LitServe 0.2.19 (Lightning AI): a ``LitAPI`` whose request is Candor's V1 body
(``{"instances": [...]}``) and whose answer is ``{"predictions": [[probabilities]]}``.

Configuration chosen: one API server and one inference worker (``workers_per_device=1``,
``num_api_servers=1``, CPU), ``max_batch_size=1`` (LitServe batches by waiting ``batch_timeout``,
and busy-spins at ``batch_timeout=0``, taking a core from the server it shares the host with),
``fast_queue=True`` (ZeroMQ between the API server and the worker, its recommended fast path),
no request tracking, no client file, uvicorn on uvloop with httptools, log level warning.
Protocols: HTTP JSON only (its own route, /predict).
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.base import V1_JSON, Launch, Peer, Ports, copy_model_module

REQUIREMENTS = ("litserve==0.2.19", "onnxruntime==1.32.0", "uvloop==0.23.0", "httptools==0.9.0")

SERVER = """
import os
import sys

import litserve as ls

from peer_model import PeerModel


class PeerAPI(ls.LitAPI):
    def setup(self, device):
        self.model = PeerModel(os.environ["PEER_MODEL_DIR"], threads=1)

    def decode_request(self, request):
        return request["instances"]

    def predict(self, instances):
        return self.model.predict(instances)

    def encode_response(self, probabilities):
        return {"predictions": probabilities.tolist()}


if __name__ == "__main__":
    server = ls.LitServer(
        PeerAPI(max_batch_size=1), accelerator="cpu", workers_per_device=1, timeout=False, fast_queue=True
    )
    server.run(
        port=int(sys.argv[1]), host="127.0.0.1", num_api_servers=1, generate_client_file=False, log_level="warning"
    )
"""


def write(directory: Path, model_dir: Path, ports: Ports, venv: Path) -> Launch:
    copy_model_module(directory)
    (directory / "server.py").write_text(SERVER)
    return Launch(["python", "server.py", str(ports.http)])


PEER = Peer(
    name="litserve",
    requirements=REQUIREMENTS,
    paths={V1_JSON: "/predict"},
    ready_path="/health",
    write=write,
    notes="max_batch_size=1: with batching, batch_timeout=0 busy-spins",
)
