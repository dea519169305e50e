"""The few errors cartsight raises for bad input; the UI shows their message, never a traceback."""
from __future__ import annotations


class CartsightError(Exception):
    """Base class: the message is written for the analyst and is safe to show as is."""


#: reason code of a SchemaError -> what it means; callers branch on the code, the analyst reads the message
SCHEMA_REASONS = {
    "invalid_input": "the input does not fit (the default, where no narrower reason is given)",
    "missing_column": "a column or key the input needs is not there",
    "ambiguous_column": "two columns of the input read as the same field",
    "bad_mapping": "a column mapping names a field or a column that does not exist",
    "bad_value": "a value in the input is not of the kind or in the range expected",
    "bad_shape": "the input's layout does not fit: its dimensions, column order or row order",
    "no_data": "the input holds no rows, events or usable values",
    "too_little_data": "the input holds too few days or shoppers for what was asked",
    "unreadable_file": "the file is missing, not text, or cannot be parsed in its format",
}


class SchemaError(CartsightError):
    """Input data does not fit the canonical schema (missing column, unreadable file, ...).

    ``column`` names the data column at fault (None when it is the whole file), ``cases``
    holds the offending rows or values (at most a few) for display, and ``reason`` is one
    of :data:`SCHEMA_REASONS` (``invalid_input`` unless the raiser says more). A bad
    function argument is a :class:`ParameterError`, not a SchemaError.
    """

    def __init__(self, message: str, *, column: str | None = None, cases: list | None = None,
                 reason: str = "invalid_input"):
        if reason not in SCHEMA_REASONS:
            raise ValueError(f"SchemaError reason {reason!r} is not one of {sorted(SCHEMA_REASONS)}")
        super().__init__(message)
        self.column = column
        self.cases = list(cases or [])
        self.reason = reason


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


class SegmentationCancelled(CartsightError):
    """The analyst cancelled a segmentation; no run was stored."""


class ParameterError(CartsightError):
    """A function argument or option cannot be used (an output path, ``k_range``, a ModelConfig field).

    ``parameter`` names it and ``cases`` holds the offending values (at most a few). It is no
    SchemaError: callers that show errors catch :class:`CartsightError`, the base of both.
    """

    def __init__(self, message: str, *, parameter: str, cases: list | None = None):
        super().__init__(message)
        self.parameter = parameter
        self.cases = list(cases or [])
