"""Time formats and time zones of an event file's time column: which format sample values are written in
(:func:`detect_time_format`), the zone a time ends in (:func:`split_time_zone`) and its offset from UTC."""
from __future__ import annotations

import re
import statistics

from core import config

#: time_format code -> what the analyst sees in the mapping editor
TIME_FORMATS = {
    "iso": "ISO 8601 (2019-10-01 00:00:00, optional T, offset or ' UTC'; 2019/10/01 too)",
    "unix_s": "Unix seconds (fractions allowed)",
    "unix_ms": "Unix milliseconds",
    "unix_us": "Unix microseconds (GA4's event_timestamp)",
    "excel": "Excel serial days (45352.5 = 2024-03-01 12:00: days since 1899-12-30, the fraction the time of day)",
    "mdy_hm": "MM-DD-YYYY HH:MM (or with / or .; two-digit years, seconds, AM/PM allowed)",
    "dmy_hm": "DD-MM-YYYY HH:MM (or with / or .; two-digit years, seconds, AM/PM allowed)",
    "month_name": "a month name (Mar 1, 2024 1:05 PM; 01-Mar-2024 10:05; Fri, 01 Mar 2024 10:05:00 GMT)",
    "ymd": "YYYYMMDD",
}

#: share of sampled time values a format must read to be chosen (the rest go to quarantine)
_TIME_MIN_SHARE = 0.8

#: microsecond times are taken only between 1990 and 2100: longer numbers are more often ids
_UNIX_US_FROM, _UNIX_US_TO = 6.3e14, 4.1e15
#: Excel serial days (a workbook's dates written into a CSV as numbers) are taken between 1954 and 2119
_EXCEL_FROM, _EXCEL_TO = 20_000, 80_000

_NUM = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")

_ISO = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?( [AaPp][Mm])?)?"
                  r"\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?$")
_OFFSET = re.compile(r"([+-]\d{2}(:?\d{2})?|Z)$")
_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})( \d{1,2}:\d{2}(:\d{2})?( [AaPp][Mm])?)?$")
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
#: a date with a month name, an optional weekday before it and clock and UTC/GMT after it (see TIME_FORMATS)
_MONTH_NAME = re.compile(rf"^([a-z]{{3,9}}, )?(\d{{1,2}}[- ]{_MONTH}[- ](\d{{4}}|\d{{2}})|{_MONTH} \d{{1,2}},? \d{{4}})"
                         r"(,? \d{1,2}:\d{2}(:\d{2})?( [ap]m)?)?( utc| gmt| z)?$", re.IGNORECASE)
_YMD = re.compile(r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])( \d{1,2}:\d{2}(:\d{2})?( [AaPp][Mm])?)?$")

_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?( [AaPp][Mm])?$")
_DATE_ONLY = re.compile(rf"^(\d{{4}}[-/]\d{{1,2}}[-/]\d{{1,2}}|\d{{1,2}}[-/.]\d{{1,2}}[-/.](\d{{4}}|\d{{2}})|"
                        rf"(19|20)\d{{6}}|\d{{1,2}}[- ]{_MONTH}[- ](\d{{4}}|\d{{2}})|{_MONTH} \d{{1,2}},? \d{{4}})$",
                        re.IGNORECASE)

#: a time's trailing time zone: an abbreviation (PST, CEST: config.TIME_ZONE_ABBREVIATIONS) or UTC/GMT with an
#: offset (GMT+2, UTC-05:30, UTC+0530); written for Python's re and DuckDB's RE2 alike (core.ingest.load reads it too)
TIME_ZONE_SUFFIX = r" ((?:UTC|GMT|utc|gmt)[+-][0-9]{1,2}(?::?[0-9]{2})?|[A-Za-z]{2,5}|[Zz])$"
_TIME_ZONE_SUFFIX = re.compile(TIME_ZONE_SUFFIX)
_ZONE_OFFSET = re.compile(r"^(?:UTC|GMT)([+-])(\d{1,2}(?::\d{2})?|\d{4})$", re.IGNORECASE)
#: the largest offset from UTC a zone has (Kiribati, UTC+14:00), in minutes
MAX_ZONE_OFFSET_MINUTES = 14 * 60

