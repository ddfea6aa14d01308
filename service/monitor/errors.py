"""Typed errors of the monitor; each carries the HTTP status the app should answer with."""

from __future__ import annotations

from calibration.errors import CandorError


class MonitorError(CandorError):
    """Base class of every error the monitor raises on purpose (a CandorError)."""

    status_code: int = 500


class MonitorInputError(MonitorError, ValueError):
    """Unusable arguments: lengths differ, confidence outside [0, 1], negative label."""

    status_code = 422


class UnknownModelError(MonitorError, KeyError):
    """A (model, version) the monitor has neither a reference for nor seen traffic of."""

    status_code = 404

    def __init__(self, model: str, version: str) -> None:
        self.model = model
        self.version = version
        super().__init__(f"no calibration monitor for model '{model}' version '{version}'")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class StoreError(MonitorError):
    """The prediction store failed (disk, database, Redis unreachable); nothing was half-applied."""

    status_code = 503
