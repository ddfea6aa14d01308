"""One error base class carrying its HTTP status; one handler renders ``{"error", "field"}``."""

from __future__ import annotations

from calibration.errors import CandorError


class ServiceError(CandorError):
    """An error answered to the client with ``status`` and a JSON body naming the field."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    def body(self) -> dict[str, str | None]:
        """The JSON body: ``error`` (tritonclient reads it) and ``field``."""
        return {"error": str(self), "field": self.field}

    def headers(self) -> dict[str, str]:
        """Extra response headers (Retry-After, WWW-Authenticate); none by default."""
        return {}


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

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class QueueFull(Unavailable):
    """The model version's bounded queue has no room for this request's instances."""


class DeadlineExceeded(Unavailable):
    """The request was not answered within ``request_timeout_s``."""
