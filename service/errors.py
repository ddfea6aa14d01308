"""One error base class carrying its HTTP status, the field and extra headers; one handler
(service.app.install_error_handlers) renders ``{"error", "field"}``. The monitor's errors
(service.monitor.errors) derive from it too."""

from __future__ import annotations

from calibration.errors import CandorError


class ServiceError(CandorError):
    """An error answered to the client with ``status`` and a JSON body naming the field."""

    status = 400
    retry_after_s: int | None = None  # set: answered with Retry-After (a retryable 503)

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    def body(self) -> dict[str, str | None]:
        """The JSON body: ``error`` (tritonclient reads it) and ``field``."""
        return {"error": str(self), "field": self.field}

    def headers(self) -> dict[str, str]:
        """Extra response headers: Retry-After when ``retry_after_s`` is set; subclasses add
        their own (WWW-Authenticate, Connection)."""
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class BadRequest(ServiceError):
    """Malformed or invalid request content."""

    status = 400


class ModelNotFound(ServiceError):
    """No such model (or version) is loaded."""

    status = 404


class PayloadTooLarge(ServiceError):
    """The request body exceeds ``max_body_bytes``."""

    status = 413


class BodyTimeout(ServiceError):
    """The request body did not arrive within ``body_timeout_s``; the connection is closed (the
    rest of the body, if it ever comes, cannot be told from a next request)."""

    status = 408

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class ArtifactError(ServiceError):
    """An artifact that cannot be served (bad ONNX, shapes not matching the manifest)."""

    status = 500


class Unauthorized(ServiceError):
    """Missing or wrong bearer token (the token itself is never echoed)."""

    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class LoadRefused(ServiceError):
    """A repository load refused: the artifact on disk cannot be served; the previous one stays."""

    status = 400


class Unavailable(ServiceError):
    """Temporarily unable to answer (queue full, deadline passed, shutting down): retry later."""

    status = 503

    def __init__(self, message: str, field: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message, field)
        self.retry_after_s = retry_after_s


class QueueFull(Unavailable):
    """The model version's bounded queue has no room for this request's instances."""


class DeadlineExceeded(Unavailable):
    """The request was not answered within ``request_timeout_s``."""
