"""Benchmark (not a test): the same `candor serve` over HTTP V2 (binary tensors) and gRPC, one
tritonclient each, closed loop at concurrency 1, in alternating rounds (HTTP, gRPC, then gRPC, HTTP);
prints each round and the medians of requests per second and of the per-round median latency.

    .venv/bin/python -m bench.grpc --rounds 6 --seconds 3 --instances 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from bench.processes import REPO, candor_serve, free_port

MODEL = "fashion-mnist-cnn"


def caller(module: object, address: str, x: np.ndarray) -> Callable[[], None]:
    """One infer call of ``x`` (binary tensors) through tritonclient's http or grpc module."""
    client = module.InferenceServerClient(address)  # type: ignore[attr-defined]
    tensor = module.InferInput("images", list(x.shape), "UINT8")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(x)
    outputs = [module.InferRequestedOutput(n) for n in ("probabilities", "label")]  # type: ignore[attr-defined]

    def call() -> None:
        assert client.infer(MODEL, [tensor], outputs=outputs).as_numpy("probabilities").shape[0] == len(x)

    return call


def run(call: Callable[[], None], seconds: float) -> tuple[float, float]:
    """(requests per second, median latency in ms) of back-to-back calls for ``seconds``."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        call()
        latencies.append(time.perf_counter() - start)
    return len(latencies) / sum(latencies), 1000 * statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument("--instances", type=int, default=1, help="instances per request")
    args = parser.parse_args()
    x = np.random.default_rng(0).integers(0, 256, (args.instances, 1, 28, 28)).astype(np.uint8)
    http_port, grpc_port = free_port(), free_port()
    env = {"CANDOR_GRPC_PORT": str(grpc_port), "CANDOR_INTRA_OP_THREADS": "1"}
    with candor_serve(REPO / "models", http_port, env):
        time.sleep(1.0)  # the gRPC server starts in the lifespan, after the HTTP port answers
        calls = {
            "http": caller(triton_http, f"127.0.0.1:{http_port}", x),
            "grpc": caller(triton_grpc, f"127.0.0.1:{grpc_port}", x),
        }
        for call in calls.values():
            run(call, 0.5)  # warm-up
        results: dict[str, list[tuple[float, float]]] = {"http": [], "grpc": []}
        for r in range(args.rounds):
            for name in ("http", "grpc") if r % 2 == 0 else ("grpc", "http"):
                results[name].append(run(calls[name], args.seconds))
                rps, ms = results[name][-1]
                print(f"round {r} {name:4s} {rps:8.1f} req/s  median {ms:6.3f} ms")
    medians = {
        name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for name, rs in results.items()
    }
    for name, (rps, ms) in medians.items():
        print(f"median {name:4s} {rps:8.1f} req/s  median latency {ms:6.3f} ms")
    print(f"gRPC / HTTP throughput ratio: {medians['grpc'][0] / medians['http'][0]:.2f}")


if __name__ == "__main__":
    main()
