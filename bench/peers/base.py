"""What a peer module declares, and the kinds of request every side is measured with.

A peer is a serving framework installed into its own venv (``requirements``), running a server
script that this module writes into a temp dir (``write``) beside ``peer_model.py``; the driver
starts ``command``, waits for ``ready_path`` to answer 200, and stops the whole process tree.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MODEL = "fashion-mnist-cnn"

# Kinds of request (the same bytes go to Candor and to the peer; Candor's own endpoint for each):
V1_JSON = "json-v1"  # POST /v1/models/{m}:predict {"instances": [[28x28 ints]]}
V2_JSON = "json-v2"  # POST /v2/models/{m}/infer, JSON tensors (UINT8 [1,1,28,28])
V2_BINARY = "binary-v2"  # the same with the binary tensor extension (784 raw bytes in, FP32 out)
GRPC = "grpc"  # inference.GRPCInferenceService/ModelInfer, raw_input_contents
KINDS = (V1_JSON, V2_JSON, V2_BINARY, GRPC)


@dataclass(frozen=True)
class Ports:
    """The ports a peer is told to listen on (it uses what it needs)."""

    http: int
    grpc: int
    extra: int  # metrics or an internal port some servers insist on opening


@dataclass(frozen=True)
class Launch:
    """How to run a written peer: argv (first item relative to the venv's bin/ when it has no slash)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Peer:
    """One peer: pins, protocols, and how to write and start its server.

    ``paths`` maps each kind of request it serves to its HTTP path (``None`` for gRPC, which has
    no path); ``write(directory, model_dir, ports, venv)`` writes the server files and returns how
    to launch them.
    """

    name: str
    requirements: tuple[str, ...]
    paths: dict[str, str | None]
    ready_path: str
    write: Callable[[Path, Path, Ports, Path], Launch]
    notes: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if k in self.paths)


def copy_model_module(directory: Path) -> None:
    """Put peer_model.py beside a peer's server script."""
    shutil.copy(Path(__file__).with_name("peer_model.py"), directory / "peer_model.py")


def candor_path(kind: str, model: str = MODEL) -> str | None:
    """Candor's endpoint for a kind of request (gRPC: None)."""
    infer = f"/v2/models/{model}/infer"
    return {V1_JSON: f"/v1/models/{model}:predict", V2_JSON: infer, V2_BINARY: infer}.get(kind)
