"""``candor serve --workers N`` (N > 1): a supervisor process and N worker processes on one port.

The supervisor serves nothing itself. It
- owns the SQLite store (the exclusive flock on ``<db>.lock`` that a single ``candor serve``
  takes), so a second, independent ``candor serve`` on the same state_dir is still refused, and
  replays every log left by an earlier run into the store before any worker starts;
- reserves the HTTP (and gRPC) port: a socket bound with SO_REUSEPORT, never listening, so port 0
  resolves once and a port taken by another program is one error line before any worker starts;
- makes a run directory (``<state_dir>/run-*``; service.worker_slot) for the monitor's slot
  states, prometheus_client's multiprocess files and the fleet's desired repository state
  (service.inference.fleet_repository: load, unload and promotion reach every worker), removed
  at exit (and, with an SQLite store it owns, those a killed supervisor left, at start);
- starts worker slot 0 .. N-1, each ``candor serve --worker-slot s`` with the same settings: it
  binds the port itself with SO_REUSEPORT (the kernel spreads connections over the workers),
  keeps uvicorn's protocol and event loop of a single process (TCP_NODELAY set on every
  connection; uvicorn's own ``--workers`` lost it here: 44 ms per request), its own engines and
  batchers, its own pending log ``<db>.pending.<s>``;
- restarts a worker that dies (kill -9 included) into the same slot; the new worker replays the
  slot's log and starts from the slot's published monitor state; a slot that dies
  ``QUICK_DEATHS`` times in a row within ``START_GRACE_S`` of its start stops the run (exit 1);
- forwards SIGTERM / SIGINT to every worker (each drains exactly as a single process does) and
  exits 0 once all have exited 0.

Workers run in their own process group (a terminal's Ctrl-C reaches the supervisor only: a second
SIGINT would make uvicorn skip the drain) and get SIGTERM if the supervisor dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from service.errors import ServiceError
from service.monitor.errors import StoreError
from service.monitor.stores.ownership import open_exclusively
from service.monitor.stores.pending_log import leftover_logs, replay_logs
from service.monitor.stores.sqlite_store import SQLiteStore, store_lock_path
from service.monitor.wiring import sqlite_path
from service.settings import Settings
from service.worker_slot import METRICS_SUBDIR

START_GRACE_S = 10.0  # a worker that dies sooner after its start died "at start"
QUICK_DEATHS = 3  # that many deaths at start in a row, in one slot: the run stops
PR_SET_PDEATHSIG = 1


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (not listening). Made with proto
    IPPROTO_TCP, so asyncio sets TCP_NODELAY on every connection it accepts (it checks the
    proto); TCP_NODELAY is also set on it for the event loops that copy it from the listener."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {exc}", field="CANDOR_PORT") from exc
    return sock


def own_store(settings: Settings) -> int | None:
    """The exclusive flock of the SQLite store (None for Redis), after replaying every log an
    earlier run left; held by the supervisor for its workers. ServiceError if another process
    owns the store."""
    if settings.store_url is not None and not settings.store_url.startswith("sqlite://"):
        return None
    path = sqlite_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = store_lock_path(path)
    try:
        fd = open_exclusively(lock, os.O_RDONLY, f"prediction store {path} (lock {lock.name})")
    except StoreError as exc:
        raise ServiceError(str(exc)) from None
    try:
        store = SQLiteStore(path, sync=settings.store_sync)
        try:
            replay_logs(store, leftover_logs(path))
        finally:
            store.close()
    except StoreError as exc:
        os.close(fd)
        raise ServiceError(str(exc)) from None
    return fd


def _worker_preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setpgrp()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Slot:
    """One worker slot: its current process, when it started, its deaths at start in a row."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    """Starts, restarts and stops the worker slots (module docstring)."""

    def __init__(self, n: int, command: Callable[[int], list[str]], env: dict[str, str], metrics_dir: Path) -> None:
        self.command = command
        self.env = env
        self.metrics_dir = metrics_dir
        self.slots = [Slot(i) for i in range(n)]
        self.stopping = False

    def start(self, slot: Slot) -> None:
        """Start (or restart) the worker of ``slot``."""
        slot.proc = subprocess.Popen(self.command(slot.index), env=self.env, preexec_fn=_worker_preexec)
        slot.started = time.monotonic()

    def stop(self, *_: object) -> None:
        """SIGTERM every worker (each drains); the loop then waits for them."""
        self.stopping = True
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Start every slot, restart dead ones until stopped; 0 when every worker exited 0 after
        the stop, 1 if one did not or a slot kept dying at start."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self) -> int:
        for each in self.slots:
            self.start(each)
        failed: str | None = None
        while any(s.proc is not None for s in self.slots):
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            slot = next((s for s in self.slots if s.proc is not None and s.proc.pid == pid), None)
            if slot is None or slot.proc is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            slot.proc.returncode = code  # reaped here: Popen must not wait for it again
            slot.proc = None
            mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
            if self.stopping:
                slot.exit_codes.append(code)
                continue
            failed = self._restart(slot, pid, code)
            if failed is not None:
                self.stop()
        if failed is not None:
            print(f"candor: error: {failed}", file=sys.stderr)
            return 1
        return 0 if all(s.exit_codes and s.exit_codes[-1] == 0 for s in self.slots) else 1

    def _restart(self, slot: Slot, pid: int, code: int) -> str | None:
        """Restart a worker that died; the reason to stop instead, if it keeps dying at start."""
        at_start = time.monotonic() - slot.started < START_GRACE_S
        slot.quick_deaths = slot.quick_deaths + 1 if at_start else 0
        if slot.quick_deaths >= QUICK_DEATHS:
            return (
                f"worker {slot.index} exited with {code} within {START_GRACE_S:g} s of its start "
                f"{QUICK_DEATHS} times in a row; stopping"
            )
        print(f"candor: worker {slot.index} (pid {pid}) exited with {code}; restarting it", file=sys.stderr)
        self.start(slot)
        return None


def supervise(settings: Settings, worker_argv: Callable[[int, Path], list[str]], verify: Callable[[], None]) -> int:
    """Run ``settings.workers`` workers (module docstring); ``worker_argv(slot, run_dir)`` is the
    command line of one worker; ``verify()`` (load the artifacts once) runs after the store is
    owned and before the port is reserved. Returns the exit status."""
    lock = own_store(settings)
    reserved: list[socket.socket] = []
    run_dir: Path | None = None
    try:
        verify()
        reserved.append(reuseport_socket(settings.host, settings.port))
        port = int(reserved[0].getsockname()[1])
        if settings.grpc_port is not None:
            reserved.append(reuseport_socket(settings.host, settings.grpc_port))
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        if lock is not None:  # the store is ours: run directories left by a killed supervisor are stale
            for stale in settings.state_dir.glob("run-*"):
                shutil.rmtree(stale, ignore_errors=True)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=settings.state_dir))
        (run_dir / METRICS_SUBDIR).mkdir()
        env = {
            **os.environ,
            "CANDOR_HOST": settings.host,
            "CANDOR_PORT": str(port),
            "CANDOR_MODELS_DIR": str(settings.models_dir),
            "CANDOR_WORKERS": str(settings.workers),
            "PROMETHEUS_MULTIPROC_DIR": str(run_dir / METRICS_SUBDIR),
        }
        print(f"candor: {settings.workers} workers on http://{settings.host}:{port} (supervisor pid {os.getpid()})")
        sys.stdout.flush()
        rundir = run_dir
        supervisor = Supervisor(settings.workers, lambda slot: worker_argv(slot, rundir), env, rundir / METRICS_SUBDIR)
        return supervisor.run()
    finally:
        for sock in reserved:
            sock.close()
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if lock is not None:
            os.close(lock)
