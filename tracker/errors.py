"""Typed errors the commands turn into one-line messages."""
from __future__ import annotations


class FacetrackError(Exception):
    """Base class: a user-facing problem with a clear message."""


class AnnotationError(FacetrackError, ValueError):
    """A landmark file is missing, malformed or truncated."""

    def __init__(self, path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class OutputError(FacetrackError):
    """A result file that cannot be written."""


class UsageError(FacetrackError):
    """Command-line options that do not fit together."""


class ModelError(FacetrackError):
    """A model file that is missing or unusable."""
