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


class BadRequest(ServiceError):
    """Malformed or invalid request content."""

    status = 400


class ModelNotFound(ServiceError):
    """No such model (or version) is loaded."""

    status = 404


class PayloadTooLarge(ServiceError):
    """The request body exceeds ``max_body_bytes``."""

    status = 413


class ArtifactError(ServiceError):
    """An artifact that cannot be served (bad ONNX, shapes not matching the manifest)."""

    status = 500
