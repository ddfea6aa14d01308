"""Typed errors of the training stage; the CLI prints them as one line naming the file and the fix."""

from calibration.errors import CandorError


class TrainingError(CandorError):
    """Base class for errors a user can fix (bad option, missing data, bad run directory)."""


class DataNotFoundError(TrainingError):
    """A data set's files are missing."""


class RunDirectoryError(TrainingError):
    """A run directory lacks a file a command needs (checkpoint, calibration)."""


class DataFormatError(TrainingError):
    """A data file exists but its contents are not what the reader expects (the message says why)."""
