"""The gRPC server's life: started in the app's lifespan on the app's event loop, stopped before the
repository drains, so gRPC and HTTP share the engines, their batchers and the monitor's recorder."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from service.errors import ServiceError
from service.grpc.servicer import InferenceServicer
from service.grpc.stubs import load
from service.inference.repository import Repository
from service.settings import Settings

log = logging.getLogger("service.grpc")


def build_server(settings: Settings, repository: Repository, version: str, reuseport: bool = False) -> grpc.aio.Server:
    """A grpc.aio server with the servicer on settings.host:settings.grpc_port; messages up to
    ``max_body_bytes`` (larger ones: RESOURCE_EXHAUSTED, from gRPC itself). ``reuseport``: the
    port is shared with the other workers of ``candor serve --workers N`` (SO_REUSEPORT); else a
    port in use is an error."""
    stubs = load()
    limit = settings.max_body_bytes
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", int(reuseport))],
    )
    servicer = InferenceServicer(stubs.pb2, repository, settings, version)
    stubs.pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    address = f"{settings.host}:{settings.grpc_port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ServiceError(f"cannot listen on {address}: {exc}", field="CANDOR_GRPC_PORT") from exc
    return server


@asynccontextmanager
async def serving_grpc(
    settings: Settings, repository: Repository, version: str, reuseport: bool = False
) -> AsyncIterator[None]:
    """Serve gRPC while the block runs (nothing when ``grpc_port`` is unset); on exit, stop taking
    calls and let those in flight finish within ``shutdown_timeout_s``."""
    if settings.grpc_port is None:
        yield
        return
    server = build_server(settings, repository, version, reuseport)
    await server.start()
    log.info("gRPC inference.GRPCInferenceService on %s:%d", settings.host, settings.grpc_port)
    try:
        yield
    finally:
        await server.stop(grace=settings.shutdown_timeout_s)
