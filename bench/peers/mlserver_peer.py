"""MLServer 1.7.1 (Seldon): a custom runtime (``MLModel``) on the Open Inference Protocol.

Configuration chosen (its fast settings for a model this small): ``parallel_workers: 0``
(inference in the server process; the default of 1 worker sends every request through a second
process), adaptive batching off (its default), ``debug: false`` (no access log),
``metrics_endpoint: null`` (no metrics server), ``gzip_enabled: false``; uvicorn on uvloop with
httptools (added: MLServer depends on uvicorn without its ``standard`` extra).
Protocols: V2 JSON and gRPC; MLServer has no V1 route and no binary tensor extension over HTTP.
Workaround: ``uvloop<0.22`` (with uvloop 0.23 every inference worker dies at start).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.peers.base import GRPC, MODEL, V2_JSON, Launch, Peer, Ports, copy_model_module

REQUIREMENTS = ("mlserver==1.7.1", "uvloop<0.22", "httptools==0.9.0", "onnxruntime==1.32.0")

RUNTIME = """
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from peer_model import PeerModel


class PeerRuntime(MLModel):
    async def load(self) -> bool:
        self._model = PeerModel(self.settings.parameters.uri, threads=1)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        probabilities = self._model.predict(NumpyCodec.decode_input(payload.inputs[0]))
        output = NumpyCodec.encode_output("probabilities", probabilities)
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[output])
"""


def write(directory: Path, model_dir: Path, ports: Ports, venv: Path) -> Launch:
    """runtime.py, settings.json and the model's model-settings.json; `mlserver start .`"""
    copy_model_module(directory)
    (directory / "runtime.py").write_text(RUNTIME)
    settings = {
        "debug": False,
        "parallel_workers": 0,
        "http_port": ports.http,
        "grpc_port": ports.grpc,
        "metrics_port": ports.extra,
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "host": "127.0.0.1",
    }
    (directory / "settings.json").write_text(json.dumps(settings))
    model = {"name": MODEL, "implementation": "runtime.PeerRuntime", "parameters": {"uri": str(model_dir)}}
    (directory / "model-settings.json").write_text(json.dumps(model))
    return Launch(["mlserver", "start", "."], env={"PYTHONPATH": str(directory)})


PEER = Peer(
    name="mlserver",
    requirements=REQUIREMENTS,
    paths={V2_JSON: f"/v2/models/{MODEL}/infer", GRPC: None},
    ready_path=f"/v2/models/{MODEL}/ready",
    write=write,
    notes="uvloop<0.22 (0.23 kills every inference worker at start); httptools added",
)
