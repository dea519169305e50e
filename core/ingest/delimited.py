"""Reading the head of an event file as delimited text: refusing workbooks, archives, binary files and JSON,
the character encoding, the delimiter, and the lines above the header that are no part of the table."""
from __future__ import annotations

import codecs
import csv
import gzip
import re
import statistics
import zipfile
from pathlib import Path

from core import config
from core.ingest.columns import _PROFILE_ROWS, _looks_like_header
from core.errors import SchemaError

DELIMITERS = (",", "\t", ";", "|", " ")
#: how the Data page and the load's messages name each delimiter
DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", " ": "whitespace"}
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
#: bytes 0x80-0x9F: control characters in Latin-1 that no text holds, but Windows-1252's curly quotes,
#: dashes, euro sign and trademark sign (Excel's "CSV" on a Western Windows writes Windows-1252)
C1_BYTES = re.compile(rb"[\x80-\x9f]")
#: decoding errors of Windows-1252's five unassigned bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) keep them as
#: Latin-1 characters, as Windows itself reads them: nothing of the file is replaced
_KEEP_AS_LATIN1 = "cartsight-keep-as-latin-1"
codecs.register_error(_KEEP_AS_LATIN1, lambda err: (err.object[err.start:err.end].decode("latin-1"), err.end))

#: non-blank lines above the header a file may have that are no part of its table (see _preamble)
_MAX_PREAMBLE_ROWS = 10
#: a sniff window whose control characters (other than tab, CR, LF and NUL) exceed this share is not text
_MAX_CONTROL_SHARE = 0.01
#: share of the sampled rows that must have the header's number of fields for a delimiter to be trusted
_MIN_DELIMITER_SHARE = 0.5

_JSON_START = re.compile(r'^[\[{]\s*[\[{]?\s*"[^"\n]{0,200}"\s*:')


# --- reading the head of the file ---------------------------------------------------------------


def _read_head(path: Path) -> tuple[bytes, str | None, bool]:
    """The first SNIFF_BYTES (decompressed), the compression, and whether the whole file fitted."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    compression = "gzip" if magic == b"\x1f\x8b" else None
    opener = gzip.open if compression else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(config.SNIFF_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise SchemaError(f"{path.name}: the gzip data is damaged ({exc}); expected a readable .csv.gz file",
                          reason="unreadable_file") from exc
    return head[: config.SNIFF_BYTES], compression, len(head) <= config.SNIFF_BYTES


_SAVE_AS_CSV = "expected a CSV/TSV file of events: open it in its program and save or export it as CSV (UTF-8)"
#: leading bytes of file kinds analysts upload by mistake (often renamed .csv), and what to call them
_MAGIC = (
    # a readable .xls shares this container and is read as a spreadsheet (core.ingest.tabular) before this is asked
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (Word, PowerPoint) or a damaged Excel "
                                            "97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
)


_UNZIP = "expected a CSV/TSV file of events: unzip it and upload the file inside (a .csv.gz file is read as it is)"


def _zip_kind(path: Path) -> tuple[str, str]:
    """What a ZIP container is, in the analyst's words (workbooks are ZIP files inside), and what to do."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            mimetype = zf.read("mimetype").decode("ascii", "replace") if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, KeyError):
        return "a damaged ZIP archive", _UNZIP
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook (.xlsx)", _SAVE_AS_CSV
    if any(n.startswith("word/") for n in names) or "opendocument.text" in mimetype:
        return "a word-processor document", _SAVE_AS_CSV
    shown = [n for n in names if not n.endswith("/")][:3]
    return f"a ZIP archive holding {', '.join(shown) or 'nothing'}", _UNZIP


