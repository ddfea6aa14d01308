"""Simple JSON prediction (KServe V1 style): ``POST /v1/models/{m}:predict``.

A plain Starlette route (service.api.openapi.DocumentedRoute): the body is read and parsed with
orjson + numpy, the answer is encoded with orjson; ``PredictResponse`` documents its shape.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from calibration.manifest import Manifest
from service.api.body import decode_json_object, may_hold_booleans, numeric_array, read_limited_body
from service.api.deps import repository_of, settings_of
from service.api.openapi import DocumentedRoute, operation
from service.api.security import check_inference_token
from service.errors import BadRequest
from service.inference.served import Served


class Prediction(BaseModel):
    """One instance's answer: calibrated probabilities by class name."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    prediction_id: str


class PredictResponse(BaseModel):
    """Answer to ``:predict``."""

    model_name: str
    model_version: str
    predictions: list[Prediction]


PREDICT_PATH = "/v1/models/{model_name}:predict"
PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["instances"],
                    "properties": {
                        "instances": {
                            "type": "array",
                            "minItems": 1,
                            "description": "images as nested lists of numbers in the model's input range "
                            "(0-255 for the bundled model), each of the model's instance shape",
                            "items": {"type": "array"},
                        }
                    },
                }
            }
        },
    }
}


async def predict(request: Request) -> Response:
    """Calibrated probabilities for each instance, with a prediction_id to send labels for later."""
    settings = settings_of(request)
    check_inference_token(request, settings)
    engine = repository_of(request).get(request.path_params["model_name"])
    with engine.arriving():
        data = await read_limited_body(request, settings.max_body_bytes, settings.body_timeout_s)
        body = decode_json_object(data)
        if "instances" not in body:
            raise BadRequest("is required (a list of instances)", field="instances")
        raw = numeric_array(body["instances"], "instances", settings.max_instances, may_hold_booleans(data))
        batch = engine.preprocess(raw, "instances")
    served = await engine.infer(batch)  # recorded (durably) before it returns
    return Response(predict_response(engine.manifest, served), media_type="application/json")


def predict_response(manifest: Manifest, served: Served) -> bytes:
    """PredictResponse as JSON: label, confidence, per-class probabilities and prediction_id per row."""
    classes = manifest.classes
    rows: list[list[float]] = served.probs.tolist()
    top: list[int] = served.probs.argmax(axis=1).tolist()
    return orjson.dumps(
        {
            "model_name": manifest.name,
            "model_version": manifest.version,
            "predictions": [
                {
                    "label": classes[k],
                    "confidence": row[k],
                    "probabilities": dict(zip(classes, row, strict=True)),
                    "prediction_id": pid,
                }
                for row, k, pid in zip(rows, top, served.ids, strict=True)
            ],
        }
    )


ROUTES = [
    DocumentedRoute(
        PREDICT_PATH,
        predict,
        method="POST",
        operation=operation(
            predict,
            PREDICT_PATH,
            tags=["predict"],
            body=PREDICT_BODY,
            response=PredictResponse,
            errors=(400, 401, 404, 408, 413, 503),
            secured=True,
        ),
    )
]
