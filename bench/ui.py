"""Benchmark (not a test): does rendering /ui slow predict or feedback?

One `candor serve` on loopback (the bundled model, its own store in a temp dir), driven by the
phases of bench/monitor.py: predict requests for --seconds (every prediction_id kept), then one
label per prediction to POST /v1/feedback. Each round runs the two phases twice, once alone and
once while --ui-clients viewers fetch GET /ui (back to back, or each every --ui-interval s), in
an order that rotates by round, so the host's drift hits both alike; with --control PATH, a third
phase beside as many viewers of PATH (e.g. /v2/health/live) separates the cost of answering a
viewer at all from that of the page. The viewers are threads of a child process per path, so
their client work does not stall the load generator's event loop (it still shares this machine's
cores, as the server does). The labels keep changing the window, so every page the server
renders runs a fresh drift test and interval; it renders a page at most once a second
(service.ui.cache). Prints per phase predictions/s, labels/s, the server's CPU per prediction and
the viewers' fetches with their median latency; per round the ratios beside viewers over alone;
at the end the medians of the ratios.

    .venv/bin/python -m bench.ui --seconds 3 --rounds 9 --ui-clients 8 --ui-interval 1 --control /v2/health/live
    .venv/bin/python -m bench.ui --seconds 3 --rounds 9 --ui-clients 1 --control /v2/health/live
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx
import psutil

from bench.monitor import REPO, feedback_phase, predict_body, predict_phase
from bench.processes import candor_serve, free_port

Fetch = tuple[float, bool]
Viewers = tuple[str, str, int, float]  # url, path, clients, interval
Switch = tuple[EventType, "Queue[Fetch]"]  # the viewers' on/off event and their reports


@dataclass
class UiLoad:
    """Fetches of /ui during one phase: their latencies (seconds) and bad answers."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0


def fetch_ui(url: str, path: str, interval: float, active: EventType, stop: EventType, out: Queue[Fetch]) -> None:
    """While ``active`` (until ``stop``) GET ``path``: back to back when ``interval`` is 0, else one
    every ``interval`` s; each fetch's (seconds, answered well) goes to ``out``."""
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.is_set():
            if not active.wait(0.1):
                continue
            started = time.perf_counter()
            response = client.get(path)
            good = response.status_code == 200 and (path != "/ui" or b"<svg" in response.content)
            out.put((time.perf_counter() - started, good))
            if interval:
                stop.wait(max(0.0, interval - (time.perf_counter() - started)))


