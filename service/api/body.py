"""Reading and decoding request bodies: size limit first, orjson for speed, field-naming errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from fastapi import Request
from numpy.typing import NDArray
from starlette.requests import ClientDisconnect

from service.errors import BadRequest, BodyTimeout, PayloadTooLarge

NUMBER_TYPES = frozenset({int, float})
JSON_TYPES = {str: "a string", bool: "a boolean", type(None): "null", dict: "an object"}


async def read_limited_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``limit`` bytes (header or stream),
    and with 408 (BodyTimeout) when it has not fully arrived ``timeout_s`` seconds from now."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes", field="body")
    deadline = Deadline(timeout_s)  # one timer handle: a third of asyncio.timeout's cost per request
    try:
        return await receive_body(request, limit)
    except asyncio.CancelledError:
        if not deadline.passed():
            raise
        raise BodyTimeout(f"body did not arrive within {timeout_s:g} s", field="body") from None
    finally:
        deadline.cancel()


class Deadline:
    """Cancels the current task ``timeout_s`` seconds from now unless cancelled first."""

    __slots__ = ("_expired", "_task", "_timer")

    def __init__(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._expired = False
        self._timer = loop.call_at(loop.time() + timeout_s, self._expire)

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()

    def passed(self) -> bool:
        """True when this deadline cancelled the task, and nothing else did (taking its cancel back)."""
        return self._expired and self._task is not None and self._task.uncancel() == 0

    def cancel(self) -> None:
        """The work finished in time: the timer will not fire."""
        self._timer.cancel()


async def receive_body(request: Request, limit: int) -> bytes:
    """Read the ASGI body messages up to ``limit`` bytes; ClientDisconnect if the client leaves.

    Reads the ASGI messages directly (``request.stream()`` is an async generator, which the event
    loop registers in a WeakSet on every request: 6% of the loop's time under load)."""
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object; NaN / Infinity literals are reported by name (orjson rejects them)."""
    if not body:
        raise BadRequest("request body is empty; expected a JSON object", field="body")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        value = _parse_lenient(body, exc)
    if not isinstance(value, dict):
        raise BadRequest(f"expected a JSON object, got {type(value).__name__}", field="body")
    return value


def _parse_lenient(body: bytes, original: Exception) -> Any:
    """Re-parse with the stdlib (which accepts NaN/Infinity) only to name non-finite values later.
    Too deep a nesting (RecursionError) or too long an integer (ValueError) is a 400 like any
    other invalid JSON."""
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise BadRequest("body is not valid JSON: nested too deeply", field="body") from exc
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an int past int_max_str_digits
        raise BadRequest(f"body is not valid JSON: {original}", field="body") from original


def may_hold_booleans(body: bytes) -> bool:
    """False when no JSON true / false literal can be in the body (a byte search, fast)."""
    return b"true" in body or b"false" in body


def numeric_array(value: Any, field: str, max_items: int, booleans: bool = True) -> NDArray[np.float64]:
    """A non-empty rectangular numeric array of at most ``max_items`` rows (JSON numbers only).
    ``booleans``: whether true / false may be among the values (see ``may_hold_booleans``)."""
    if not isinstance(value, list):
        raise BadRequest(f"must be a list of instances, got {type(value).__name__}", field=field)
    if not value:
        raise BadRequest("must contain at least one instance", field=field)
    if len(value) > max_items:
        raise BadRequest(f"{len(value)} instances exceed the limit of {max_items} per request", field=field)
    return numbers_array(value, field, booleans)


def numbers_array(value: list[Any], field: str, booleans: bool = True) -> NDArray[np.float64]:
    """Equally shaped nested lists of JSON numbers as float64; strings, booleans, null and
    integers beyond float64 are refused, naming the first such element."""
    try:
        array = np.asarray(value)  # numpy's own type discovery: numbers give kind i, u or f
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(
            f"instances must be equally shaped nested lists of numbers ({str(exc).splitlines()[0]})", field=field
        ) from exc
    if array.dtype.kind not in "iuf" or booleans:  # bools mixed with numbers become numbers
        reject_non_numbers(value, field)
    if array.dtype.kind not in "iuf":  # only integers past 64 bits are left to make an object array
        raise BadRequest("holds an integer beyond the range of a 64-bit number", field=field)
    return array.astype(np.float64, copy=False)


def reject_non_numbers(value: list[Any], field: str) -> None:
    """BadRequest naming the first element of nested lists that is not a JSON number (a bool is
    not one here). Iterative, so any depth; each row of numbers costs one C-level pass."""
    stack: list[tuple[str, Iterator[tuple[int, Any]]]] = [(field, enumerate(value))]
    while stack:
        path, items = stack[-1]
        for i, item in items:
            if type(item) in NUMBER_TYPES:
                continue
            if not isinstance(item, list):
                raise BadRequest(
                    f"must be a number, got {JSON_TYPES.get(type(item), 'an object')}", field=f"{path}[{i}]"
                )
            if not set(map(type, item)) <= NUMBER_TYPES:
                stack.append((f"{path}[{i}]", enumerate(item)))
                break
        else:
            stack.pop()