#: an abbreviation whose partner is in the same column means the zone listed for it: PDT beside PST is North
#: American Pacific time, not Philippine; BST beside GMT is British
_ZONE_PARTNERS = {"PST": "PDT", "MST": "MDT", "CST": "CDT", "CDT": "CST", "AST": "ADT", "BST": "GMT"}
#: abbreviations named in messages as examples of those read
ZONE_EXAMPLES = "PST, PDT, EST, EDT, CST, CET, CEST, BST, IST, JST, AEST"


def split_time_zone(value: str) -> tuple[str, str | None]:
    """``value`` without the time zone it ends in (``2019-10-01 00:00:00 PST``: see :data:`TIME_ZONE_SUFFIX`) and
    that zone upper-cased; ``value`` and None when it ends in none (AM and PM are a 12-hour clock's)."""
    m = _TIME_ZONE_SUFFIX.search(value)
    if not m or m.group(1).upper() in ("AM", "PM"):
        return value, None
    return value[:m.start()].rstrip(), m.group(1).upper()


def zone_offset_minutes(zone: str) -> int | None:
    """Minutes east of UTC of a zone :func:`split_time_zone` found (PST: -480; UTC+05:30: 330); None when the
    abbreviation is not in :data:`core.config.TIME_ZONE_ABBREVIATIONS` or the offset is past 14 hours."""
    if zone.upper() in config.TIME_ZONE_ABBREVIATIONS:
        return config.TIME_ZONE_ABBREVIATIONS[zone.upper()][0]
    m = _ZONE_OFFSET.match(zone)
    if not m:
        return None
    digits = m.group(2).replace(":", "")
    hours, minutes = (int(digits), 0) if len(digits) <= 2 else (int(digits[:-2]), int(digits[-2:]))
    total = hours * 60 + minutes
    return (-total if m.group(1) == "-" else total) if total <= MAX_ZONE_OFFSET_MINUTES and minutes < 60 else None


def _utc_offset_text(minutes: int) -> str:
    return f"UTC{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zone_notes(zones: list[str]) -> list[str]:
    """What the analyst is told of the time zones the sampled times end in: each is read with its offset, which
    abbreviations also name other zones, and which are unknown (their rows are quarantined)."""
    found = sorted(set(zones))
    if not found or found == ["UTC"]:
        return ["times carry a ' UTC' suffix: read as UTC"] if found else []
    known = [z for z in found if zone_offset_minutes(z) is not None]
    notes = []
    if known and not any(zone_offset_minutes(z) for z in known):
        notes.append(f"times end in {'/'.join(known)}: read as UTC")
    elif known:
        offsets = ", ".join(f"{z} = {_utc_offset_text(zone_offset_minutes(z))}" for z in known[:8])
        notes.append(f"times end in a time zone ({offsets}): each is read with its own offset and converted to UTC")
    for z in known:
        if z in config.TIME_ZONE_OTHER_MEANINGS and _ZONE_PARTNERS.get(z) not in found:
            minutes, name = config.TIME_ZONE_ABBREVIATIONS[z]
            notes.append(f"'{z}' is read as {name} ({_utc_offset_text(minutes)}); it also names "
                         f"{config.TIME_ZONE_OTHER_MEANINGS[z]}: if the file means another, write its times with "
                         "their UTC offset (such as +08:00) and load it again")
    if unknown := [z for z in found if z not in known]:
        notes.append(f"times end in {unknown[:5]}, no time zone known here (expected an abbreviation such as "
                     f"{ZONE_EXAMPLES} or an offset such as UTC+05:30): those rows will be quarantined, not read "
                     "as UTC")
    return notes


