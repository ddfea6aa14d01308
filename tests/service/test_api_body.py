"""Request bodies that arrive too slowly (408) or never (client gone: counted 499, no traceback);
issue 16 items 1 and 7."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from service.api.body import read_limited_body
from service.app import create_app
from service.errors import BodyTimeout
from service.settings import Settings

Message = dict[str, Any]


def receive_of(messages: list[Message], gap_s: float = 0.0) -> Callable[[], Awaitable[Message]]:
    """An ASGI receive handing out ``messages``, ``gap_s`` apart, then waiting forever."""
    queue = list(messages)

    async def receive() -> Message:
        if not queue:
            await asyncio.Event().wait()
        await asyncio.sleep(gap_s)
        return queue.pop(0)

    return receive


def post_scope(path: str, length: int) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]
    return {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 5555), "root_path": ""}  # fmt: skip


def part(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_that_stops_arriving_is_refused_with_408_and_connection_close() -> None:
    request = Request(post_scope("/", 100), receive_of([part(b'{"inst')]))
    with pytest.raises(BodyTimeout) as refused:
        asyncio.run(read_limited_body(request, 1024, timeout_s=0.2))
    assert refused.value.status == 408 and refused.value.field == "body"
    assert refused.value.headers() == {"Connection": "close"}
    assert "0.2 s" in refused.value.body()["error"]


def test_a_body_in_several_parts_within_the_timeout_is_read_whole() -> None:
    parts = [part(b'{"a"'), part(b": 1"), part(b"}", more=False)]
    request = Request(post_scope("/", 8), receive_of(parts, gap_s=0.01))
    assert asyncio.run(read_limited_body(request, 1024, timeout_s=5.0)) == b'{"a": 1}'


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/models/digits-cnn:predict", "/v1/models/{model_name}:predict"),  # answered ahead of FastAPI
        ("/v2/models/digits-cnn/infer", "/v2/models/{model_name}/infer"),
        ("/v1/feedback", "/v1/feedback"),  # through FastAPI's stack
    ],
)
def test_a_client_gone_mid_body_is_counted_as_499_without_an_answer_or_a_traceback(
    digits_artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, route: str
) -> None:
    app = create_app(Settings(models_dir=digits_artifact.models_dir, state_dir=tmp_path))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            receive = receive_of([part(b'{"instances": [[[0, 1'), {"type": "http.disconnect"}])
            await app(post_scope(path, 10_000), receive, send)

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    registry = app.state.registry
    labels = {"route": route, "method": "POST"}
    assert registry.get_sample_value("candor_http_requests_total", {**labels, "status": "499"}) == 1.0
    assert registry.get_sample_value("candor_http_requests_total", {**labels, "status": "500"}) is None
    assert sent == [] and not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_cancel_from_elsewhere_while_the_body_arrives_is_not_taken_for_a_timeout() -> None:
    async def main() -> None:
        request = Request(post_scope("/", 100), receive_of([part(b"{")]))
        reading = asyncio.create_task(read_limited_body(request, 1024, timeout_s=30.0))
        await asyncio.sleep(0.05)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading

    asyncio.run(main())
