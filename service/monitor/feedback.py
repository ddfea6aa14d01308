"""Feedback: ground-truth labels for served predictions, checked, then joined by the monitor.

A label is a class name or a 0-based class index of the model version that made the prediction
(the store knows which). Every label of a request is checked before any is recorded, so a bad one
(``labels[i].label`` in the 400) leaves the store untouched. Unknown prediction ids are not an
error: they are counted as ``unknown``. Concurrent requests are joined in one store call off the
event loop (service.monitor.group_commit), each answered with its own counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, Field, PlainValidator, WithJsonSchema

from service.errors import BadRequest
from service.monitor import FeedbackResult, Monitor, PredictionRecord
from service.monitor.group_commit import GroupCommit

ModelKey = tuple[str, str]
Classes = Mapping[ModelKey, dict[str, int]]  # (model, version) -> class name -> index
SHOWN_CLASSES = 10  # class names listed in an error message


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


Label = Annotated[
    str | int,
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
    label: Label


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


def label_index(label: str | int, record: PredictionRecord | None, classes: Classes, field: str) -> int:
    """The class index of ``label`` for the model version that made the prediction (an unknown
    prediction keeps any index: it will be counted unknown)."""
    if record is None:
        return label if isinstance(label, int) else 0
    names = classes.get((record.model, record.version))
    if names is None:
        if isinstance(label, int):
            return label  # a version never loaded here: the index cannot be checked
        raise BadRequest(
            f"model '{record.model}' version '{record.version}' is not loaded on "
            "this replica, so its class names are unknown; send the class index",
            field=field,
        )
    return _index_in(label, names, record, field)


def _index_in(label: str | int, names: dict[str, int], record: PredictionRecord, field: str) -> int:
    """Index of a class name (``names`` maps name -> index), or a checked index."""
    where = f"model '{record.model}' version '{record.version}'"
    if isinstance(label, int):
        if label >= len(names):
            raise BadRequest(f"class index {label} is out of range: {where} has {len(names)} classes", field=field)
        return label
    index = names.get(label)
    if index is None:
        shown = ", ".join(list(names)[:SHOWN_CLASSES]) + (", ..." if len(names) > SHOWN_CLASSES else "")
        raise BadRequest(f"'{label}' is not a class of {where} ({shown})", field=field)
    return index


def label_pairs(
    labels: Sequence[FeedbackLabel], records: Mapping[str, PredictionRecord], classes: Classes
) -> list[tuple[str, int]]:
    """(prediction_id, class index) for every label; BadRequest names the first bad one."""
    return [
        (item.prediction_id, label_index(item.label, records.get(item.prediction_id), classes, f"labels[{i}].label"))
        for i, item in enumerate(labels)
    ]


def record_feedback_group(
    monitor: Monitor, classes: Classes, requests: list[list[FeedbackLabel]]
) -> list[FeedbackResult | Exception]:
    """Check each request's labels (a bad label fails its own request only), then join every
    valid request's labels in one store call (blocking: run in the thread pool)."""
    records = monitor.lookup([item.prediction_id for labels in requests for item in labels])
    checked: list[list[tuple[str, int]] | Exception] = []
    for labels in requests:
        try:
            checked.append(label_pairs(labels, records, classes))
        except BadRequest as exc:
            checked.append(exc)
    valid = [pairs for pairs in checked if not isinstance(pairs, Exception)]
    results = iter(monitor.record_feedback_batches(valid))
    return [pairs if isinstance(pairs, Exception) else next(results) for pairs in checked]


class FeedbackRecorder:
    """Joins each request's labels; concurrent requests share one store call (group commit)."""

    def __init__(self, monitor: Monitor, classes: Classes) -> None:
        self._commit: GroupCommit[list[FeedbackLabel], FeedbackResult] = GroupCommit(
            partial(record_feedback_group, monitor, classes)
        )

    async def record(self, labels: list[FeedbackLabel]) -> FeedbackResult:
        """The request's counts once its labels are durably joined (BadRequest if one is bad)."""
        return await self._commit.submit(labels)

    async def drain(self) -> None:
        """Wait for the joins in progress (shutdown)."""
        await self._commit.drain()
