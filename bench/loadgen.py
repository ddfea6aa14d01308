"""A bounded asyncio HTTP/1.1 load generator (keep-alive, raw sockets, no client library overhead).

Closed loop: ``concurrency`` connections each send the same prebuilt request back to back until
``duration_s`` passes or ``max_requests`` were sent. Open loop (``open_loop``): requests start at a
fixed rate whatever the answers, on a bounded pool of connections (a start finding no free
connection is counted as ``client_saturated``). Latency is measured from write to the last byte.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field


def build_request(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A complete POST request with Content-Length (keep-alive)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in (headers or {"Content-Type": "application/json"}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    """Counts, wall time and latencies of one run."""

    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    client_saturated: int = 0
    errors: int = 0

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.completed / self.elapsed_s if self.elapsed_s else 0.0

    def median_ms(self) -> float:
        return 1000 * statistics.median(self.latencies_s)

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(fields.get("content-length", "0")))
    return status, body, fields.get("connection", "").lower() != "close"


async def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection (used to capture a response)."""
    reader, writer = await connect(port)
    writer.write(request)
    status, body, _ = await read_response(reader)
    writer.close()
    return status, body


async def closed_loop(port: int, request: bytes, concurrency: int, duration_s: float,
                      max_requests: int = 10**9) -> LoadResult:
    """``concurrency`` connections sending back to back for ``duration_s`` seconds."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    stop = loop.time() + duration_s
    budget = [max_requests]

    async def worker() -> None:
        reader, writer = await connect(port)
        while loop.time() < stop and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status, _, keep = await read_response(reader)
            result.latencies_s.append(time.perf_counter() - started)
            result.statuses[status] += 1
            if not keep:
                writer.close()
                reader, writer = await connect(port)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result


async def open_loop(port: int, request: bytes, rate: float, duration_s: float,
                    connections: int) -> LoadResult:
    """Start ``rate`` requests per second for ``duration_s`` on at most ``connections`` sockets."""
    result = LoadResult()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await connect(port))
    tasks: set[asyncio.Task[None]] = set()

    async def one(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        reader, writer = conn
        started = time.perf_counter()
        try:
            writer.write(request)
            status, _, keep = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
            idle.put_nowait(await connect(port))
            return
        result.latencies_s.append(time.perf_counter() - started)
        result.statuses[status] += 1
        idle.put_nowait(conn if keep else await connect(port))

    started = time.perf_counter()
    for i in range(int(rate * duration_s)):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle.empty():
            result.client_saturated += 1
            continue
        task = asyncio.create_task(one(idle.get_nowait()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - started
    while not idle.empty():
        idle.get_nowait()[1].close()
    return result
