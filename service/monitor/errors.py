"""Typed errors of the monitor: ServiceErrors, each with the HTTP status the app answers with."""

from __future__ import annotations

from service.errors import ServiceError


class MonitorError(ServiceError):
    """Base class of every error the monitor raises on purpose (a ServiceError, so a CandorError)."""

    status = 500


class MonitorInputError(MonitorError, ValueError):
    """Unusable arguments: lengths differ, confidence outside [0, 1], negative label."""

    status = 422


class UnknownModelError(MonitorError, KeyError):
    """A (model, version) the monitor has neither a reference for nor seen traffic of."""

    status = 404

    def __init__(self, model: str, version: str) -> None:
        self.model = model
        self.version = version
        super().__init__(f"no calibration monitor for model '{model}' version '{version}'")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.message)


class StoreError(MonitorError):
    """The prediction store failed (disk, database, Redis unreachable); nothing was half-applied.
    Answered 503 with Retry-After: 1."""

    status = 503
    retry_after_s = 1
