"""``POST /v1/feedback``: ground-truth labels for earlier predictions, joined by prediction_id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.api.body import read_limited_body
from service.api.deps import MonitoringDep, SettingsDep
from service.api.openapi import error_responses, inline_schema
from service.monitor import FeedbackResult
from service.monitor.feedback import FeedbackRequest, parse_feedback

router = APIRouter(tags=["monitoring"])


FEEDBACK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": inline_schema(FeedbackRequest),
                "example": {
                    "labels": [
                        {"prediction_id": "3f2a9c0e5b7d4e1f8a6b2c4d9e0f1a2b", "label": "Coat"},
                        {"prediction_id": "9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "label": 4},
                    ]
                },
            }
        },
    }
}

ERRORS = error_responses(400, 408, 413, 503)  # 400 names the field, e.g. labels[3].label


@router.post("/v1/feedback", response_model=FeedbackResult, openapi_extra=FEEDBACK_BODY, responses=ERRORS)
async def feedback(request: Request, settings: SettingsDep, monitoring: MonitoringDep) -> FeedbackResult:
    """Join true labels (class name or index) to predictions. Idempotent: a label for a prediction
    that already has one counts as `duplicate` and changes nothing; `unknown` ids were never
    stored (or were evicted), `expired` ones are older than the retention."""
    body = await read_limited_body(request, settings.max_body_bytes, settings.body_timeout_s)
    labels = parse_feedback(body, settings.max_feedback_labels)
    return await monitoring.feedback.record(labels)
