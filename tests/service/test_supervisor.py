"""The supervisor of `candor serve --workers N` with stand-in workers: a dead worker is restarted
into its slot; a slot that keeps dying at start stops the run with one line and exit 1."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from service.errors import ServiceError
from service.supervisor import QUICK_DEATHS, Supervisor, reuseport_socket


def test_a_slot_dying_at_start_is_restarted_then_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    starts = tmp_path / "starts"
    starts.mkdir()

    def command(slot: int) -> list[str]:  # each start leaves a file, then exits 3
        code = (
            f"import os, pathlib; pathlib.Path({str(starts)!r}, f'{slot}-{{os.getpid()}}').touch(); raise SystemExit(3)"
        )
        return [sys.executable, "-c", code]

    supervisor = Supervisor(2, command, dict(os.environ), tmp_path)
    assert supervisor.run() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"candor: error: worker {err[-1].split()[3]} exited with 3 within 10 s of its start "
        f"{QUICK_DEATHS} times in a row; stopping"
    )
    per_slot = [len(list(starts.glob(f"{slot}-*"))) for slot in (0, 1)]
    assert max(per_slot) == QUICK_DEATHS and min(per_slot) >= QUICK_DEATHS - 1  # restarted into its slot


def test_workers_share_the_port_the_supervisor_reserved() -> None:
    reserved = reuseport_socket("127.0.0.1", 0)
    port = reserved.getsockname()[1]
    workers = [reuseport_socket("127.0.0.1", port) for _ in range(2)]
    for sock in workers:
        sock.listen()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY on what it accepts
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    for sock in [reserved, *workers]:
        sock.close()


def test_a_port_held_without_reuseport_is_one_error(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(ServiceError, match="cannot listen on 127.0.0.1:"):
            reuseport_socket("127.0.0.1", other.getsockname()[1])
