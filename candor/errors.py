"""Errors of the shared runtime helpers (artifacts written by either stage or by the service)."""

from calibration.errors import CandorError


class ArtifactWriteError(CandorError):
    """An artifact could not be written; nothing was published."""


class ParityError(ArtifactWriteError):
    """ONNX Runtime does not reproduce the reference probabilities; no artifact is written."""
