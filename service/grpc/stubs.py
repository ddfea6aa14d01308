"""The gRPC stubs: generated from the committed ``proto/open_inference_grpc.proto``, never committed.

``python -m service.grpc.stubs`` runs grpcio-tools' protoc into ``service/grpc/generated/`` (git
ignores it): ``make serve`` / ``make test`` and the image's builder stage run it, so the runtime
needs grpcio and protobuf only, not grpcio-tools. ``load()`` imports the generated modules; when
they are missing or were generated from another .proto (a ``PROTO_SHA256`` stamp says which), it
generates them first where grpcio-tools is installed (a development checkout), and otherwise stops
with an error naming the command.

The messages live in a descriptor pool of their own, not protobuf's default pool: tritonclient's
``grpc_service.proto`` defines the same ``inference.*`` symbols, and two files defining one symbol
cannot share a pool (a process may import both, as the tests do).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from service.errors import ServiceError

HERE = Path(__file__).resolve().parent
PROTO = HERE / "proto" / "open_inference_grpc.proto"
PACKAGE = "service.grpc.generated"
GENERATED = HERE / "generated"
STAMP = GENERATED / "PROTO_SHA256"
MODULE = "open_inference_grpc"
# protoc writes every generated file into protobuf's default pool; the stubs get a pool of their own
DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
PRIVATE_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


class Stubs(NamedTuple):
    """The generated message module (``pb2``) and service module (``pb2_grpc``)."""

    pb2: ModuleType
    pb2_grpc: ModuleType


def proto_digest() -> str:
    """sha256 of the committed .proto: the stamp that says which file the stubs came from."""
    return hashlib.sha256(PROTO.read_bytes()).hexdigest()


def up_to_date() -> bool:
    """Whether the generated modules exist and came from the committed .proto."""
    return STAMP.is_file() and STAMP.read_text().strip() == proto_digest()


def generate() -> None:
    """Run protoc (grpcio-tools) on the .proto into ``service/grpc/generated/``. The proto is mapped to
    ``service/grpc/generated/open_inference_grpc.proto`` so that the service module imports the
    message module by its package path."""
    from grpc_tools import protoc  # build-time only: the serving image does not install it

    root = HERE.parent.parent
    GENERATED.mkdir(exist_ok=True)
    args = [
        "protoc",
        f"-I{PACKAGE.replace('.', '/')}={PROTO.parent}",
        f"--python_out={root}",
        f"--grpc_python_out={root}",
        f"{PACKAGE.replace('.', '/')}/{PROTO.name}",
    ]
    if protoc.main(args) != 0:
        raise ServiceError(f"protoc failed on {PROTO}")
    pb2 = GENERATED / f"{MODULE}_pb2.py"
    source = pb2.read_text()
    if source.count(DEFAULT_POOL) != 1:
        raise ServiceError(f"{pb2}: expected one '{DEFAULT_POOL}' in protoc's output")
    pb2.write_text(source.replace(DEFAULT_POOL, PRIVATE_POOL))
    (GENERATED / "__init__.py").write_text(f'"""Generated from {PROTO.name} by service.grpc.stubs; not committed."""\n')
    STAMP.write_text(proto_digest() + "\n")


def load() -> Stubs:
    """The generated modules, generating them first when missing or stale and grpcio-tools is here."""
    if not up_to_date():
        try:
            generate()
        except ImportError:
            raise ServiceError(
                f"the gRPC stubs in {GENERATED} are missing or stale and grpcio-tools is not installed: "
                "run `python -m service.grpc.stubs` where it is (make serve and the image build do)"
            ) from None
        importlib.invalidate_caches()
    return Stubs(
        importlib.import_module(f"{PACKAGE}.{MODULE}_pb2"), importlib.import_module(f"{PACKAGE}.{MODULE}_pb2_grpc")
    )


def main() -> int:
    """``python -m service.grpc.stubs``: (re)generate the stubs."""
    generate()
    print(f"generated {GENERATED.relative_to(HERE.parent.parent)} from {PROTO.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
