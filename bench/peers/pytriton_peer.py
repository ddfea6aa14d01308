"""PyTriton 0.7.0 (NVIDIA): the real Triton Inference Server front end (HTTP and gRPC, C++) with
the model's Python function bound through PyTriton's Python backend stub.

Configuration chosen: Triton's dynamic batcher with ``max_batch_size=8`` and no queue delay (the
batching Candor does too: the most instances per ONNX Runtime call, no wait), one model instance,
metrics off, log verbosity 0, HTTP and gRPC on 127.0.0.1.
Protocols: V2 JSON, V2 binary tensor extension, gRPC.
Workaround: the Python backend stub links ``libpython3.11.so.1.0`` from the loader's path, which
is the system's (3.11.2), not the interpreter the venv was made from; ``LD_LIBRARY_PATH`` points
at that interpreter's own lib/ (read from the venv's pyvenv.cfg).
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.base import GRPC, MODEL, V2_BINARY, V2_JSON, Launch, Peer, Ports, copy_model_module

REQUIREMENTS = ("nvidia-pytriton==0.7.0", "onnxruntime==1.32.0")

SERVER = """
import os
import sys

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from peer_model import PeerModel

model = PeerModel(os.environ["PEER_MODEL_DIR"], threads=1)


@batch
def infer(images):
    return {"probabilities": model.predict(images)}


if __name__ == "__main__":
    http, grpc, metrics = (int(p) for p in sys.argv[1:4])
    config = TritonConfig(
        http_address="127.0.0.1", http_port=http, grpc_address="127.0.0.1", grpc_port=grpc,
        metrics_port=metrics, allow_metrics=False, log_verbose=0,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=os.environ["PEER_MODEL_NAME"],
            infer_func=infer,
            inputs=[Tensor(name="images", dtype=np.uint8, shape=(1, 28, 28))],
            outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(10,))],
            config=ModelConfig(max_batch_size=8, batcher=DynamicBatcher(max_queue_delay_microseconds=0)),
            strict=False,
        )
        triton.serve()
"""


def base_lib(venv: Path) -> Path:
    """lib/ of the interpreter ``venv`` was made from (pyvenv.cfg's ``home`` is its bin/)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).parent / "lib"
    raise RuntimeError(f"no home in {venv / 'pyvenv.cfg'}")


def write(directory: Path, model_dir: Path, ports: Ports, venv: Path) -> Launch:
    copy_model_module(directory)
    (directory / "server.py").write_text(SERVER)
    return Launch(
        ["python", "server.py", str(ports.http), str(ports.grpc), str(ports.extra)],
        env={"LD_LIBRARY_PATH": str(base_lib(venv)), "PYTHONPATH": str(directory)},
    )


PEER = Peer(
    name="pytriton",
    requirements=REQUIREMENTS,
    paths={V2_JSON: f"/v2/models/{MODEL}/infer", V2_BINARY: f"/v2/models/{MODEL}/infer", GRPC: None},
    ready_path=f"/v2/models/{MODEL}/ready",
    write=write,
    notes="LD_LIBRARY_PATH at the venv's interpreter's lib/ (the stub links the system libpython otherwise)",
)
