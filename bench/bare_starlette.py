"""Baseline server: a bare Starlette endpoint that parses the same payload and returns a fixed
response of the same size, on uvicorn with the same event loop and HTTP parser as `candor serve`.

    python bench/bare_starlette.py PORT RESPONSE_FILE [asyncio|uvloop]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build_app(response: bytes) -> Starlette:
    """POST /v1/models/{name}:predict: orjson + numpy parse of ``instances``, then ``response``."""

    async def predict(request: Request) -> Response:
        body = orjson.loads(await request.body())
        np.asarray(body["instances"], dtype=np.float32)
        return Response(response, media_type="application/json")

    async def live(_: Request) -> Response:
        return Response(b'{"live":true}', media_type="application/json")

    return Starlette(
        routes=[Route("/v1/models/{name}:predict", predict, methods=["POST"]), Route("/v2/health/live", live)]
    )


if __name__ == "__main__":
    port, response_file = int(sys.argv[1]), Path(sys.argv[2])
    loop = sys.argv[3] if len(sys.argv) > 3 else "asyncio"
    uvicorn.run(
        build_app(response_file.read_bytes()),
        host="127.0.0.1",
        port=port,
        loop=loop,
        http="httptools",
        access_log=False,
        log_level="warning",
    )
