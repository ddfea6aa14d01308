"""Feedback: the body of POST /v1/feedback parsed, then checked and joined by the monitor.

A label is a class name or a 0-based class index of the model version that made the prediction
(the store knows which). The monitor checks every label of a request before any is recorded
(Monitor.resolve_feedback_batches, service.monitor.labels), so a bad one (``labels[i].label`` in
the 400) leaves the store untouched. Unknown prediction ids are not an error: they are counted as
``unknown``. Concurrent requests are joined in one store call off the event loop
(service.monitor.group_commit), each answered with its own counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, Field, PlainValidator, WithJsonSchema

from service.errors import BadRequest
from service.monitor import FeedbackResult, Monitor
from service.monitor.group_commit import GroupCommit
from service.monitor.labels import Label

MAX_CLASS_INDEX = 2**31 - 1  # no model has more classes; every store holds it (SQLite: 2**63 - 1)


def class_name_or_index(value: Any) -> str | int:
    """A JSON string (class name) or a JSON integer in [0, MAX_CLASS_INDEX] (class index); an
    integer-valued number such as 3.0 is that integer (JSON Schema's ``integer``); nothing else."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_CLASS_INDEX:
            raise ValueError(f"class index must be between 0 and {MAX_CLASS_INDEX}, got {value}")
        return value
    kind = "a non-integer number" if isinstance(value, float) else type(value).__name__
    raise ValueError(f"must be a class name (string) or a class index (integer), got {kind}")


LabelField = Annotated[
    Label,
    PlainValidator(class_name_or_index),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0, "maximum": MAX_CLASS_INDEX}],
            "description": "the true class: its name, or its 0-based index in the model's classes",
        }
    ),
]


class FeedbackLabel(BaseModel):
    """The true class of one served prediction."""

    prediction_id: str = Field(
        min_length=1, max_length=128, description="the prediction_id returned with the prediction"
    )
    label: LabelField


class FeedbackRequest(BaseModel):
    """Labels for earlier predictions, of any model, in any order."""

    labels: list[FeedbackLabel] = Field(min_length=1)


def parse_feedback(body: bytes, max_labels: int) -> list[FeedbackLabel]:
    """Validate the JSON body; the first problem is a 400 naming its field, e.g. labels[3].label."""
    if not body:
        raise BadRequest("request body is empty; expected a JSON object", field="body")
    try:
        request = FeedbackRequest.model_validate_json(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise BadRequest(_message(first), field=field_path(first["loc"])) from exc
    if len(request.labels) > max_labels:
        raise BadRequest(f"{len(request.labels)} labels exceed the limit of {max_labels} per request", field="labels")
    return request.labels


def _message(error: Any) -> str:
    """pydantic's message without its 'Value error, ' prefix."""
    return str(error["msg"]).removeprefix("Value error, ")


def field_path(loc: Sequence[int | str]) -> str:
    """('labels', 3, 'label') -> 'labels[3].label'; the empty location is the whole body."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


class FeedbackRecorder:
    """Joins each request's labels; concurrent requests share one monitor call (group commit)."""

    def __init__(self, monitor: Monitor) -> None:
        self._commit: GroupCommit[list[tuple[str, Label]], FeedbackResult] = GroupCommit(
            monitor.resolve_feedback_batches
        )

    async def record(self, labels: list[FeedbackLabel]) -> FeedbackResult:
        """The request's counts once its labels are durably joined (BadRequest if one is bad)."""
        return await self._commit.submit([(item.prediction_id, item.label) for item in labels])

    async def drain(self) -> None:
        """Wait for the joins in progress (shutdown)."""
        await self._commit.drain()
