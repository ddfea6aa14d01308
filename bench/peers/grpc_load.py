"""gRPC closed-loop load (wrk cannot speak gRPC): ``concurrency`` grpc.aio callers on one channel,
each sending the same prebuilt, serialized ModelInferRequest back to back (no protobuf work on the
client side: bytes in, bytes out). Run in its own process, the same for Candor and the peer:

    python -m bench.peers.grpc_load PORT CONCURRENCY SECONDS REQUEST_FILE

prints one JSON line: answers, errors, elapsed_s, latency quantiles (ms) and the client's own CPU
seconds. A Python client tops out near one core: when ``client_cpu_s / elapsed_s`` is close to 1,
the figure is the client's limit, not the server's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc

METHOD = "/inference.GRPCInferenceService/ModelInfer"


async def closed_loop(port: int, request: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    """Back-to-back calls from ``concurrency`` callers for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        stop = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal errors
            while (started := time.perf_counter()) < stop:
                try:
                    await call(request, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies) or [0.0]
    quantile = {q: 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.9, 0.99)}
    return {
        "answers": len(latencies),
        "errors": errors,
        "elapsed_s": elapsed,
        **{str(q): v for q, v in quantile.items()},
    }


def main() -> None:
    port, concurrency, seconds, path = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
    cpu = time.process_time()
    result = asyncio.run(closed_loop(port, path.read_bytes(), concurrency, seconds))
    print(json.dumps({**result, "client_cpu_s": time.process_time() - cpu}))


if __name__ == "__main__":
    main()