def ui_viewers(args: Viewers, active: EventType, out: Queue[Fetch], stop: EventType) -> None:
    """The viewers, a child process for the whole run (the viewers' browsers are not the load
    generator): ``clients`` threads fetching while ``active`` is set."""
    url, path, clients, interval = args
    threads = [threading.Thread(target=fetch_ui, args=(url, path, interval, active, stop, out)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def drain(out: Queue[Fetch]) -> UiLoad:
    """Every fetch reported so far."""
    load = UiLoad()
    while not out.empty():
        seconds, good = out.get()
        load.latencies.append(seconds)
        load.failures += not good
    return load


@dataclass
class Phase:
    """One predict + feedback phase: rates, the server's CPU seconds, the /ui load beside it."""

    predictions_s: float
    labels_s: float
    server_cpu_s: float
    predictions: int
    ui: UiLoad


async def one_phase(
    client: httpx.AsyncClient, server: psutil.Process, args: argparse.Namespace, viewers: Switch | None
) -> Phase:
    """Predict then feedback, with the viewers fetching throughout when ``viewers`` is given."""
    model, body = predict_body(args.models_dir, args.predict_batch)
    if viewers is not None:
        drain(viewers[1])  # late reports of an earlier phase
        viewers[0].set()
    before = server.cpu_times()
    ids, predict_s = await predict_phase(client, model, body, args.seconds, args.concurrency)
    accepted, feedback_s = await feedback_phase(client, ids, args.feedback_batch, args.concurrency)
    after = server.cpu_times()
    ui = UiLoad()
    if viewers is not None:
        viewers[0].clear()
        await asyncio.sleep(0.2)
        ui = drain(viewers[1])
    if accepted != len(ids) or ui.failures:
        raise RuntimeError(f"{accepted} of {len(ids)} labels accepted, {ui.failures} bad answers to the viewers")
    cpu = (after.user - before.user) + (after.system - before.system)
    return Phase(len(ids) / predict_s, accepted / feedback_s, cpu, len(ids), ui)


def describe(label: str, phase: Phase) -> str:
    ui = phase.ui
    fetches = (
        f", {len(ui.latencies)} fetches, median {1000 * statistics.median(ui.latencies):.1f} ms" if ui.latencies else ""
    )
    cpu_us = 1e6 * phase.server_cpu_s / max(phase.predictions, 1)
    return (
        f"{label} {phase.predictions_s:6.0f} predictions/s {phase.labels_s:7.0f} labels/s, "
        f"server {cpu_us:5.0f} us CPU per prediction{fetches}"
    )


async def rounds(
    url: str, server: psutil.Process, args: argparse.Namespace, viewers: dict[str, Switch]
) -> dict[str, tuple[list[float], list[float]]]:
    """Rounds of one phase alone and one beside each path's viewers, the order rotating by round;
    per path, the per-round ratios (beside over alone) of predictions/s and labels/s."""
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    headers = {"content-type": "application/json"}
    ratios: dict[str, tuple[list[float], list[float]]] = {path: ([], []) for path in viewers}
    conditions: list[str | None] = [None, *viewers]
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60, headers=headers) as client:
        model, body = predict_body(args.models_dir, args.predict_batch)
        await predict_phase(client, model, body, 1.0, args.concurrency)  # warm-up
        for number in range(1, args.rounds + 1):
            shift = number % len(conditions)
            order = conditions[shift:] + conditions[:shift]
            result = {c: await one_phase(client, server, args, None if c is None else viewers[c]) for c in order}
            alone = result[None]
            print(f"round {number}: {describe('alone', alone)}")
            for path, (predict_ratios, label_ratios) in ratios.items():
                beside = result[path]
                predict_ratios.append(beside.predictions_s / alone.predictions_s)
                label_ratios.append(beside.labels_s / alone.labels_s)
                print(f"         {describe('with ' + path, beside)}")
                print(f"         ratios: predictions/s {predict_ratios[-1]:.3f}, labels/s {label_ratios[-1]:.3f}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--seconds", type=float, default=5.0, help="predict phase duration")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of (alone, beside viewers), order rotating")
    parser.add_argument("--concurrency", type=int, default=8, help="predict/feedback requests in flight")
    parser.add_argument("--predict-batch", type=int, default=1, help="instances per predict request")
    parser.add_argument("--feedback-batch", type=int, default=10, help="labels per feedback request")
    parser.add_argument("--ui-clients", type=int, default=1, help="viewers per path (threads of a child process)")
    parser.add_argument("--ui-interval", type=float, default=0.0, help="seconds between a viewer's fetches (0: none)")
    parser.add_argument("--control", default=None, help="also a phase beside viewers of this path (/v2/health/live)")
    args = parser.parse_args()
    paths = ["/ui", *([args.control] if args.control else [])]
    print(
        f"{args.concurrency} predict/feedback clients, {args.predict_batch} instance(s) per predict, "
        f"{args.feedback_batch} labels per feedback; {args.ui_clients} viewer(s) per path of {paths}, "
        f"{'back to back' if not args.ui_interval else f'one fetch every {args.ui_interval:g} s each'}"
    )
    port = free_port()
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    with candor_serve(args.models_dir, port) as proc:
        url = f"http://127.0.0.1:{port}"
        switches = {path: (context.Event(), context.Queue()) for path in paths}
        children = [
            context.Process(target=ui_viewers, args=((url, path, args.ui_clients, args.ui_interval), *switch, stop))
            for path, switch in switches.items()
        ]
        for child in children:
            child.start()
        try:
            ratios = asyncio.run(rounds(url, psutil.Process(proc.pid), args, switches))
        finally:
            stop.set()
            for child in children:
                child.join(timeout=60)
    for path, (predict_ratios, label_ratios) in ratios.items():
        print(
            f"median ratio with {path} over alone: predictions/s {statistics.median(predict_ratios):.3f}, "
            f"labels/s {statistics.median(label_ratios):.3f}"
        )


if __name__ == "__main__":
    main()
