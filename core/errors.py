"""The few errors cartsight raises for bad input; the UI shows their message, never a traceback."""
from __future__ import annotations


class CartsightError(Exception):
    """Base class: the message is written for the analyst and is safe to show as is."""


class SchemaError(CartsightError):
    """Input does not fit the canonical schema (missing column, unreadable file, ...).

    ``cases`` holds the offending rows or values (at most a few) for display.
    """

    def __init__(self, message: str, *, column: str | None = None, cases: list | None = None):
        super().__init__(message)
        self.column = column
        self.cases = list(cases or [])


class DatasetExistsError(CartsightError):
    """A dataset with that name exists already."""


class DatasetNotFoundError(CartsightError):
    """No dataset with that name (or id)."""


class IngestCancelled(CartsightError):
    """The analyst cancelled a load; nothing of it was kept."""


class StoreUnavailableError(CartsightError):
    """The database cannot be reached or written (stopped server, read-only folder, full disk)."""


class NotFittedError(CartsightError):
    """A model or segmenter was used before ``fit``."""


class TrainingCancelled(CartsightError):
    """The analyst cancelled training; no model version was written."""


class ParameterError(CartsightError):
    """A parameter's value cannot be used (an output path, a dataset name); ``parameter`` names it."""

    def __init__(self, message: str, *, parameter: str):
        super().__init__(message)
        self.parameter = parameter
