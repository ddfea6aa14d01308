"""Open Inference Protocol (KServe V2): health, server and model metadata, readiness, infer.

``infer`` parses the raw body (tritonclient sends no Content-Type) as JSON or with the binary tensor
data extension; see service/api/v2/tensors.py for the wire format.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.api.body import may_hold_booleans, read_limited_body
from service.api.deps import RepositoryDep, repository_of, settings_of
from service.api.openapi import DocumentedRoute, error_responses, operation
from service.api.security import check_inference_token
from service.api.v2.schemas import (
    BINARY_OUTPUTS,
    INFER_BODY,
    INFER_ERRORS,
    InferResponse,
    ModelMetadata,
    ModelReady,
    ServerMetadata,
    model_metadata_of,
)
from service.api.v2.tensors import (
    HEADER_LENGTH,
    encode_response,
    output_tensors,
    parse_infer_request,
    split_body,
)
from service.errors import BadRequest

router = APIRouter(tags=["v2"])
EXTENSIONS = ["binary_tensor_data", "model_repository", "parameters"]
NOT_FOUND = error_responses(404)


@router.get("/v2/health/live")
async def live() -> dict[str, bool]:
    """The process answers."""
    return {"live": True}


@router.get(
    "/v2/health/ready",
    responses={503: {"description": "no model loaded", "content": {"application/json": {"example": {"ready": False}}}}},
)
async def ready(repository: RepositoryDep) -> JSONResponse:
    """200 ``{"ready": true}`` when at least one model is loaded, else 503 ``{"ready": false}``
    (probes that read only the status code, as Kubernetes' do, see the difference)."""
    loaded = len(repository) > 0
    return JSONResponse({"ready": loaded}, status_code=200 if loaded else 503)


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata(request: Request) -> ServerMetadata:
    """Server name, version and the protocol extensions supported."""
    return ServerMetadata(name="candor", version=request.app.version, extensions=EXTENSIONS)


@router.get("/v2/models/{model_name}", response_model=ModelMetadata, responses=NOT_FOUND)
async def model_metadata(model_name: str, repository: RepositoryDep) -> ModelMetadata:
    """Metadata of the default version; ``parameters`` carry the calibration map, the reference
    ECE and the execution provider."""
    return model_metadata_of(repository.get(model_name), repository)


@router.get("/v2/models/{model_name}/versions/{model_version}", response_model=ModelMetadata, responses=NOT_FOUND)
async def version_metadata(model_name: str, model_version: str, repository: RepositoryDep) -> ModelMetadata:
    """Metadata of one version."""
    return model_metadata_of(repository.get(model_name, model_version), repository)


@router.get("/v2/models/{model_name}/ready", response_model=ModelReady, responses=NOT_FOUND)
async def model_ready(model_name: str, repository: RepositoryDep) -> ModelReady:
    """200 when the model is loaded (a loaded model is ready), 404 otherwise."""
    engine = repository.get(model_name)
    return ModelReady(name=engine.manifest.name, version=engine.manifest.version, ready=True)


@router.get("/v2/models/{model_name}/versions/{model_version}/ready", response_model=ModelReady, responses=NOT_FOUND)
async def version_ready(model_name: str, model_version: str, repository: RepositoryDep) -> ModelReady:
    """200 when this version is loaded, 404 otherwise."""
    engine = repository.get(model_name, model_version)
    return ModelReady(name=engine.manifest.name, version=engine.manifest.version, ready=True)


async def infer(request: Request) -> Response:
    """Calibrated probabilities, label, confidence and prediction_id for each instance."""
    return await answer_infer(request, None)


async def version_infer(request: Request) -> Response:
    """``infer`` on one version."""
    return await answer_infer(request, request.path_params["model_version"])


async def answer_infer(request: Request, version: str | None) -> Response:
    """Read and parse the body, run it through the batcher (which records the predictions durably,
    for the label join), encode the requested outputs."""
    settings = settings_of(request)
    check_inference_token(request, settings)
    engine = repository_of(request).get(request.path_params["model_name"], version)
    if request.headers.get("content-encoding", "identity") != "identity":
        raise BadRequest("compressed request bodies are not supported", field="Content-Encoding")
    m = engine.manifest
    with engine.arriving():
        body = await read_limited_body(request, settings.max_body_bytes, settings.body_timeout_s)
        header, binary = split_body(body, request.headers.get(HEADER_LENGTH))
        parsed = parse_infer_request(header, binary, m.input.name, settings.max_instances, may_hold_booleans(body))
        batch = engine.preprocess(parsed.input, "inputs[0].data")
    served = await engine.infer(batch)
    meta: dict[str, Any] = {"model_name": m.name, "model_version": m.version}
    if parsed.id is not None:
        meta["id"] = parsed.id
    content, header_length = encode_response(meta, output_tensors(served.probs, m.classes, served.ids), parsed.outputs)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(header_length)}
    )


INFER_PATHS = {
    infer: "/v2/models/{model_name}/infer",
    version_infer: "/v2/models/{model_name}/versions/{model_version}/infer",
}
ROUTES = [
    DocumentedRoute(
        path,
        endpoint,
        method="POST",
        operation=operation(
            endpoint,
            path,
            tags=["v2"],
            body=INFER_BODY,
            response=InferResponse,
            errors=INFER_ERRORS,
            secured=True,
            extra_200=BINARY_OUTPUTS,
        ),
    )
    for endpoint, path in INFER_PATHS.items()
]
