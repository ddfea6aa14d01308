"""One owner per store file: an exclusive ``flock`` on a file beside it, held while the store is open.

``flock`` belongs to the open file description, so a second handle is refused whether it is in
another process or in this one, and the lock goes with the descriptor when a process dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from service.monitor.errors import StoreError

SEPARATE_STATE = (
    "give each candor process its own state_dir, or share predictions between replicas with a redis:// store_url"
)


def open_exclusively(path: Path, flags: int, what: str) -> int:
    """Open (create) ``path`` with ``flags`` and take its exclusive flock; the descriptor holds
    the lock until closed. StoreError naming ``what`` (e.g. "prediction log /s/p.db.pending")
    when another handle holds the lock or the file cannot be opened."""
    try:
        fd = os.open(path, flags | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open {what}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"{what} is in use by another store handle or process; {SEPARATE_STATE}") from exc
    return fd
