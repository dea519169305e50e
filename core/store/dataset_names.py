"""What a dataset may be called: the check every new dataset's name passes, wherever it is made.

A name is shown in page headings, tables and file names and typed on the command line, so it
must be visible text: 1 to :data:`core.config.DATASET_NAME_MAX_CHARS` characters, not all
spaces, no space at either end (``--dataset x`` would not find ``" x"``), and no control
character: tabs and line breaks (Unicode categories Cc, Zl, Zp) break tables and CLI output,
and bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F) make a name read
differently from what it is. A name of invisible characters only (zero-width spaces, a
byte-order mark, soft hyphens: Unicode category Cf, and blanks such as U+3164 that fonts draw as
nothing) reads as no name, and one that starts or ends with such a character looks like another
name that ``--dataset`` would not find: both are refused like blank names.
"""
from __future__ import annotations

import unicodedata

from core import config
from core.errors import ParameterError

_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Letters fonts draw as empty space (Hangul fillers, the blank Braille pattern).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_CONTROL_NAMES = {"\t": "tab", "\n": "line feed", "\r": "carriage return", "\x00": "NUL", "\x1b": "escape"}
_SHOWN_CHARS = 40
_FALLBACK = "dataset"
EXPECTED = (f"expected 1 to {config.DATASET_NAME_MAX_CHARS} characters, not all spaces, with no space at either end "
            "and no control characters (tabs, line breaks)")


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in _CONTROL_CATEGORIES or ch in _BIDI_CONTROLS


def _is_invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf" or ch in _BLANK_LETTERS


def name_problem(name: object) -> str | None:
    """What is wrong with ``name`` as a new dataset's name ("is blank", "has a control character (tab, …"), else None."""
    if not isinstance(name, str):
        return f"is {type(name).__name__}, not text"
    if not name:
        return "is empty"
    if all(_is_invisible(ch) for ch in name):
        return "is blank (no visible character)"
    if len(name) > config.DATASET_NAME_MAX_CHARS:
        return f"is {len(name):,} characters long"
    for i, ch in enumerate(name):
        if _is_control(ch):
            label = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "control character").lower()
            return f"has a control character ({label}, U+{ord(ch):04X}) at position {i + 1}"
    if _is_invisible(name[0]) or _is_invisible(name[-1]):
        return "starts or ends with a space or an invisible character"
    return None


def shown(name: object) -> str:
    """``name`` quoted for a message: control characters escaped, a long name cut with "…"."""
    if not isinstance(name, str) or len(name) <= _SHOWN_CHARS:
        return repr(name)
    return repr(name[:_SHOWN_CHARS]) + f"… ({len(name):,} characters)"


def refusal(name: object) -> str | None:
    """The message refusing ``name`` for a new dataset (the name, what is wrong, what is expected), else None."""
    problem = name_problem(name)
    return None if problem is None else f"The dataset name {shown(name)} {problem}: {EXPECTED}."


def check_dataset_name(name: object) -> None:
    """Raise :class:`ParameterError` (parameter ``name``) with the :func:`refusal` message for an unusable name."""
    message = refusal(name)
    if message is not None:
        raise ParameterError(message, parameter="name")


def usable_dataset_name(text: str) -> str:
    """``text`` (a file name, say) made a name :func:`check_dataset_name` accepts.

    Control characters are dropped, the text trimmed (of invisible characters too) and cut to the longest name allowed;
    "dataset" when nothing is left.
    """
    kept = _trimmed("".join(ch for ch in text if not _is_control(ch)))
    return _trimmed(kept[: config.DATASET_NAME_MAX_CHARS]) or _FALLBACK


def _trimmed(text: str) -> str:
    """``text`` without spaces and invisible characters at either end."""
    start, end = 0, len(text)
    while start < end and _is_invisible(text[start]):
        start += 1
    while end > start and _is_invisible(text[end - 1]):
        end -= 1
    return text[start:end]