def _refuse_non_text(head: bytes, path: Path, compression: str | None) -> None:
    """Raise :class:`SchemaError` naming the file's kind when it is a workbook, archive or other binary file."""
    name = path.name
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind, advice = _zip_kind(path) if compression is None else ("a gzip-compressed ZIP archive", _UNZIP)
        raise SchemaError(f"{name} is {kind}, not a CSV file (was it renamed?); {advice}", reason="unreadable_file")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise SchemaError(f"{name} is {kind}, not a CSV file (was it renamed?); {_SAVE_AS_CSV}",
                              reason="unreadable_file")
    if b"\x00" in head:
        text = head.replace(b"\x00", b"")
        # a few NUL bytes in text (a damaged or zero-padded file) are quarantined row by row at load;
        # a file made of them, or binary bytes around them, is no text file
        if not text.strip() or _control_share(text) > _MAX_CONTROL_SHARE:
            raise SchemaError(f"{name} looks like a binary file (it contains NUL bytes), not a delimited text "
                              "file; expected a CSV/TSV file of events", reason="unreadable_file")


def _refuse_json(text: str, name: str) -> None:
    """Raise :class:`SchemaError` when the text is JSON (an array of objects, or JSON lines), not CSV."""
    if _JSON_START.match(text.lstrip("\ufeff \t\r\n")):
        raise SchemaError(f"{name} is JSON, not a delimited text file; expected a CSV/TSV file of events (a header "
                          "row, then one event per line): export the data as CSV", reason="unreadable_file")


def _detect_encoding(head: bytes, name: str) -> str:
    """'utf-8-sig' for a BOM, 'utf-8' when it decodes (or mostly does), else, when it is text at all,
    'cp1252' (Windows-1252) when it holds bytes 0x80-0x9F and 'latin-1' when not (a later 0x80-0x9F byte
    turns a Latin-1 file into Windows-1252 at load: :func:`core.ingest.load.ingest_file`)."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    head = head.replace(b"\x00", b"")  # stray NUL bytes (see _refuse_non_text) say nothing of the encoding
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
            return "utf-8"
    decoded = head.decode("utf-8", errors="replace")
    bad = decoded.count("\ufffd")
    if sum(1 for ch in decoded if ch > "\x7f") - bad > bad:
        return "utf-8"  # UTF-8 with a few lines in another encoding (files joined): those lines are quarantined
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    if best is None or _control_share(head) > _MAX_CONTROL_SHARE:
        raise SchemaError(f"{name} does not look like text (no character encoding fits it); "
                          "expected a CSV/TSV file of events in UTF-8 or Latin-1", reason="unreadable_file")
    return "cp1252" if C1_BYTES.search(head) else "latin-1"


def decode_errors(encoding: str) -> str:
    """The ``errors`` argument to decode text of ``encoding`` with: nothing is lost that the encoding has."""
    return _KEEP_AS_LATIN1 if encoding == "cp1252" else "replace"


def _control_share(data: bytes) -> float:
    bad = sum(1 for b in data if b < 32 and b not in (9, 10, 13))
    return bad / max(1, len(data))


def _lines(text: str, complete: bool) -> list[str]:
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the sniff window cut the last line
    return [ln for ln in lines if ln.strip()]


def _split(lines: list[str], delimiter: str) -> list[list[str]]:
    """The rows of ``lines``: a quoted field may run over several lines (a description with line breaks),
    unless reading so makes the rows less consistent than reading line by line (a quote opened and never
    closed swallows the lines after it into one field)."""
    if delimiter == " ":
        return [ln.split() for ln in lines]
    # one field may fill the whole sniff window (a 1 MB line); the csv module refuses fields over its limit
    csv.field_size_limit(max(csv.field_size_limit(), config.SNIFF_BYTES + 1))
    try:
        rows = list(csv.reader((ln + "\n" for ln in lines), delimiter=delimiter))
    except csv.Error:
        rows = []
    rows = [[v.removesuffix("\n") for v in r] if r and r[-1].endswith("\n") else r for r in rows]
    if len(rows) == len(lines):
        return rows
    by_line = [_split_line(ln, delimiter) for ln in lines]
    return rows if rows and _consistency(rows) >= _consistency(by_line) else by_line


def _consistency(rows: list[list[str]]) -> float:
    """The share of rows with the most common number of fields."""
    counts = [len(r) for r in rows]
    return counts.count(statistics.mode(counts)) / len(counts) if counts else 0.0


def _split_line(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _preamble(rows: list[list[str]], n_cols: int) -> int:
    """How many leading rows are no part of the table: a report's title, its date range, a blank-padded
    ``Sales report,,,,`` as Excel writes a title cell, above a header. 0 when the table starts at once.

    They fill less than half of the table's width, and the first row that fills more is a header."""
    for k, row in enumerate(rows[:_MAX_PREAMBLE_ROWS + 1]):
        if 2 * sum(1 for v in row if v.strip()) > n_cols:
            return k if k and len(row) >= n_cols and _looks_like_header(row, rows[k + 1:]) else 0
    return 0


