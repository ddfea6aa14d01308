"""Benchmark (not a test): `candor serve` from two source trees, A and B, side by side: both up at
once on loopback (the idle one costs nothing), wrk runs alternating A, B, then B, A, for
``--rounds`` rounds; prints each round and the medians. For a change too small to see across
separate runs on a noisy host (this one drifts by tens of percent within minutes).

    git worktree add /tmp/candor-a HEAD~1
    .venv/bin/python -m bench.ab /tmp/candor-a . --concurrency 1 --rounds 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.loadgen import LoadResult, wrk_available, wrk_closed_loop
from bench.processes import child, free_port
from bench.serve import SMALL, build_models, predict_body, predict_path

SERVE = (
    "import sys; from candor.cli import main; "
    "sys.argv = ['candor', 'serve', '--port', sys.argv[1], '--models-dir', sys.argv[2]]; main()"
)


def serve_tree(stack: ExitStack, tree: Path, models: Path, threads: int) -> int:
    """Start `candor serve` with ``tree`` first on PYTHONPATH; returns its port."""
    port = free_port()
    env = {
        "PYTHONPATH": str(tree.resolve()),
        "CANDOR_INTRA_OP_THREADS": str(threads),
        "CANDOR_STATE_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
        "CANDOR_LOG_LEVEL": "warning",
    }
    stack.enter_context(child([sys.executable, "-c", SERVE, str(port), str(models)], port, env))
    return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="source tree A (a checkout of this repository)")
    parser.add_argument("b", type=Path, help="source tree B")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    if not wrk_available():
        sys.exit("bench.ab needs wrk: bash scripts/bench-deps.sh")
    body, path = predict_body((1, 28, 28)), predict_path(SMALL)
    runs: dict[str, list[LoadResult]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        models = build_models(Path(tmp), heavy=False)
        ports = {
            "A": serve_tree(stack, args.a, models, args.threads),
            "B": serve_tree(stack, args.b, models, args.threads),
        }
        for port in ports.values():
            wrk_closed_loop(port, path, body, args.concurrency, 2)  # warm-up
        for r in range(args.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                runs[name].append(wrk_closed_loop(ports[name], path, body, args.concurrency, args.seconds))
    for r, (a, b) in enumerate(zip(runs["A"], runs["B"], strict=True), start=1):
        print(
            f"round {r}: p50 A {a.median_ms():.3f} ms, B {b.median_ms():.3f} ms, B - A "
            f"{b.median_ms() - a.median_ms():+.3f} ms; p99 A {a.quantiles_ms[0.99]:.3f} ms, "
            f"B {b.quantiles_ms[0.99]:.3f} ms; req/s A {a.rate:.1f}, B {b.rate:.1f}"
        )
    for name, results in runs.items():
        print(
            f"{name}: median p50 {statistics.median(x.median_ms() for x in results):.3f} ms, "
            f"median p99 {statistics.median(x.quantiles_ms[0.99] for x in results):.3f} ms, "
            f"median req/s {statistics.median(x.rate for x in results):.1f} (concurrency {args.concurrency})"
        )


if __name__ == "__main__":
    main()
