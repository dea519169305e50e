"""Identity and suppression files: parsing, validation, normalisation and SHA-256 hashing.

An identity file joins shoppers (``user_id``, as in the event data) to the contact details a
campaign tool matches on. Columns: ``user_id`` (required) and any of ``email``, ``phone``,
``first_name``, ``last_name``, ``country``, ``postal_code``, ``consent_email``, ``consent_sms``,
``consent_ads``. A row that cannot be used (no user id, a malformed e-mail or phone, an
unknown country code, a consent value that is not yes/no, a repeated user id) is left out
and reported with its line number and reason: nothing is dropped silently.

Normalisation follows the platforms' documentation:

- e-mail: trimmed and lower-cased (Google Ads "Format your customer data file",
  support.google.com/google-ads/answer/7659867, and Meta's Custom Audience hashing rules);
  for Google only, the periods before ``@`` are removed for ``gmail.com`` and ``googlemail.com``
  addresses (Google's normalisation rule for hashed e-mails, e.g. Campaign Manager 360
  enhanced conversions, developers.google.com/doubleclick-advertisers/guides/conversions_ec:
  "remove all periods (.) that precede the domain name in gmail.com and googlemail.com
  e-mail addresses"). Google's documents do not say to drop a ``+suffix``, so it is kept.
- phone: E.164 (``+`` and digits) with Google's libphonenumber (``phonenumbers``), the row's
  country as the default region for numbers written locally.
- names: trimmed, lower-cased, inner runs of spaces collapsed; country: ISO 3166-1 alpha-2;
  postal code: trimmed.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.errors import SchemaError

IDENTITY_COLUMNS = ("user_id", "email", "phone", "first_name", "last_name", "country", "postal_code",
                    "consent_email", "consent_sms", "consent_ads")
CONSENT_COLUMNS = ("consent_email", "consent_sms", "consent_ads")
TRUE_VALUES = frozenset({"yes", "y", "true", "t", "1"})
FALSE_VALUES = frozenset({"no", "n", "false", "f", "0"})
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
SUPPRESSION_COLUMNS = ("user_id", "email")
#: Line number of the first data row (the header is line 1).
FIRST_DATA_LINE = 2
_SPACES = re.compile(r"\s+")


@dataclass
class RowProblem:
    """One unusable row of an uploaded file: its line (header = 1), the column, the value and why."""

    line: int
    column: str
    value: str
    reason: str

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "value": self.value, "reason": self.reason}


@dataclass
class IdentityTable:
    """A validated identity file.

    ``frame``: one row per usable shopper with the normalised columns present in the file
    (consent columns as bool); ``columns``: which of :data:`IDENTITY_COLUMNS` the file had;
    ``problems``: the rows left out and why; ``n_rows``: data rows read.
    """

    frame: pd.DataFrame
    columns: tuple[str, ...]
    problems: list[RowProblem] = field(default_factory=list)
    n_rows: int = 0

    @property
    def n_valid(self) -> int:
        return len(self.frame)

    def report(self) -> pd.DataFrame:
        """The problems as a table (line, column, value, reason) for display or download."""
        return pd.DataFrame([p.as_dict() for p in self.problems], columns=["line", "column", "value", "reason"])


@dataclass
class Suppression:
    """A suppression list: user ids and e-mail match keys (see :func:`email_match_key`) to remove always."""

    user_ids: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    problems: list[RowProblem] = field(default_factory=list)
    n_rows: int = 0

    def report(self) -> pd.DataFrame:
        """The unusable lines as a table (line, column, value, reason)."""
        return pd.DataFrame([p.as_dict() for p in self.problems], columns=["line", "column", "value", "reason"])


# --- normalisation -----------------------------------------------------------------------------------


def sha256_hex(value: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes of ``value`` (no salt), as the ad platforms expect."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased e-mail; raises ``SchemaError`` (column ``email``) when it is not an address."""
    from email_validator import EmailNotValidError, validate_email

    text = str(value).strip().lower()
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SchemaError(f"email {value!r} is not an e-mail address: {exc}", column="email", cases=[value]) from exc
    return text


