"""Typed errors of the calibration core."""


class CandorError(Exception):
    """Base of every error a user can fix; the CLI prints it as one line and exits 2."""


class CalibrationError(CandorError, ValueError):
    """Base class: bad input to a metric, a map or a manifest."""


class MetricInputError(CalibrationError):
    """Probabilities / labels that a metric cannot be computed on (shape, range, NaN)."""


class ManifestError(CalibrationError):
    """A manifest that cannot be read, does not match the schema, or does not match its ONNX file."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        super().__init__(f"{path}: field '{field}': {problem}")


class InputError(CalibrationError):
    """Raw instances an artifact cannot take (shape, NaN, outside the input range); ``field`` names
    the element, e.g. ``instances[0][3][7]``. The service answers it as a 400 naming that field."""

    def __init__(self, message: str, field: str) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}")
