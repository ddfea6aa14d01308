"""A server's whole process tree from /proc: its descendants (by parent pid, whatever their process
group or session: BentoML's worker leaves the server's group), their CPU time, and stopping them all."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int, proc: Path = PROC) -> list[str] | None:
    """Fields of /proc/PID/stat after the command (field 3, state, is item 0); None if gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def children_map(proc: Path = PROC) -> dict[int, list[int]]:
    """parent pid -> child pids, over every live process."""
    tree: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name), proc)) is not None:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int, proc: Path = PROC) -> list[int]:
    """``pid`` and all its live descendants."""
    tree, found, todo = children_map(proc), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def cpu_seconds(pids: list[int], proc: Path = PROC) -> float:
    """user + system CPU seconds of the live processes among ``pids`` (utime + stime, fields 14-15)."""
    total = 0
    for pid in pids:
        if (fields := stat_fields(pid, proc)) is not None:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def tree_cpu_seconds(pid: int, proc: Path = PROC) -> float:
    """CPU seconds of ``pid``'s whole live tree."""
    return cpu_seconds(descendants(pid, proc), proc)


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def stop_tree(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM the tree root first then the rest, wait up to ``grace_s``, SIGKILL what is left."""
    pids = descendants(pid)
    for target in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    for target in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