def google_email(normalised: str) -> str:
    """Google's form of a normalised e-mail: periods before ``@`` removed for gmail.com / googlemail.com only."""
    local, _, domain = normalised.rpartition("@")
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def email_match_key(value: str) -> str:
    """Key used to match a suppression e-mail to a shopper's e-mail.

    Trimmed and lower-cased; for gmail.com / googlemail.com also without periods and
    ``+suffix`` in the local part and with the domain unified, because those all reach the
    same inbox: suppression errs toward removing, never toward contacting.
    """
    text = str(value).strip().lower()
    local, _, domain = text.rpartition("@")
    if domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def normalise_country(value: str) -> str:
    """ISO 3166-1 alpha-2 code, upper-case; raises ``SchemaError`` (column ``country``) for an unknown code."""
    import phonenumbers

    code = str(value).strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise SchemaError(f"country {value!r} is not an ISO 3166-1 alpha-2 code (expected e.g. GB, US, DE)",
                          column="country", cases=[value])
    return code


def normalise_phone(value: str, country: str | None = None) -> str:
    """E.164 form (``+442079460958``) of a phone number; a local number needs ``country`` (ISO-2).

    Raises ``SchemaError`` (column ``phone``) when the number cannot be parsed or is not a
    valid number for its region.
    """
    import phonenumbers

    text = str(value).strip()
    try:
        number = phonenumbers.parse(text, country or None)
    except phonenumbers.NumberParseException as exc:
        hint = "" if country or text.startswith("+") else " (a local number needs the row's country)"
        raise SchemaError(f"phone {value!r} cannot be read as a phone number{hint}: {exc}",
                          column="phone", cases=[value]) from exc
    if not phonenumbers.is_valid_number(number):
        raise SchemaError(f"phone {value!r} is not a valid number for region {country or 'unknown'}",
                          column="phone", cases=[value])
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_name(value: str) -> str:
    """Name trimmed, lower-cased, inner runs of white space made one space."""
    return _SPACES.sub(" ", str(value).strip().lower())


def parse_consent(value: str, column: str = "consent") -> bool:
    """True/False from yes/no, y/n, true/false, t/f, 1/0 (any case); ``SchemaError`` otherwise."""
    text = str(value).strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise SchemaError(f"{column} {value!r} is not a consent value (expected yes/no, true/false, 1/0, y/n)",
                      column=column, cases=[value])


# --- files -------------------------------------------------------------------------------------------


def _read_text(source: str | Path | bytes) -> str:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise SchemaError(f"file {str(path)!r} does not exist", column=None, cases=[str(path)])
        data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise SchemaError("the file is not text (cannot find its character encoding)") from None
        return str(best)


def _rows(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-cased, trimmed) and (line number, cells) for every non-blank data line."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows = []
    for cells in reader:
        if header is None:
            if not any(c.strip() for c in cells):
                continue
            header = [c.strip().lower() for c in cells]
            continue
        if any(c.strip() for c in cells):
            rows.append((reader.line_num, cells))
    return header or [], rows


def _identity_row(record: dict[str, str], columns: tuple[str, ...]) -> dict:
    out: dict = {"user_id": record["user_id"]}
    country = record.get("country", "")
    if "country" in columns:
        out["country"] = normalise_country(country) if country else None
    for col in columns:
        raw = record.get(col, "")
        if col in ("user_id", "country"):
            continue
        if not raw:
            out[col] = False if col in CONSENT_COLUMNS else None
        elif col == "email":
            out[col] = normalise_email(raw)
        elif col == "phone":
            out[col] = normalise_phone(raw, out.get("country"))
        elif col in ("first_name", "last_name"):
            out[col] = normalise_name(raw)
        elif col == "postal_code":
            out[col] = raw.strip()
        else:
            out[col] = parse_consent(raw, col)
    return out


