"""One monitor across the worker processes of one ``candor serve --workers N`` (service.supervisor).

Every worker slot keeps its own Monitor and publishes that monitor's state to
``<run_dir>/monitor.<slot>.json`` (written to a temporary file, then renamed: a reader sees a
whole state or the previous one). The state is sums only (per-bin counts, confidence and correct
sums per time bucket, since-start sums, prediction histogram, per-class predicted counts and
probability sums per time bucket (the class mix), label delays, feedback outcomes), so
the fleet's state is the sum of the slots' states, read at the same ``now``:

    fleet window(now) = sum_s window_s(now),   fleet since_start = sum_s since_start_s, ...

and every figure (ECE, drift verdict, PSI, class-mix test, Prometheus counters) computed from the
sum is exact for the fleet, as if one process had seen every prediction and label.

When a slot publishes: after each applied feedback batch, before the feedback is answered (so a
kill -9 of the worker loses no accepted label's contribution), before every read (a scrape, a
calibration status, the UI), at most once a second from the prediction path (label-free counts:
a kill -9 loses at most the last second of them) and at shutdown. A restarted slot loads its own
file back, so cumulative counters never go backwards. A read publishes the reader's own state,
then sums every slot's file: each file only grows, so any sequence of reads, on any workers, sees
monotonic counters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from service.monitor.errors import StoreError

StateDict = dict[str, Any]


def state_path(run_dir: Path, slot: int) -> Path:
    """The file slot ``slot`` publishes its monitor state to."""
    return run_dir / f"monitor.{slot}.json"


@dataclass(frozen=True)
class SlotStates:
    """The state files of the ``n_slots`` slots of one supervisor run; this process is ``slot``."""

    run_dir: Path
    slot: int
    n_slots: int

    def publish(self, state: Mapping[str, Any]) -> None:
        """Write this slot's state atomically (temporary file + rename); StoreError on failure."""
        path = state_path(self.run_dir, self.slot)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))
            os.replace(tmp, path)
        except OSError as exc:
            raise StoreError(f"cannot publish monitor state {path}: {exc}") from exc

    def load(self, slot: int) -> StateDict | None:
        """The state slot ``slot`` published last, or None if it has published none."""
        path = state_path(self.run_dir, slot)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read monitor state {path}: {exc}") from exc
        state: StateDict = orjson.loads(data)
        return state

    def own(self) -> StateDict | None:
        """This slot's last published state (what a restarted worker starts from)."""
        return self.load(self.slot)

    def siblings(self) -> list[StateDict]:
        """Every other slot's last published state."""
        return [s for s in (self.load(i) for i in range(self.n_slots) if i != self.slot) if s is not None]
