"""KServe 0.21 (the Python model server, ``kserve.ModelServer``): a ``kserve.Model`` answering V1
(``{"instances": [...]}`` -> ``{"predictions": [[probabilities]]}``) and V2 (``InferRequest`` ->
``InferResponse``, honouring requested outputs and the binary extension), REST and gRPC.

Configuration chosen: one uvicorn worker (``--workers 1``), uvloop (``--event-loop uvloop``; httptools
comes with it), latency logging off, KServe's logging setup off (no access log lines), a sync
``predict`` (called inline: for a model this small a thread hop costs more than the inference).
Its Prometheus histograms stay on: they cannot be turned off.
Protocols: V1 JSON, V2 JSON, V2 binary tensor extension, gRPC.
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.base import GRPC, MODEL, V1_JSON, V2_BINARY, V2_JSON, Launch, Peer, Ports, copy_model_module

REQUIREMENTS = ("kserve==0.21.0", "onnxruntime==1.32.0")

SERVER = """
import os

import kserve
from kserve import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import generate_uuid

from peer_model import PeerModel


class PeerKServe(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.model = PeerModel(os.environ["PEER_MODEL_DIR"], threads=1)
        self.ready = True

    def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            probabilities = self.model.predict(payload.inputs[0].as_numpy())
            output = InferOutput("probabilities", list(probabilities.shape), "FP32")
            output.set_data_from_numpy(probabilities, binary_data=bool(payload.from_grpc or payload.use_binary_outputs))
            return InferResponse(
                response_id=payload.id or generate_uuid(),
                model_name=self.name,
                infer_outputs=[output],
                use_binary_outputs=payload.use_binary_outputs,
                requested_outputs=payload.request_outputs,
            )
        return {"predictions": self.model.predict(payload["instances"]).tolist()}


if __name__ == "__main__":
    kserve.ModelServer().start([PeerKServe(os.environ["PEER_MODEL_NAME"])])
"""


def write(directory: Path, model_dir: Path, ports: Ports, venv: Path) -> Launch:
    copy_model_module(directory)
    (directory / "server.py").write_text(SERVER)
    flags = ["--workers", "1", "--event-loop", "uvloop", "--enable_latency_logging", "false"]
    return Launch(
        [
            "python",
            "server.py",
            "--http_port",
            str(ports.http),
            "--grpc_port",
            str(ports.grpc),
            *flags,
            "--configure_logging",
            "false",
        ],
    )


PEER = Peer(
    name="kserve",
    requirements=REQUIREMENTS,
    paths={
        V1_JSON: f"/v1/models/{MODEL}:predict",
        V2_JSON: f"/v2/models/{MODEL}/infer",
        V2_BINARY: f"/v2/models/{MODEL}/infer",
        GRPC: None,
    },
    ready_path=f"/v2/models/{MODEL}/ready",
    write=write,
)