def read_identities(source: str | Path | bytes) -> IdentityTable:
    """Read and validate an identity CSV (a path or the uploaded bytes).

    Returns an :class:`IdentityTable` whose frame holds one row per valid shopper, values
    normalised (see the module docstring); a blank consent cell counts as "no consent".
    Rows left out are listed in ``problems`` with line number (header = line 1), column,
    value and reason. Raises ``SchemaError`` when the file has no ``user_id`` column (the
    message lists the columns found) or no data row.
    """
    header, rows = _rows(_read_text(source))
    if "user_id" not in header:
        raise SchemaError(f"identity file has no 'user_id' column. Columns in the file: {header}; expected "
                          f"user_id and any of {list(IDENTITY_COLUMNS[1:])}", column="user_id", cases=header)
    columns = tuple(c for c in IDENTITY_COLUMNS if c in header)
    unknown = [c for c in header if c not in IDENTITY_COLUMNS]
    if unknown:
        raise SchemaError(f"identity file has unknown columns {unknown}; expected user_id and any of "
                          f"{list(IDENTITY_COLUMNS[1:])}", column=unknown[0], cases=unknown)
    if not rows:
        raise SchemaError("identity file has a header but no data rows", column="user_id")
    index = {c: header.index(c) for c in columns}
    good, problems, seen = [], [], set()
    for line, cells in rows:
        record = {c: (cells[i].strip() if i < len(cells) else "") for c, i in index.items()}
        if len(cells) != len(header):
            problems.append(RowProblem(line, "*", ",".join(cells), f"{len(cells)} cells, the header has {len(header)}"))
            continue
        if not record["user_id"]:
            problems.append(RowProblem(line, "user_id", "", "no user_id"))
            continue
        if record["user_id"] in seen:
            problems.append(RowProblem(line, "user_id", record["user_id"], "user_id repeated (first row kept)"))
            continue
        try:
            good.append(_identity_row(record, columns))
        except SchemaError as exc:
            problems.append(RowProblem(line, exc.column or "*", str(exc.cases[0]) if exc.cases else "", str(exc)))
            continue
        seen.add(record["user_id"])
    frame = pd.DataFrame(good, columns=list(columns))
    for col in CONSENT_COLUMNS:
        if col in frame:
            frame[col] = frame[col].astype(bool)
    return IdentityTable(frame=frame, columns=columns, problems=problems, n_rows=len(rows))


def read_suppression(source: str | Path | bytes) -> Suppression:
    """Read a suppression list: a CSV with a ``user_id`` and/or ``email`` column, or one value per line.

    In the one-per-line form a value holding ``@`` is an e-mail, anything else a user id.
    E-mails are kept as match keys (:func:`email_match_key`); a malformed e-mail is reported
    with its line number and left out. Raises ``SchemaError`` for an empty file.
    """
    text = _read_text(source)
    header, rows = _rows(text)
    if not header:
        raise SchemaError("suppression file is empty: expected user ids and/or e-mails, one per line, "
                          "or a CSV with a user_id or email column")
    ids: set[str] = set()
    emails: set[str] = set()
    problems: list[RowProblem] = []

    def add_email(value: str, line: int) -> None:
        try:
            emails.add(email_match_key(normalise_email(value)))
        except SchemaError as exc:
            problems.append(RowProblem(line, "email", value, str(exc)))

    if any(c in SUPPRESSION_COLUMNS for c in header):
        index = {c: header.index(c) for c in SUPPRESSION_COLUMNS if c in header}
        for line, cells in rows:
            values = {c: (cells[i].strip() if i < len(cells) else "") for c, i in index.items()}
            if not any(values.values()):
                problems.append(RowProblem(line, "*", ",".join(cells), "no user_id and no email"))
            if values.get("user_id"):
                ids.add(values["user_id"])
            if values.get("email"):
                add_email(values["email"], line)
        n_rows = len(rows)
    else:
        lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
        for line, value in lines:
            if "@" in value:
                add_email(value, line)
            else:
                ids.add(value)
        n_rows = len(lines)
    return Suppression(user_ids=frozenset(ids), emails=frozenset(emails), problems=problems, n_rows=n_rows)
