"""Identity and suppression files: parsing, validation, normalisation and SHA-256 hashing.

An identity file joins shoppers (``user_id``, as in the event data) to the contact details a
campaign tool matches on: ``user_id`` (required) and any of ``email``, ``phone``,
``first_name``, ``last_name``, ``country``, ``postal_code``, ``consent_email``, ``consent_sms``,
``consent_ads``.

How a file is read (identity and suppression files alike), so that exports of the tools
analysts use load as they are:

- text in UTF-8 (a byte-order mark is dropped) or whatever ``charset-normalizer`` finds
  (Excel's UTF-16 "Unicode text", Windows-1252); cells separated by ``,`` ``;`` tab or ``|``,
  whichever splits the header into more than one cell the same way as the lines below it;
- a header cell is compared after lower-casing and dropping everything but letters and
  digits, against :data:`core.campaigns.contact_fields.COLUMN_SYNONYMS`: ``Customer ID`` (Shopify), ``customer_id``,
  ``userid``, ``External ID`` (Klaviyo) read as ``user_id``; ``Email`` (Klaviyo, Shopify),
  ``Email Address`` (Mailchimp), ``E-mail`` as ``email``; ``Phone Number``, ``mobile`` as
  ``phone``; ``Default Address Country Code`` / ``Default Address Zip`` (Shopify) as country
  and postal code; ``Accepts Email Marketing`` (Shopify), ``Email Marketing Consent``
  (Klaviyo), ``email_consent`` as ``consent_email``; ``Accepts SMS Marketing``,
  ``sms_consent`` as ``consent_sms``; ``ads_consent``, ``advertising_consent`` as
  ``consent_ads``. A bare ``id`` is not taken as the user id (it is as often another system's
  key), nor are Google's consent-mode signals ``ad_user_data`` / ``ad_personalization``.
  Other columns (a Shopify export's ``Total Spent``, ``Tags``, …) are ignored and listed; two
  columns that read as the same one refuse the file, naming both.
- a cell's leading apostrophe before a number (``'5792498270270``, ``'+447911123456``: how
  spreadsheet exports keep ids and phones as text) is dropped, and so is Excel's text formula
  around a value (``="00123"``); any other apostrophe stays;
- a user id a spreadsheet wrote as a float (``510791900.0``) is matched as the whole number
  (``510791900``), on the shoppers' side too, and noted; one in scientific notation
  (``5.11251202E+08``) has lost its last digits: an identity row with one is left out and a
  suppression file with one is refused (format the column as text and save again);
- consent cells: yes/no, y/n, true/false, t/f, 1/0, on/off, subscribed/unsubscribed (Klaviyo's
  ``SUBSCRIBED`` / ``NEVER_SUBSCRIBED``, Mailchimp's statuses: ``pending``, ``cleaned``,
  ``transactional`` and ``archived`` are not consent), opted in/out, granted/denied (any case;
  spaces, ``_`` and ``-`` inside a word ignored). A blank cell is "no consent".

A row without a user id, with a repeated one (the first is kept, but a consent any repeat does
not give is withdrawn, and an e-mail a repeat gives still matches the suppression list) or with the
wrong number of cells is left out (cells past the header's last named column count only when they
hold something: a spreadsheet's trailing empty columns are no part of the table). A bad field does not cost the row its other fields: a malformed e-mail or
phone, an unknown country code is left blank and a consent value that is not one of the above
counts as "no consent", the rest of the row is kept. Each is reported with its line number
(header = line 1), column, value, the whole reason and what was done: nothing is dropped
silently. Normalisation (e-mail, phone, country, names, consent values) and hashing, and the
header names each column is read under, live in :mod:`core.campaigns.contact_fields`.

A suppression list is read the same way and matched on ``user_id`` and ``email`` only. A file
whose header names neither (``contact,reason``; a ``phone`` column) is refused, never read as
values: an unreadable suppression list must stop the export, not let everyone through. Reading
errs toward suppressing: an e-mail written with a display name or as a link (``Ann <ann@x.com>``,
``mailto:ann@x.com``) is read as its address, and a row with more or fewer cells than the header
(a name holding an unquoted comma) has every e-mail in any of its cells used, and is reported. A file
of one column without such a header is a plain list, one value per line: a value holding ``@``
is an e-mail, anything else a user id.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.campaigns.contact_fields import (CONSENT_COLUMNS, IDENTITY_COLUMNS, accepted_names, email_match_key, match_columns,
                                 normalise_country, normalise_email, normalise_name, normalise_phone, parse_consent,
                                 user_id_key)
from core.errors import SchemaError


SUPPRESSION_COLUMNS = ("user_id", "email")
#: Cell separators an identity or suppression file may use (never a space: names and phones hold spaces).
DELIMITERS = (",", ";", "\t", "|")
#: Lines looked at to choose the delimiter.
SNIFF_LINES = 200
#: Line number of the first data row (the header is line 1).
FIRST_DATA_LINE = 2
#: What happened to a row or field a :class:`RowProblem` reports.
ROW_LEFT_OUT = "row left out"
ROW_SCANNED = "read by position; every e-mail in any of its cells used"
FIELD_BLANKED = "field left blank, row kept"
NO_CONSENT_ASSUMED = "counted as no consent, row kept"
VALUE_NOT_USED = "value not used"
#: a user id matched as the whole number a spreadsheet wrote as a float (510791900.0): the note's outcome
ID_READ_AS_WHOLE = "matched as the whole number"
#: a number a spreadsheet wrote in scientific notation (5.11251202E+08): its last digits are lost
_SCIENTIFIC = re.compile(r"\d(\.\d+)?[eE]\+\d+")
_ID_FIX = "format the column as text in the spreadsheet and save again"
_SEP_LINE = re.compile(r"sep=(.)", re.IGNORECASE)
_QUOTED_NUMBER = re.compile(r"'([+(]?\d[\d\s().-]*)")
_TEXT_FORMULA = re.compile(r'="(.*)"')


@dataclass
class RowProblem:
    """One problem of an uploaded file: its line (header = 1), the column, the value, why, and what was done."""

    line: int
    column: str
    value: str
    reason: str
    outcome: str = ROW_LEFT_OUT

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "value": self.value, "reason": self.reason,
                "outcome": self.outcome}


PROBLEM_COLUMNS = ("line", "column", "value", "reason", "outcome")


@dataclass
class IdentityTable:
    """A validated identity file.

    ``frame``: one row per usable shopper with the normalised columns present in the file
    (consent columns as bool); ``columns``: which of :data:`IDENTITY_COLUMNS` the file had;
    ``repeat_emails``: normalised e-mails a user id's repeated rows give besides the kept row's
    (a shopper with an old and a new address): a suppression list matching any of them removes them;
    ``source_names``: the file's header name of each of them; ``ignored``: header names not
    used; ``problems``: rows left out and fields blanked, and why; ``n_rows``: data rows read.
    """

    frame: pd.DataFrame
    columns: tuple[str, ...]
    problems: list[RowProblem] = field(default_factory=list)
    n_rows: int = 0
    source_names: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    repeat_emails: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def n_valid(self) -> int:
        return len(self.frame)

    @property
    def n_left_out(self) -> int:
        """Rows left out whole (no or repeated user id, wrong number of cells)."""
        return sum(1 for p in self.problems if p.outcome == ROW_LEFT_OUT)

    @property
    def n_fields_blanked(self) -> int:
        """Fields of kept rows that were left blank or counted as no consent."""
        return sum(1 for p in self.problems if p.outcome in (FIELD_BLANKED, NO_CONSENT_ASSUMED))

    def report(self) -> pd.DataFrame:
        """The problems as a table (line, column, value, reason, outcome) for display or download."""
        return pd.DataFrame([p.as_dict() for p in self.problems], columns=list(PROBLEM_COLUMNS))


@dataclass
class Suppression:
    """A suppression list: user ids and e-mail match keys (see :func:`email_match_key`) to remove always.

    ``source_names``: the file's header name of ``user_id`` / ``email`` (empty for a plain list).
    """

    user_ids: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    problems: list[RowProblem] = field(default_factory=list)
    n_rows: int = 0
    source_names: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    @property
    def n_left_out(self) -> int:
        return sum(1 for p in self.problems if p.outcome != ID_READ_AS_WHOLE)

    def report(self) -> pd.DataFrame:
        """The unusable lines as a table (line, column, value, reason, outcome)."""
        return pd.DataFrame([p.as_dict() for p in self.problems], columns=list(PROBLEM_COLUMNS))


# --- user ids ----------------------------------------------------------------------------------------


def _id_problem(line: int, value: str) -> RowProblem | None:
    """Why a user id cannot be trusted as written (scientific notation has lost digits), or a note that it is
    matched as a whole number; None for an id matched as it is."""
    if _SCIENTIFIC.fullmatch(value):
        return RowProblem(line, "user_id", value, f"user_id {value!r} is in scientific notation: a spreadsheet "
                          f"rounded it and its last digits are lost, so it cannot be matched to the right shopper; "
                          f"{_ID_FIX}")
    if user_id_key(value) != value:
        return RowProblem(line, "user_id", value, f"user_id {value!r} is a whole number written as a float by a "
                          f"spreadsheet: matched as {user_id_key(value)!r}", ID_READ_AS_WHOLE)
    return None


# --- files -------------------------------------------------------------------------------------------


def _read_text(source: str | Path | bytes) -> str:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise SchemaError(f"file {str(path)!r} does not exist", column=None, cases=[str(path)],
                              reason="unreadable_file")
        data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        # a UTF-8 byte-order mark before text in another encoding (a Windows-1252 file an editor marked)
        best = from_bytes(data.removeprefix(b"\xef\xbb\xbf")).best()
        if best is None:
            raise SchemaError("the file is not text (cannot find its character encoding)",
                              reason="unreadable_file") from None
        return str(best).lstrip("\ufeff")


def sniff_delimiter(text: str) -> str:
    """The one of :data:`DELIMITERS` that splits the header into more than one cell and the most of the first
    lines into as many; ``,`` when none splits the header (a list of one value per line). A first line
    ``sep=;`` (Excel's delimiter hint) names it."""
    lines = [line for line in text.splitlines()[:SNIFF_LINES] if line.strip()]
    named = _SEP_LINE.fullmatch(lines[0].strip()) if lines else None
    if named and named.group(1) in DELIMITERS:
        return named.group(1)
    best: tuple[float, int, str] = (0.0, 1, ",")
    for delimiter in DELIMITERS:
        try:
            counts = [len(cells) for cells in csv.reader(lines, delimiter=delimiter)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        share = counts.count(counts[0]) / len(counts)
        if (share, counts[0]) > best[:2]:
            best = (share, counts[0], delimiter)
    return best[2]


def _rows(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (cells trimmed) and (line number, cells) for every non-blank data line."""
    try:
        delimiter = sniff_delimiter(text)
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        header: list[str] | None = None
        rows = []
        for cells in reader:
            if header is None:
                if any(c.strip() for c in cells) and not _SEP_LINE.fullmatch(delimiter.join(cells).strip()):
                    header = [c.strip() for c in cells]
                continue
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise SchemaError(f"the file cannot be read as delimited text (line {reader.line_num}: {exc})",
                          reason="unreadable_file") from exc
    return header or [], rows


def _cell(cells: list[str], position: int) -> str:
    """A cell trimmed, without the apostrophe a spreadsheet export puts before a number or the ``="…"`` formula
    Excel users put around a value to keep it text."""
    text = cells[position].strip() if position < len(cells) else ""
    quoted = _QUOTED_NUMBER.fullmatch(text) or _TEXT_FORMULA.fullmatch(text)
    return quoted.group(1).strip() if quoted else text


def _fits(cells: list[str], header: list[str]) -> bool:
    """Whether a row has the header's cells: a missing one only under a blank header name, an extra one empty."""
    if len(cells) > len(header):
        return not any(c.strip() for c in cells[len(header):])
    return not any(header[len(cells):])


def _unquoted(value: str) -> str:
    """A value of a plain list without the double quotes some tools put around every value."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('""', '"').strip()
    return value


def _clean(column: str, raw: str, country: str | None):
    """One identity field normalised; ``SchemaError`` naming the column when it is not usable."""
    if column == "email":
        return normalise_email(raw)
    if column == "phone":
        return normalise_phone(raw, country)
    if column == "country":
        return normalise_country(raw)
    if column in ("first_name", "last_name"):
        return normalise_name(raw)
    if column == "postal_code":
        return raw.strip()
    return parse_consent(raw, column)


def _identity_row(record: dict[str, str], columns: tuple[str, ...], line: int,
                  problems: list[RowProblem]) -> dict:
    """The row's normalised fields; a bad one is left blank (consent: False) and reported, the rest kept."""
    out: dict = {"user_id": record["user_id"]}
    for column in sorted(columns, key=lambda c: c != "country"):  # the country first: phones are read in it
        raw = record.get(column, "")
        if column == "user_id":
            continue
        consent = column in CONSENT_COLUMNS
        out[column] = False if consent else None
        if not raw:
            continue
        try:
            out[column] = _clean(column, raw, out.get("country"))
        except SchemaError as exc:
            problems.append(RowProblem(line, column, raw, str(exc), NO_CONSENT_ASSUMED if consent else FIELD_BLANKED))
    return out


def _repeated(first: dict, record: dict[str, str], columns: tuple[str, ...]) -> str:
    """The reason for a repeated user id's row; a consent it does not give (no, blank, unreadable) is withdrawn
    from the kept first row: every row of a shopper must say yes."""
    withdrawn = []
    for column in columns:
        if column in CONSENT_COLUMNS and first[column]:
            try:
                yes = bool(record[column]) and parse_consent(record[column], column)
            except SchemaError:
                yes = False
            if not yes:
                first[column] = False
                withdrawn.append(column)
    extra = f"; its {', '.join(withdrawn)} withdrawn: every row of a shopper must say yes" if withdrawn else ""
    return f"user_id repeated (first row kept{extra})"


def _identity_header(header: list[str]) -> tuple[dict[str, int], tuple[str, ...]]:
    found, ignored = match_columns(header)
    if "user_id" not in found:
        raise SchemaError(f"identity file has no 'user_id' column. Columns in the file: {header}; expected a user id "
                          f"column named one of: {accepted_names('user_id')} (any case, spaces or punctuation), "
                          f"and any of {list(IDENTITY_COLUMNS[1:])}", column="user_id", cases=header,
                          reason="missing_column")
    return found, ignored


def read_identities(source: str | Path | bytes) -> IdentityTable:
    """Read and validate an identity file (a path or the uploaded bytes), as the module docstring describes.

    Returns an :class:`IdentityTable` whose frame holds one row per kept shopper, values
    normalised; a blank or unreadable consent cell counts as "no consent", any other bad field
    is left blank. Rows left out and fields blanked are listed in ``problems`` with line number
    (header = line 1), column, value, reason and outcome. Raises ``SchemaError`` when no header
    cell reads as the user id (the message lists the columns found and the names accepted),
    when two read as the same column, or when the file has no data row.
    """
    header, rows = _rows(_read_text(source))
    found, ignored = _identity_header(header)
    if not rows:
        raise SchemaError("identity file has a header but no data rows", column="user_id", reason="no_data")
    columns = tuple(c for c in IDENTITY_COLUMNS if c in found)
    problems: list[RowProblem] = []
    kept: dict[str, dict] = {}
    repeat_emails: dict[str, set[str]] = {}
    for line, cells in rows:
        record = {c: _cell(cells, i) for c, i in found.items()}
        id_problem = _id_problem(line, record["user_id"])
        if not _fits(cells, header):
            problems.append(RowProblem(line, "*", ",".join(cells), f"{len(cells)} cells, the header has {len(header)}"))
            continue
        if id_problem is not None:  # a scientific one is left out: never matched to a wrong shopper
            problems.append(id_problem)
            if id_problem.outcome == ROW_LEFT_OUT:
                continue
            record["user_id"] = user_id_key(record["user_id"])
        if not record["user_id"]:
            problems.append(RowProblem(line, "user_id", "", "no user_id"))
        elif record["user_id"] in kept:
            reason = _repeated(kept[record["user_id"]], record, columns)
            _other_email(repeat_emails, kept[record["user_id"]], record)
            problems.append(RowProblem(line, "user_id", record["user_id"], reason))
        else:
            kept[record["user_id"]] = _identity_row(record, columns, line, problems)
    frame = pd.DataFrame(list(kept.values()), columns=list(columns))
    for col in CONSENT_COLUMNS:
        if col in frame:
            frame[col] = frame[col].astype(bool)
    return IdentityTable(frame=frame, columns=columns, problems=problems, n_rows=len(rows),
                         source_names={c: header[i] for c, i in found.items()}, ignored=ignored,
                         repeat_emails={u: frozenset(e) for u, e in repeat_emails.items()})


def _other_email(found: dict[str, set[str]], first: dict, record: dict[str, str]) -> None:
    """Note the e-mail of a repeated user id's row when it is a usable one other than the kept row's."""
    try:
        email = normalise_email(record["email"]) if record.get("email") else None
    except SchemaError:
        return
    if email and email != first.get("email"):
        found.setdefault(record["user_id"], set()).add(email)


def _suppression_mode(header: list[str]) -> tuple[dict[str, int], tuple[str, ...]] | None:
    """Where the user id / e-mail columns are and the header names not used, or None for a plain list of one value
    per line."""
    found, ignored = match_columns(header)
    usable = {c: i for c, i in found.items() if c in SUPPRESSION_COLUMNS}
    if usable:
        return usable, ignored + tuple(header[i] for c, i in found.items() if c not in SUPPRESSION_COLUMNS)
    if len(header) == 1 and not found:
        return None
    raise SchemaError(f"suppression file has no user id or e-mail column. Columns in the file: {header}; expected "
                      f"a user id column named one of: {accepted_names('user_id')}, and/or an e-mail column named one "
                      f"of: {accepted_names('email')} (any case, any of the delimiters , ; tab |). Nothing is exported "
                      "until the list can be read.", column="user_id", cases=header, reason="missing_column")


def read_suppression(source: str | Path | bytes) -> Suppression:
    """Read a suppression list: a file with a user id and/or e-mail column (any of the names and delimiters of
    the module docstring), or one value per line.

    In the one-per-line form a value holding ``@`` is an e-mail, anything else a user id.
    E-mails are kept as match keys (:func:`email_match_key`); a malformed e-mail is reported
    with its line number and left out. Raises ``SchemaError`` for an empty file, a header
    with neither a user id nor an e-mail column, two columns read as the same one, or a file
    of which not one value can be used.
    """
    text = _read_text(source)
    header, rows = _rows(text)
    if not header:
        raise SchemaError("suppression file is empty: expected user ids and/or e-mails, one per line, "
                          "or a file with a user id or e-mail column", reason="no_data")
    mode = _suppression_mode(header)
    if mode is None:
        rows = _plain_rows(text)
    index, ignored = mode or ({}, ())
    suppression = _suppression_values(rows, index, header)
    suppression.source_names = {c: header[i] for c, i in index.items()}
    suppression.ignored = ignored
    if not rows:
        raise SchemaError(f"suppression file has a header ({header}) but no rows", column="user_id", reason="no_data")
    if not suppression.user_ids and not suppression.emails:
        raise SchemaError(f"suppression file has {suppression.n_rows:,} rows but not one usable user id or e-mail "
                          f"(columns used: {suppression.source_names or 'one value per line'}): nothing is exported "
                          "with a suppression list that suppresses no one", column="user_id", reason="no_data")
    return suppression


def _plain_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line, [value]) of a plain list; ``SchemaError`` for a line of several cells (a table under a title line
    is not a list of values: read as one, it would suppress no one)."""
    rows = []
    for line, value in enumerate(text.splitlines(), start=1):
        value = _unquoted(_cell([value], 0))
        if not value or (line == 1 and _SEP_LINE.fullmatch(value)):
            continue
        if any(d in value for d in DELIMITERS):
            raise SchemaError(f"suppression file line {line} holds several cells ({value!r}) but its first line "
                              "names no user id or e-mail column: put the header (e.g. customer_id or Email "
                              "Address) on the first line, or give one value per line", column="user_id",
                              cases=[value], reason="bad_shape")
        rows.append((line, [value]))
    return rows


def _suppression_email(value: str) -> str:
    """The match key of a suppression e-mail, also when written with a display name or as a link
    (``Ann <ann@example.com>``, ``mailto:ann@example.com``); ``SchemaError`` when no address is in it."""
    from email.utils import parseaddr

    try:
        return email_match_key(normalise_email(value))
    except SchemaError:
        address = parseaddr(re.sub(r"(?i)^\s*<?mailto:", "", value))[1]
        if not address or address == value:
            raise
        return email_match_key(normalise_email(address))


def _row_emails(cells: list[str]) -> set[str]:
    """The e-mail match keys of every cell of a row that holds one."""
    found = set()
    for cell in cells:
        if "@" in cell:
            try:
                found.add(_suppression_email(cell.strip()))
            except SchemaError:
                pass
    return found


def _suppression_values(rows: list[tuple[int, list[str]]], index: dict[str, int],
                        header: list[str] | None = None) -> Suppression:
    """The ids and e-mail keys of the rows; ``index`` empty for one value per line (``@`` makes an e-mail).
    A row that does not fit the header has every e-mail in it used, and is reported."""
    ids: set[str] = set()
    emails: set[str] = set()
    problems: list[RowProblem] = []
    for line, cells in rows:
        if index:
            values = {c: _cell(cells, i) for c, i in index.items()}
        else:
            values = {"email" if "@" in cells[0] else "user_id": cells[0]}
        if not any(values.values()):
            problems.append(RowProblem(line, "*", ",".join(cells), "no user_id and no email", VALUE_NOT_USED))
        if values.get("user_id"):
            ids.add(_suppression_id(line, values["user_id"], problems))
        if index and header and not _fits(cells, header):
            problems.append(RowProblem(line, "*", ",".join(cells), f"{len(cells)} cells, the header has "
                                       f"{len(header)}", ROW_SCANNED))
            emails |= _row_emails(cells)
        if values.get("email"):
            try:
                emails.add(_suppression_email(values["email"]))
            except SchemaError as exc:
                problems.append(RowProblem(line, "email", values["email"], str(exc), VALUE_NOT_USED))
    return Suppression(user_ids=frozenset(ids), emails=frozenset(emails), problems=problems, n_rows=len(rows))


def _suppression_id(line: int, value: str, problems: list[RowProblem]) -> str:
    """The match key of a suppression user id (:func:`user_id_key`); ``SchemaError`` for one in scientific
    notation: its shopper cannot be known, and a list that misses them must stop the export."""
    problem = _id_problem(line, value)
    if problem is not None and problem.outcome == ROW_LEFT_OUT:
        raise SchemaError(f"suppression file line {line}: {problem.reason}. Nothing is exported until the list "
                          "can be read.", column="user_id", cases=[value], reason="bad_value")
    if problem is not None:
        problems.append(problem)
    return user_id_key(value)
