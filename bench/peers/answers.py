"""Send one request to a server and read the probabilities back (HTTP with http.client, gRPC with a
raw-bytes unary call), and the equality check that gates benchmarking a peer."""

from __future__ import annotations

import http.client
from collections.abc import Callable

import numpy as np

from bench.peers.base import GRPC
from bench.peers.grpc_load import METHOD
from bench.peers.requests import Request, build, probabilities

TOLERANCE = 1e-5

Answer = Callable[[str, Request], np.ndarray]  # (kind, request) -> probabilities [N, C]


def http_answer(port: int, path: str, request: Request, kind: str) -> np.ndarray:
    """POST ``request`` and parse the probabilities; RuntimeError on a non-200 status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status} from {path}: {body[:300]!r}")
    return probabilities(kind, body, dict(response.getheaders()))


def grpc_answer(port: int, request: Request) -> np.ndarray:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        return probabilities(GRPC, call(request.body, timeout=30), {})


def compare(kind: str, images: np.ndarray, reference: Answer, other: Answer) -> str | None:
    """None when ``other`` answers every image within TOLERANCE of ``reference``; else why not."""
    for i, image in enumerate(images):
        request = build(kind, image)
        try:
            expected, got = reference(kind, request), other(kind, request)
        except Exception as exc:  # any failure to answer is a reason not to benchmark
            return f"image {i}: {type(exc).__name__}: {exc}"
        if expected.shape != got.shape:
            return f"image {i}: shape {list(got.shape)}, Candor {list(expected.shape)}"
        if (diff := float(np.max(np.abs(expected - got)))) > TOLERANCE:
            return f"image {i}: probabilities differ by up to {diff:.3g} (> {TOLERANCE:g})"
    return None
