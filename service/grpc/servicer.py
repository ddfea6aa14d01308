"""``inference.GRPCInferenceService``: the HTTP V2 routes' behaviour over gRPC, on the same repository.

Every method answers from the shared ``Repository``; ModelInfer goes through the engine's batcher
(``Engine.infer``), which records each served row with the monitor, so its prediction ids are the
ones ``POST /v1/feedback`` accepts. They come back as the ``prediction_id`` output and, joined by
commas in row order, as the response parameter ``prediction_ids``. With ``auth_inference`` the call
needs ``authorization: Bearer <token>`` metadata (service.api.security.check_bearer).

Errors keep the HTTP contract's meaning: a ServiceError (a MonitorError is one) aborts the call with the
status code of its HTTP status (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 404 NOT_FOUND, 413
RESOURCE_EXHAUSTED, 503 UNAVAILABLE...) and its message, which names the field.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from service.api.security import check_bearer
from service.api.v2.schemas import model_metadata_of
from service.api.v2.tensors import output_tensors
from service.errors import ModelNotFound, ServiceError
from service.grpc.tensors import input_array, outputs_asked, raw_contents, shape_of
from service.inference.repository import Repository
from service.settings import Settings

EXTENSIONS = ["parameters"]
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
Response = TypeVar("Response")


def status_code(exc: ServiceError) -> grpc.StatusCode:
    """The gRPC status of an error that carries an HTTP status (INTERNAL for a server fault)."""
    return STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL)


async def answered(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[Response]]) -> Response:
    """Run one method; a ServiceError (monitor errors included) aborts the call with its status and message."""
    try:
        return await call()
    except ServiceError as exc:
        await context.abort(status_code(exc), str(exc))
        raise  # abort raises; never reached


class InferenceServicer:
    """The six RPCs of the Open Inference Protocol over the app's repository and settings."""

    def __init__(self, pb2: Any, repository: Repository, settings: Settings, version: str) -> None:
        self.pb2 = pb2
        self.repository = repository
        self.settings = settings
        self.version = version

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """The process answers."""
        return self.pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Ready when at least one model is loaded (as GET /v2/health/ready)."""
        return self.pb2.ServerReadyResponse(ready=len(self.repository) > 0)

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """A loaded model (version) is ready; an unknown one is not (ready=false, as Triton answers)."""
        try:
            self.repository.get(request.name, request.version or None)
        except ModelNotFound:
            return self.pb2.ModelReadyResponse(ready=False)
        return self.pb2.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Server name, version and extensions."""
        return self.pb2.ServerMetadataResponse(name="candor", version=self.version, extensions=EXTENSIONS)

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """GET /v2/models/{m}[/versions/{v}]'s metadata; its parameters become ``properties``
        (strings as they are, other values as JSON)."""

        async def call() -> Any:
            engine = self.repository.get(request.name, request.version or None)
            return self.metadata_response(model_metadata_of(engine, self.repository))

        return await answered(context, call)

    def metadata_response(self, meta: Any) -> Any:
        """The protobuf form of service.api.v2_schemas.ModelMetadata."""
        tensor = self.pb2.ModelMetadataResponse.TensorMetadata
        return self.pb2.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
            properties={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.parameters.items()},
        )

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Calibrated probabilities, label, confidence and prediction_id for each instance."""
        return await answered(context, lambda: self.infer(request, context))

    async def infer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Auth, parse, the batcher (which records the rows), the requested outputs, raw."""
        self.check_token(context)
        engine = self.repository.get(request.model_name, request.model_version or None)
        m = engine.manifest
        with engine.arriving():
            raw = input_array(request, m.input.name, self.settings.max_instances)
            outputs = outputs_asked(request)
            batch = engine.preprocess(raw, "inputs[0]")
        served = await engine.infer(batch, self.deadline(context))
        tensors = output_tensors(served.probs, m.classes, served.ids)
        response = self.pb2.ModelInferResponse(model_name=m.name, model_version=m.version, id=request.id)
        response.parameters["prediction_ids"].string_param = ",".join(served.ids)
        for out in outputs:
            datatype, values = tensors[out.name]
            response.outputs.add(name=out.name, datatype=datatype, shape=shape_of(values))
            response.raw_output_contents.append(raw_contents(datatype, values))
        return response

    def deadline(self, context: grpc.aio.ServicerContext) -> float:
        """Loop time by which to answer: the client's gRPC deadline, at most ``request_timeout_s``."""
        remaining = context.time_remaining()
        limit = (
            self.settings.request_timeout_s if remaining is None else min(remaining, self.settings.request_timeout_s)
        )
        return asyncio.get_running_loop().time() + limit

    def check_token(self, context: grpc.aio.ServicerContext) -> None:
        """With ``auth_inference``: the ``authorization: Bearer <token>`` metadata (UNAUTHENTICATED)."""
        if not self.settings.auth_inference:
            return
        header = dict(context.invocation_metadata() or ()).get("authorization", "")
        scheme, _, token = str(header).partition(" ")
        check_bearer(self.settings, token if scheme.lower() == "bearer" and token else None)
