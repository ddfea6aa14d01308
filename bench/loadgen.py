"""Load generators: wrk (C, when installed) and a bounded asyncio HTTP/1.1 client.

``wrk_closed_loop`` runs Debian's ``wrk`` (keep-alive, closed loop) with a Lua script that counts
answers by status; it takes a fraction of the CPU the Python client needs for the same load, which
matters when the load generator shares the server's cores.

The asyncio client (raw sockets, no client library overhead): closed loop, ``concurrency``
connections each send the same prebuilt request back to back until ``duration_s`` passes or
``max_requests`` were sent. Open loop (``open_loop``): requests start at a fixed rate whatever the
answers, on a bounded pool of connections (a start finding no free connection is counted as
``client_saturated``). Latency is measured from write to the last byte.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


def build_request(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A complete POST request with Content-Length (keep-alive)."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {"Content-Type": "application/json"}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    """Counts, wall time and latencies of one run (every latency, or wrk's quantiles)."""

    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    client_saturated: int = 0
    errors: int = 0
    quantiles_ms: dict[float, float] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.completed / self.elapsed_s if self.elapsed_s else 0.0

    def median_ms(self) -> float:
        if not self.latencies_s:
            return self.quantiles_ms[0.5]
        return 1000 * statistics.median(self.latencies_s)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return self.quantiles_ms[q]
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


WRK_QUANTILES = (0.5, 0.9, 0.99)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = %(body)s
%(headers)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local per_thread = {}
  for _, t in ipairs(threads) do
    local parts = {}
    for code, n in pairs(t:get("statuses")) do
      parts[#parts + 1] = string.format('"%%d": %%d', code, n)
    end
    per_thread[#per_thread + 1] = "{" .. table.concat(parts, ", ") .. "}"
  end
  local q = {}
  for _, p in ipairs({%(quantiles)s}) do q[#q + 1] = string.format('"%%g": %%d', p, latency:percentile(p)) end
  local e = summary.errors
  io.write(string.format('CANDOR_WRK {"duration_us": %%d, "statuses": [%%s], ' ..
    '"latency_us": {%%s}, "errors": %%d}\\n', summary.duration, table.concat(per_thread, ", "),
    table.concat(q, ", "), e.connect + e.read + e.write + e.timeout))
end
"""


def lua_literal(data: bytes) -> str:
    """``data`` as a Lua string literal: printable ASCII as is, any other byte as a 3-digit decimal
    escape (binary bodies, e.g. the V2 binary tensor extension, survive the script)."""
    plain = set(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
    return '"' + "".join(chr(b) if b in plain else f"\\{b:03d}" for b in data) + '"'


def parse_wrk(stdout: str) -> LoadResult:
    """The LoadResult in the CANDOR_WRK line that WRK_SCRIPT's ``done`` writes."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("CANDOR_WRK "))
    figures = json.loads(line.removeprefix("CANDOR_WRK "))
    statuses: Counter[int] = Counter()
    for part in figures["statuses"]:
        statuses.update({int(code): n for code, n in part.items()})
    return LoadResult(
        elapsed_s=figures["duration_us"] / 1e6,
        statuses=statuses,
        errors=figures["errors"],
        quantiles_ms={q: figures["latency_us"][f"{100 * q:g}"] / 1000 for q in WRK_QUANTILES},
    )


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_closed_loop(
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    duration_s: float,
    headers: dict[str, str] | None = None,
    threads: int = 1,
) -> LoadResult:
    """``wrk`` with ``concurrency`` keep-alive connections for ``duration_s`` (whole seconds)."""
    header_lines = "\n".join(
        f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {"Content-Type": "application/json"}).items()
    )
    script = WRK_SCRIPT % {
        "body": lua_literal(body),
        "headers": header_lines,
        "quantiles": ", ".join(f"{100 * q:g}" for q in WRK_QUANTILES),
    }
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(script)
        out = subprocess.run(
            [
                "wrk",
                f"-t{min(threads, concurrency)}",
                f"-c{concurrency}",
                f"-d{max(1, round(duration_s))}s",
                "--timeout",
                "30s",
                "-s",
                str(lua),
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return parse_wrk(out)


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


async def closed_loop(
    port: int, request: bytes, concurrency: int, duration_s: float, max_requests: int = 10**9
) -> LoadResult:
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


async def open_loop(port: int, request: bytes, rate: float, duration_s: float, connections: int) -> LoadResult:
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
