"""Simple JSON prediction (KServe V1 style): ``POST /v1/models/{m}:predict``."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from numpy.typing import NDArray
from pydantic import BaseModel

from service.api.body import decode_json_object, numeric_array, read_limited_body
from service.api.deps import RecorderDep, RepositoryDep, SettingsDep
from service.api.openapi import error_responses
from service.engine import Engine
from service.errors import BadRequest
from service.predictions import record_predictions
from service.security import InferenceAuth

router = APIRouter(tags=["predict"])


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


PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["instances"],
            "properties": {"instances": {
                "type": "array", "minItems": 1,
                "description": "images as nested lists of numbers in the model's input range "
                               "(0-255 for the bundled model), each of the model's instance shape",
                "items": {"type": "array"},
            }},
        }}},
    }
}

ERRORS = error_responses(400, 401, 404, 413, 503)


@router.post("/v1/models/{model_name}:predict", response_model=PredictResponse,
             openapi_extra=PREDICT_BODY, responses=ERRORS, dependencies=[InferenceAuth])
async def predict(model_name: str, request: Request, repository: RepositoryDep,
                  settings: SettingsDep, recorder: RecorderDep) -> PredictResponse:
    """Calibrated probabilities for each instance, with a prediction_id to send labels for later."""
    engine = repository.get(model_name)
    with engine.arriving():
        body = decode_json_object(await read_limited_body(request, settings.max_body_bytes))
        if "instances" not in body:
            raise BadRequest("is required (a list of instances)", field="instances")
        raw = numeric_array(body["instances"], "instances", settings.max_instances)
        batch = engine.preprocess(raw, "instances")
    probs = await engine.infer(batch)
    ids = await record_predictions(recorder, engine, probs)  # durable before the response
    return PredictResponse(model_name=engine.manifest.name, model_version=engine.manifest.version,
                           predictions=to_predictions(engine, probs, ids))


def to_predictions(engine: Engine, probs: NDArray[np.float32], ids: list[str]) -> list[Prediction]:
    """Label, confidence, per-class probabilities and the recorded prediction_id per row."""
    classes = engine.manifest.classes
    top = probs.argmax(axis=1)
    return [
        Prediction(label=classes[int(k)], confidence=float(row[k]),
                   probabilities=dict(zip(classes, row.tolist(), strict=True)),
                   prediction_id=pid)
        for row, k, pid in zip(probs, top, ids, strict=True)
    ]
