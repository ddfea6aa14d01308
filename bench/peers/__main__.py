"""Benchmark (not a test): Candor against KServe, MLServer, PyTriton, LitServe and BentoML, side by
side on this machine. Each peer is installed into its own venv, serves the same model.onnx with the
same preprocessing (bench/peers/peer_model.py), must answer the same probabilities as Candor within
1e-5 on fixed images, then runs alternating rounds with Candor (Candor, peer, then peer, Candor) per
kind of request it serves (HTTP JSON, HTTP V2 binary, gRPC).

    .venv/bin/python -m bench.peers --rounds 3 --seconds 10 --keep-venvs /work/peer-venvs

Candor is `candor serve` from this tree (bench.processes.candor_serve: store on, as shipped), one
ONNX Runtime intra-op thread. Load: wrk for HTTP, bench/peers/grpc_load.py for gRPC (same client
for both sides); the load generator shares the host's cores with the server.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench.loadgen import wrk_available
from bench.peers.answers import Answer, compare, grpc_answer, http_answer
from bench.peers.base import GRPC, KINDS, MODEL, Peer, candor_path
from bench.peers.measure import Target, measure, warm_up
from bench.peers.registry import PEERS
from bench.peers.requests import Request, build, fixed_images
from bench.peers.running import running_peer, wait_grpc
from bench.peers.table import Round, markdown, round_line
from bench.peers.venvs import current_python_versions, ensure_venv, installed_versions
from bench.processes import REPO, candor_serve, free_port

FRAMEWORKS = ("kserve", "mlserver", "nvidia-pytriton", "litserve", "bentoml", "onnxruntime", "numpy", "uvloop")


def host() -> str:
    """nproc, CPU model and RAM from /proc, and this Python."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 2**20:.1f} GiB RAM, python {platform.python_version()}, load {load}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from {','.join(PEERS)}")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, from {','.join(KINDS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per run (c=32 and c=1 each)")
    parser.add_argument("--keep-venvs", type=Path, default=None, help="install peers here and reuse them")
    parser.add_argument("--images", type=int, default=8, help="fixed images in the answer check")
    return parser.parse_args()


def answerer(port: int, grpc_port: int, paths: dict[str, str | None]) -> Answer:
    """(kind, request) -> probabilities from one server."""

    def answer(kind: str, request: Request) -> np.ndarray:
        if kind == GRPC:
            return grpc_answer(grpc_port, request)
        path = paths[kind]
        assert path is not None
        return http_answer(port, path, request, kind)

    return answer


def alternate(peer: str, kind: str, candor: Target, other: Target, rounds: int, seconds: float) -> list[Round]:
    """``rounds`` rounds, Candor first in even rounds, the peer first in odd ones."""
    request = build(kind, fixed_images(1, seed=1)[0])
    warm_up(kind, candor, request)
    warm_up(kind, other, request)
    out = []
    for r in range(rounds):
        if r % 2 == 0:
            a = measure(kind, candor, request, seconds)
            b = measure(kind, other, request, seconds)
        else:
            b = measure(kind, other, request, seconds)
            a = measure(kind, candor, request, seconds)
        out.append(Round(peer, kind, a, b))
        print(round_line(out[-1], r + 1), flush=True)
    return out


def bench_peer(
    peer: Peer, venv: Path, work: Path, candor: tuple[int, int, int], args: argparse.Namespace
) -> list[Round]:
    """Start the peer, check its answers for each kind, run the rounds of those that match."""
    http_port, grpc_port, pid = candor
    kinds = [k for k in peer.kinds if k in args.kinds.split(",")]
    images = fixed_images(args.images)
    rounds: list[Round] = []
    with running_peer(peer, venv, work) as (ports, peer_pid):
        if GRPC in kinds:
            wait_grpc(ports.grpc)
        reference = answerer(http_port, grpc_port, {k: candor_path(k) for k in KINDS})
        theirs = answerer(ports.http, ports.grpc, peer.paths)
        for kind in kinds:
            if (why := compare(kind, images, reference, theirs)) is not None:
                print(f"{peer.name} {kind}: NOT benchmarked, answers differ from Candor's: {why}", flush=True)
                continue
            print(f"{peer.name} {kind}: answers equal Candor's within 1e-5 on {len(images)} images", flush=True)
            ours = Target(grpc_port if kind == GRPC else http_port, candor_path(kind), pid)
            other = Target(ports.grpc if kind == GRPC else ports.http, peer.paths[kind], peer_pid)
            rounds += alternate(peer.name, kind, ours, other, args.rounds, args.seconds)
    return rounds


def main() -> None:
    args = parse_args()
    if not wrk_available():
        sys.exit("bench.peers needs wrk: bash scripts/bench-deps.sh")
    names = [n for n in args.peers.split(",") if n]
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        sys.exit(f"unknown peers {unknown}; known: {list(PEERS)}")
    print(f"host: {host()}")
    print(f"candor: {current_python_versions(FRAMEWORKS)}")
    rounds: list[Round] = []
    refused: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = args.keep_venvs or Path(tmp) / "venvs"
        http_port, grpc_port = free_port(), free_port()
        env = {"CANDOR_GRPC_PORT": str(grpc_port), "CANDOR_INTRA_OP_THREADS": "1"}
        proc = stack.enter_context(candor_serve(REPO / "models", http_port, env))
        wait_grpc(grpc_port)
        for name in names:
            peer = PEERS[name]
            try:
                seconds = ensure_venv(root / name, peer.requirements)
                versions = installed_versions(root / name, FRAMEWORKS)
                print(f"{name}: venv {root / name} ({seconds:.0f} s to install) {versions}")
                if peer.notes:
                    print(f"{name}: workaround: {peer.notes}")
                rounds += bench_peer(peer, root / name, Path(tmp) / name, (http_port, grpc_port, proc.pid), args)
            except (RuntimeError, TimeoutError, OSError) as exc:
                refused[name] = f"{type(exc).__name__}: {exc}"
                print(f"{name}: NOT benchmarked: {refused[name]}", flush=True)
    print(f"\nmedians over rounds, model {MODEL}, 1 image per request (ratio: Candor / peer, within each round)")
    print(markdown(rounds))
    print(f"host at the end: {host()}")
    for name, why in refused.items():
        print(f"- {name}: not benchmarked: {why}")


if __name__ == "__main__":
    main()
