"""Feedback labels checked against the classes of the model version that made each prediction.

A label is a class name or a 0-based class index. The stored prediction says which (model,
version) made it; the monitor knows each version's class names (Monitor.add_model). A bad label is
a 400 naming ``labels[i].label``; a label of an unknown prediction is not checked (it will be
counted ``unknown``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from service.errors import BadRequest
from service.monitor.stores.store import PredictionRecord

ModelKey = tuple[str, str]
Classes = Mapping[ModelKey, Mapping[str, int]]  # (model, version) -> class name -> index
Label = str | int  # a class name or a 0-based class index
SHOWN_CLASSES = 10  # class names listed in an error message


def label_pairs(
    labels: Sequence[tuple[str, Label]], records: Mapping[str, PredictionRecord], classes: Classes
) -> list[tuple[str, int]]:
    """(prediction_id, class index) for every (prediction_id, label); BadRequest names the first
    bad one as ``labels[i].label``."""
    return [
        (pid, label_index(label, records.get(pid), classes, f"labels[{i}].label"))
        for i, (pid, label) in enumerate(labels)
    ]


def label_index(label: Label, record: PredictionRecord | None, classes: Classes, field: str) -> int:
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


def _index_in(label: Label, names: Mapping[str, int], record: PredictionRecord, field: str) -> int:
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