def comment_lines(lines: list[str]) -> int:
    """How many leading lines are a comment block above the table: lines that begin with ``#``, as Google
    Analytics, Google Ads and Search Console write a report's account, property and dates above its header.
    The last of them is the table's header when it splits into as many fields as the line after it
    (``#user,time,event`` above ``u1,…``). 0 when the file begins with its table."""
    k = 0
    while k < len(lines) - 1 and lines[k].lstrip().startswith("#"):
        k += 1
    if k:
        delimiter, rows, _ = _detect_delimiter(lines[k:k + _PROFILE_ROWS])
        if rows and len(rows[0]) > 1 and len(_split_line(lines[k - 1], delimiter)) == len(rows[0]):
            k -= 1
    return k


def _rows_before(text: str, lines: int) -> int:
    """How many non-blank lines the file's first ``lines`` lines hold (the rows :func:`_lines` keeps of them)."""
    return sum(1 for line in re.split(r"\r\n|\r|\n", text)[:lines] if line.strip())


def _physical_lines_before(text: str, rows: int) -> int:
    """The file's lines (blank ones included, as DuckDB counts them) before its ``rows``-th non-blank line."""
    if not rows:
        return 0
    seen = 0
    for i, line in enumerate(re.split(r"\r\n|\r|\n", text)):
        if line.strip():
            if seen == rows:
                return i
            seen += 1
    return 0


def _detect_delimiter(lines: list[str]) -> tuple[str, list[list[str]], bool]:
    """The delimiter that splits most rows, and the header, into the same number of fields (>1); ties make it
    unsure.

    Ranked by: a real delimiter whose count is the consistent majority's (at least ``_MIN_DELIMITER_SHARE``
    of the rows) before whitespace, then whether the header row has that count too, then the share of
    consistent rows and their width. Whitespace is the last resort: REES46 times (``2019-10-01 00:00:00
    UTC``) put two spaces on every line, so a few ragged lines would otherwise make a space-split file look
    more consistent than its commas.
    """
    scored = []
    for delim in DELIMITERS:
        rows = _split(lines[:_PROFILE_ROWS], delim)
        counts = [len(r) for r in rows]
        if not counts:
            continue
        mode = statistics.mode(counts)
        share = counts.count(mode) / len(counts)
        if mode > 1:
            majority = delim != " " and share >= _MIN_DELIMITER_SHARE
            header_agrees = _header_width(rows, mode) == mode
            scored.append(((majority, header_agrees, share, mode), -DELIMITERS.index(delim), delim))
    if not scored:
        return ",", _split(lines, ","), False
    scored.sort(reverse=True)
    best = scored[0]
    rivals = [s for s in scored[1:] if s[0] == best[0] and " " not in (s[2], best[2])]
    return best[2], _split(lines, best[2]), not rivals


def _header_width(rows: list[list[str]], n_cols: int) -> int:
    """The fields of the first row that fills more than half of ``n_cols`` (lines above a header, a report's
    title or its date, fill less: see :func:`_preamble`)."""
    return next((len(r) for r in rows[:_MAX_PREAMBLE_ROWS + 1] if 2 * sum(1 for v in r if v.strip()) > n_cols), 0)
