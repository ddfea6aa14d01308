"""The fleet's desired repository state: ``<run_dir>/repository.json`` of ``candor serve --workers N``.

One JSON object, ``{"seq": k, "models": {name: {"loaded": bool, "seq": j}}, "defaults": {name: v}}``:
``seq`` counts the changes recorded in this run (0: none); each model entry carries the ``seq`` of
the change that last named it (so a follower re-applies a reload of a model already loaded, e.g.
a promotion); ``defaults`` holds the run-time default-version overrides (a promotion over a pin).

Writes are read-modify-write under an exclusive flock on ``<run_dir>/repository.lock`` and land by
temporary file + ``os.replace``: a reader (no lock) sees a whole state or the previous one.
``<run_dir>/repository.applied.<slot>`` holds the highest ``seq`` that slot has applied (same
atomic write), so the worker that recorded a change can wait for the others to follow.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from service.errors import ServiceError

DESIRED_FILE = "repository.json"
LOCK_FILE = "repository.lock"


class DesiredStateError(ServiceError):
    """The desired-state file cannot be read or written (the run directory, the disk)."""

    status = 500


@dataclass(frozen=True)
class ModelEntry:
    """Whether the model should be served, and the change (sequence number) that said so last."""

    loaded: bool
    seq: int


@dataclass(frozen=True)
class DesiredState:
    """The repository every worker should serve (module docstring)."""

    seq: int = 0
    models: Mapping[str, ModelEntry] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)

    def changed(self, name: str, loaded: bool, default: str | None) -> DesiredState:
        """The next state: ``name`` loaded or not, its run-time default ``default`` (None: no
        override), sequence number one higher."""
        seq = self.seq + 1
        defaults = {k: v for k, v in self.defaults.items() if k != name}
        if default is not None:
            defaults[name] = default
        return replace(self, seq=seq, models={**self.models, name: ModelEntry(loaded, seq)}, defaults=defaults)

    def to_json(self) -> bytes:
        models = {name: {"loaded": e.loaded, "seq": e.seq} for name, e in sorted(self.models.items())}
        return orjson.dumps({"seq": self.seq, "models": models, "defaults": dict(self.defaults)})

    @classmethod
    def from_json(cls, data: bytes) -> DesiredState:
        raw = orjson.loads(data)
        models = {name: ModelEntry(bool(e["loaded"]), int(e["seq"])) for name, e in raw["models"].items()}
        return cls(int(raw["seq"]), models, {str(k): str(v) for k, v in raw["defaults"].items()})


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DesiredStateError(f"cannot write {path}: {exc}") from exc


@dataclass(frozen=True)
class DesiredStateFile:
    """The desired state and the per-slot applied sequence numbers of one run directory."""

    run_dir: Path

    @property
    def path(self) -> Path:
        return self.run_dir / DESIRED_FILE

    def read(self) -> DesiredState:
        """The last state written (the empty state before any change)."""
        try:
            return DesiredState.from_json(self.path.read_bytes())
        except FileNotFoundError:
            return DesiredState()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DesiredStateError(f"cannot read {self.path}: {exc}") from exc

    def stamp(self) -> tuple[int, int, int] | None:
        """(inode, mtime ns, size) of the file, None before the first change: a cheap "has it
        changed" (every write is a new file renamed into place, so a new inode while the previous
        file is still in place)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def update(self, change: Callable[[DesiredState], DesiredState]) -> DesiredState:
        """Read, ``change``, write, under the run's exclusive flock (blocking); the new state."""
        try:
            fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DesiredStateError(f"cannot open {self.run_dir / LOCK_FILE}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = change(self.read())
            write_atomically(self.path, state.to_json())
            return state
        finally:
            os.close(fd)  # releases the flock

    def applied_path(self, slot: int) -> Path:
        return self.run_dir / f"repository.applied.{slot}"

    def record_applied(self, slot: int, seq: int) -> None:
        """Slot ``slot`` serves the desired state up to change ``seq``."""
        write_atomically(self.applied_path(slot), str(seq).encode())

    def applied(self, slot: int) -> int:
        """The change slot ``slot`` last reported applied (-1: none reported yet)."""
        try:
            return int(self.applied_path(slot).read_bytes())
        except (FileNotFoundError, ValueError):
            return -1