def detect_time_format(values: list[str]) -> tuple[str | None, list[str]]:
    """The time format of sample ``values`` (see :data:`TIME_FORMATS`) and notes; None when none fits.

    A format fits when it reads at least ``_TIME_MIN_SHARE`` of the non-empty values; the
    rest will be quarantined as unparseable, and a note says so.
    """
    written = [v.strip() for v in values if v and v.strip()]
    if not written:
        return None, []
    split = [split_time_zone(v) for v in written]  # a zone at the end is read in any format
    vals = [local for local, _ in split]
    notes: list[str] = []
    found = _first_fitting_format(vals, notes)
    if found is None:
        return None, notes
    fmt, hits = found
    if fmt and len(hits) < len(vals):
        read = set(hits)
        odd = [w for w, v in zip(written, vals) if v not in read][:3]
        notes.append(f"some times are not in the detected format (for example {odd}): those rows will be "
                     "quarantined")
    if fmt:
        zones = [z for _, z in split if z]
        notes.extend(n for n in _zone_notes(zones) if n not in notes)
        if zones and (bare := [w for w, (_, z) in zip(written, split) if not z and not _OFFSET.search(w)]):
            notes.append(f"some times carry no time zone (like {bare[0]!r}) where others do: read as UTC")
    return fmt, notes


def _first_fitting_format(vals: list[str], notes: list[str]) -> tuple[str | None, list[str]] | None:
    """``(format, the values it reads)`` of the first shape (ISO, year first, a number, day and month, a month's
    name) that reads at least ``_TIME_MIN_SHARE`` of ``vals``, the format None for a number of no known
    epoch; None when no shape fits. ``notes`` gets what the analyst should know of the choice."""
    need = _TIME_MIN_SHARE * len(vals)

    def fits(pattern: re.Pattern) -> list[str]:
        hits = [v for v in vals if pattern.match(v)]
        return hits if len(hits) >= need else []

    if iso := fits(_ISO):
        offsets = {m.group(1) for v in iso if len(v) > 10 and (m := _OFFSET.search(v)) and not v.endswith("UTC")}
        if len(offsets) > 1:
            notes.append(f"times carry different UTC offsets ({', '.join(sorted(offsets)[:4])}): converted to UTC")
        elif any(v.endswith("UTC") for v in iso):
            notes.append("times carry a ' UTC' suffix: read as UTC")
        return "iso", iso
    if ymd := fits(_YMD):
        return "ymd", ymd
    if nums := fits(_NUM):
        return _number_format(nums, notes), nums
    if dmy := fits(_DMY):
        return _day_month_order(dmy, notes), dmy
    if named := fits(_MONTH_NAME):
        return "month_name", named
    return None


def _number_format(nums: list[str], notes: list[str]) -> str | None:
    """The epoch and unit of times written as numbers, from their median: Unix seconds, milliseconds or
    microseconds, or Excel serial days; None for a number in none of their ranges."""
    mid = statistics.median(float(v) for v in nums)
    fmt = ("unix_ms" if 1e11 <= mid < 1e14 else "unix_s" if 1e8 <= mid < 1e11
           else "unix_us" if _UNIX_US_FROM <= mid < _UNIX_US_TO
           else "excel" if _EXCEL_FROM <= mid < _EXCEL_TO else None)
    if fmt == "excel":
        notes.append("times are Excel serial day numbers (45352.5 is 2024-03-01 12:00): read as days since "
                     "1899-12-30, to the second")
    return fmt


def _day_month_order(dmy: list[str], notes: list[str]) -> str:
    """Day first or month first, from which of the two numbers goes above 12; when neither does, day first for
    dates written with dots (German, Russian, Scandinavian… exports: no convention writes month-first dates with
    dots), else month first."""
    matches = [_DMY.match(v) for v in dmy]
    firsts = [int(m.group(1)) for m in matches]
    seconds = [int(m.group(2)) for m in matches]
    if max(firsts) > 12 >= max(seconds):
        return "dmy_hm"
    if max(seconds) > 12 >= max(firsts):
        return "mdy_hm"
    if all(m.group(0)[len(m.group(1))] == "." for m in matches):  # 07.12.2026: dots are a day-first convention
        notes.append("dates could be month-first or day-first; read as DD.MM.YYYY (day first: dates written with "
                     "dots are)")
        return "dmy_hm"
    notes.append("dates could be month-first or day-first; read as MM-DD-YYYY (month first)")
    return "mdy_hm"
