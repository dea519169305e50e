"""The SQL of a load: reading the file, converting and checking every field, and selecting what is stored.

DuckDB does the heavy work. One SQL pass reads the file with ``read_csv`` (every field as text,
streamed), converts each field (prices past their currency and separators, whole quantities, times
in the file's format and time zone) and gives each bad row a reason code and a detail naming the
column, the value and what was expected (:meth:`LoadSQL._rules`). The builders here only write SQL
and its bound values; :mod:`core.ingest.load` runs them.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from core import config
from core.ingest.lines import LineStats
from core.ingest.prepare import _DUCKDB_MAX_LINE_BYTES, _NUL_SHOWN_AS, Progress, _Source
from core.ingest.sniff import Mapping
from core.ingest.prices import price_pattern
from core.ingest.time_formats import MAX_ZONE_OFFSET_MINUTES, TIME_ZONE_SUFFIX, ZONE_EXAMPLES
from core.ingest.transactions import UNPAID_STATUSES

_MIN_TIME = "1971-01-01"
_MAX_TIME = "2100-01-01"
#: largest magnitude of microseconds since 1970 that DuckDB's TIMESTAMP and BIGINT hold
_MAX_EPOCH_US = 9.2e18
#: times of day after a date read by its pattern (MM-DD-YYYY, DD-MM-YYYY, YYYYMMDD): 24-hour, then 12-hour
#: with AM/PM (US exports)
_CLOCKS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p")
#: microseconds per unit of each Unix time format
_UNIX_SCALE = {"unix_s": 1_000_000, "unix_ms": 1_000, "unix_us": 1}
#: files with more columns than this carry their raw fields through the checks as one list
_WIDE_COLUMNS = 64


def stored_brand(spelled: str) -> str:
    """SQL of the brand an event stores, from the column ``spelled`` holding it as the file spells it (trimmed):
    the lower-cased form, which matches however a file spells it (the spellings shown: core.store.brand_names)."""
    return f"lower({spelled})"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _patterns(dates: list[str]) -> str:
    """A DuckDB list of strptime patterns: each date with each clock (a 24-hour one first: "1:05 PM" fails it
    and reads on), then the date alone."""
    return f"[{', '.join(_sql_literal(p) for p in [f'{d} {c}' for c in _CLOCKS for d in dates] + dates)}]"


#: shapes of a date with a month name once :func:`_month_name_text` has tidied it (%y before %Y: see mdy_hm)
_MONTH_NAME_DATES = ["%b %d, %Y", "%b %d %Y", "%d %b %y", "%d %b %Y", "%d-%b-%y", "%d-%b-%Y"]


def _month_name_text(v: str) -> str:
    """``v`` with no weekday before it (``Fri, ``), no UTC/GMT/Z after it, no comma before its clock and its
    month's name cut to three letters (March, Sept. -> Mar, Sep: DuckDB's %b reads only those)."""
    bare = f"regexp_replace({v}, '^[A-Za-z]{{3,9}}, | (?i:utc|gmt|z)$', '', 'g')"
    unclocked = f"regexp_replace({bare}, '([0-9]{{4}}), ([0-9]{{1,2}}:)', '\\1 \\2')"
    return (f"regexp_replace({unclocked}, '(?i)\\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\\.?', "
            f"'\\1')")


def _price_sql(raw: str, decimal_comma: bool) -> str:
    """The price written in ``raw`` as a DOUBLE: a plain number at once; else read past its currency, spaces,
    thousands separators and a trailing ``.-`` (see :func:`core.ingest.sniff.price_pattern`: $12.50, 12,50 €,
    CHF 1'234.-), an accounting negative (5.00) as -5.00. NULL when it is no number (quarantined as such).
    Only the rows the plain cast fails pay the regexes."""
    if decimal_comma:  # a point is a thousands separator there, never the decimal one
        plain = f"CASE WHEN NOT contains({raw}, '.') THEN try_cast(replace({raw}, ',', '.') AS DOUBLE) END"
    else:
        plain = f"try_cast({raw} AS DOUBLE)"
    pattern = _sql_literal(price_pattern(decimal_comma))
    # brackets and minus signs before the digits (one bracket pair or one minus: a negative), then the digits
    parts = f"regexp_replace({raw}, {pattern}, '\\1\\3\\6\\7\\2\\4#\\5')"
    signed = f"regexp_replace(regexp_replace({parts}, '^(\\(\\)|[-\\x{{2212}}])#', '-'), '^#', '')"
    grouping = "[.' \\x{00a0}\\x{202f}\\x{2009}\\x{2019}]" if decimal_comma else \
        "[,' \\x{00a0}\\x{202f}\\x{2009}\\x{2019}]"
    number = f"regexp_replace({signed}, {_sql_literal(grouping)}, '', 'g')"
    if decimal_comma:
        number = f"replace({number}, ',', '.')"
    return (f"coalesce({plain}, CASE WHEN regexp_full_match({raw}, {pattern}) "
            f"THEN try_cast({number} AS DOUBLE) END)")


def _quantity_sql(raw: str) -> str:
    """The whole number written in ``raw`` (2, 2.0, 1e3) as a BIGINT; NULL for any other text (2.5 too, which
    DuckDB's cast would round to 3), quarantined as no whole number."""
    d = f"try_cast({raw} AS DOUBLE)"
    return (f"CASE WHEN contains({raw}, '.') OR contains({raw}, 'e') OR contains({raw}, 'E') "
            f"THEN CASE WHEN {d} = trunc({d}) THEN try_cast({d} AS BIGINT) END ELSE try_cast({raw} AS BIGINT) END")


def _offset_minutes(zone: str) -> str:
    """SQL of the minutes east of UTC of ``zone`` (as :func:`core.ingest.sniff.zone_offset_minutes`): NULL when unknown."""
    named = " ".join(f"WHEN {_sql_literal(z)} THEN {minutes}"
                     for z, (minutes, _) in config.TIME_ZONE_ABBREVIATIONS.items())
    digits = f"replace(substr({zone}, 5), ':', '')"
    hours = (f"CAST(CASE WHEN length({digits}) <= 2 THEN {digits} ELSE left({digits}, length({digits}) - 2) END "
             "AS INTEGER)")
    minutes = f"CASE WHEN length({digits}) <= 2 THEN 0 ELSE CAST(right({digits}, 2) AS INTEGER) END"
    total = f"({hours} * 60 + {minutes})"
    signed = f"(CASE WHEN substr({zone}, 4, 1) = '-' THEN -1 ELSE 1 END) * {total}"
    offset = (f"CASE WHEN regexp_full_match({zone}, '(?i)(utc|gmt)[+-]([0-9]{{1,2}}(:[0-9]{{2}})?|[0-9]{{4}})') "
              f"AND {minutes} < 60 AND {total} <= {MAX_ZONE_OFFSET_MINUTES} THEN {signed} END")
    return f"CASE upper({zone}) {named} ELSE {offset} END"


def _trimmed(col: str) -> str:
    # trim() costs ten times a prefix/suffix test, and padded values are rare
    return (f"NULLIF(CASE WHEN starts_with({col}, ' ') OR ends_with({col}, ' ') THEN trim({col}) "
            f"ELSE {col} END, '')")


def _status_key_sql(raw: str) -> str:
    """SQL of :func:`core.ingest.sniff.status_key` of the trimmed text ``raw``."""
    return f"regexp_replace(regexp_replace(lower({raw}), '[\\s-]+', '_', 'g'), '^wc_', '')"


#: SQL of the unpaid statuses as a list to test a status key against
_UNPAID_SQL = f"({', '.join(_sql_literal(s) for s in UNPAID_STATUSES)})"


def _ident_list(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


class LoadSQL:
    """One load's SQL and the bound values that go with it: the pass that reads the file into the checked table
    (:meth:`_check_sql`, its rules in :meth:`_rules`), and the selects of the good rows and of the quarantine.
    Holds the names of the load's temporary tables; :class:`core.ingest.load._Job` runs the stages."""

    def __init__(self, mapping: Mapping, source: _Source, tmp: Path, progress: Progress | None,
                 has_nul: bool = False, nested: tuple[str, ...] = (), lines: LineStats | None = None):
        self.mapping, self.source, self.delimiter, self.encoding = mapping, source, source.delimiter, source.encoding
        self.has_nul = has_nul
        self.nested = set(nested)  # columns whose values may be a list or an object (core.ingest.tabular.Converted)
        self.lines = lines
        #: only a file holding quotes can have a field that runs over several lines (each counted per row)
        self.multiline = lines is not None and lines.quotes
        #: whether some row runs over several lines: then row numbers are turned into line numbers
        self.rows_over_lines = False
        self.shifted = False
        self.tmp, self.progress = tmp, progress
        tag = uuid.uuid4().hex[:12]
        self.chk, self.rej, self.rej_scan = f"cs_chk_{tag}", f"cs_rej_{tag}", f"cs_rejscan_{tag}"
        self.rej_lines, self.skipped = f"cs_rejlines_{tag}", f"cs_skipped_{tag}"
        self.blanks, self.dups, self.raws = f"cs_blanks_{tag}", f"cs_dups_{tag}", f"cs_raws_{tag}"
        self.repeats, self.shifts = f"cs_repeats_{tag}", f"cs_shifts_{tag}"
        self.prior, self.repeated = f"cs_prior_{tag}", f"cs_repeated_{tag}"
        self.n_cols = len(mapping.source_columns)
        self.col_of = {n: f"c{i}" for i, n in enumerate(mapping.source_columns)}
        self.header_lines = mapping.skip_lines + (1 if mapping.has_header else 0)
        self.row0 = 0
        self.started = time.perf_counter()
        self.source_name = ""  # the file's name as the analyst knows it
        #: whether any line before a staged row was not staged (rejected or blank): else row n is line header + n + 1
        self.any_skipped = True

    # -- SQL pieces ------------------------------------------------------------------------------------------

    def _read_expr(self) -> str:
        cols = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in _ident_list(self.n_cols)) + "}"
        gz = self.source.compression == "gzip"
        options = [
            f"columns = {cols}", f"header = {str(self.mapping.has_header).lower()}",
            f"delim = {_sql_literal(self.delimiter)}", "quote = '\"'", "escape = '\"'",
            "auto_detect = false", "store_rejects = true", f"max_line_size = {_DUCKDB_MAX_LINE_BYTES}",
            f"rejects_table = '{self.rej}'", f"rejects_scan = '{self.rej_scan}'",
            f"encoding = {_sql_literal('latin-1' if self.encoding == 'latin-1' else 'utf-8')}",
            f"compression = {_sql_literal('gzip' if gz else 'none')}", f"skip = {int(self.mapping.skip_lines)}",
        ]
        return f"read_csv(?, {', '.join(options)})"

    def _loaded_columns(self) -> list[tuple[str, str]]:
        """(source column name, its identifier) of every column whose values are loaded, in file order."""
        names = {src for fld, src in self.mapping.columns.items() if src}
        names.update(c for c in self._side_columns() if c)
        return [(n, self.col_of[n]) for n in self.mapping.source_columns if n in names]

    def _side_columns(self) -> tuple[str | None, ...]:
        """The columns read beside the canonical fields: category fallback, time of day, status, amount refunded."""
        m = self.mapping
        return m.category_fallback, m.time_of_day, m.status_column, m.refund_column

    def _col(self, fld: str) -> str | None:
        src = self.mapping.columns.get(fld)
        return self.col_of[src] if src else None

    def _name(self, fld: str) -> str:
        """The source column name quoted for a printf template (% doubled)."""
        return repr(self.mapping.columns[fld]).replace("%", "%%")

    def _time_raw(self, date: str) -> str:
        """The time as written: the event_time column, with the time-of-day column after it when there is one."""
        if not self.mapping.time_of_day:
            return date
        clock = _trimmed(self.col_of[self.mapping.time_of_day])
        return f"CASE WHEN {date} IS NULL THEN NULL ELSE concat_ws(' ', {date}, {clock}) END"

    def _time_expr(self, v: str) -> str:
        fmt = self.mapping.time_format
        if fmt == "iso":
            # DuckDB's cast reads "2024-03-01 1:05 PM" as 01:05: a 12-hour clock is parsed by its pattern
            twelve = ", ".join(_sql_literal(f"{d} {c}") for c in _CLOCKS[2:] for d in ("%Y-%m-%d", "%Y/%m/%d"))
            return (f"CASE WHEN {v} LIKE '% UTC' THEN try_cast(left({v}, -4) AS TIMESTAMP) "
                    f"WHEN (ends_with({v}, 'M') OR ends_with({v}, 'm')) AND regexp_matches({v}, ' [AaPp][Mm]$') "
                    f"THEN try_strptime({v}, [{twelve}]) "
                    f"WHEN regexp_matches({v}, '([+-][0-9]{{2}}(:?[0-9]{{2}})?)$') AND length({v}) > 10 "
                    # Shopify writes "2024-03-01 10:00:00 +0100": the cast takes the offset only when it is attached
                    f"THEN make_timestamp(epoch_us(try_cast(regexp_replace({v}, ' ([+-][0-9]{{2}}(:?[0-9]{{2}})?)$', "
                    f"'\\1') AS TIMESTAMPTZ))) "
                    f"WHEN NOT contains(substr({v}, 12), ' ') THEN try_cast({v} AS TIMESTAMP) END")
        if fmt in _UNIX_SCALE:
            scale = _UNIX_SCALE[fmt]
            d = f"try_cast({v} AS DOUBLE)"
            # a number too large for a timestamp is a time out of range (an infinity), not a crash of the cast
            return (f"CASE WHEN NOT isfinite({d}) THEN NULL "
                    f"WHEN abs({d}) * {scale} >= {_MAX_EPOCH_US!r} THEN CASE WHEN {d} > 0 "
                    f"THEN TIMESTAMP 'infinity' ELSE TIMESTAMP '-infinity' END "
                    f"ELSE make_timestamp(CAST(round({d} * {scale}) AS BIGINT)) END")
        if fmt == "excel":  # day 0 is 1899-12-30 (Excel's leap day of 1900 folded in); 2958465 is 9999-12-31
            d = f"try_cast({v} AS DOUBLE)"
            return (f"CASE WHEN {d} >= 0 AND {d} < 2958466 THEN TIMESTAMP '1899-12-30' + "
                    f"to_seconds(CAST(round({d} * 86400) AS BIGINT)) END")
        if fmt == "month_name":
            return f"try_strptime({_month_name_text(v)}, {_patterns(_MONTH_NAME_DATES)})"
        dates = {"mdy_hm": ["%m-%d-%Y", "%m/%d/%Y", "%m.%d.%Y"], "dmy_hm": ["%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y"],
                 "ymd": ["%Y%m%d"]}[fmt]
        if fmt == "ymd":
            return f"try_strptime({v}, {_patterns(dates)})"
        # %Y reads the year '24' as 0024: a two-digit year (3/1/24, as Excel writes m/d/yy) takes %y patterns
        short = [d.replace("%Y", "%y") for d in dates]
        return (f"CASE WHEN regexp_matches({v}, '^[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.][0-9]{{2}}( |$)') "
                f"THEN try_strptime({v}, {_patterns(short)}) ELSE try_strptime({v}, {_patterns(dates)}) END")

    def _zone(self, v: str) -> str:
        """SQL of the time zone ``v`` ends in (:data:`core.ingest.sniff.TIME_ZONE_SUFFIX`; AM and PM are no zone), else NULL.

        Only values ending in a letter, or holding UTC or GMT before an offset, pay for the pattern (the
        last character is cut with substr: right() costs ten times as much); ISO times ending in ' UTC'
        are read by their format."""
        fmt = self.mapping.time_format
        if fmt in _UNIX_SCALE or fmt == "excel":
            return "CAST(NULL AS VARCHAR)"
        last = f"substr({v}, length({v}), 1)"
        utc = f" OR ends_with({v}, ' UTC')" if fmt == "iso" else ""
        named = " OR ".join(f"contains({v}, '{t}')" for t in ("TC", "MT", "tc", "mt"))  # UTC+2, gmt-05:00
        return (f"CASE WHEN {v} IS NULL{utc} THEN NULL "
                f"WHEN {last} BETWEEN 'A' AND 'Z' OR {last} BETWEEN 'a' AND 'z' OR {named} THEN "
                f"CASE WHEN regexp_matches({v}, ' [AaPp][Mm]$') THEN NULL "
                f"ELSE nullif(regexp_extract({v}, {_sql_literal(TIME_ZONE_SUFFIX)}, 1), '') END END")

    def _zoned_time(self, v: str) -> str:
        """The time in ``v`` as UTC: read in the file's format, less the offset of the zone it ends in (a zone not
        known counts 0 here, and its row is quarantined by :meth:`_rules`; a time that also carries its offset in
        numbers, 10:00:00-07:00 PDT, is read by that offset alone)."""
        local = f"rtrim(left({v}, length({v}) - length(t_zone)))"
        offset = f"CASE WHEN regexp_matches({local}, '[0-9][+-][0-9]{{2}}(:?[0-9]{{2}})?$') THEN 0 ELSE t_offset END"
        return (f"CASE WHEN t_zone IS NULL THEN {self._time_expr(v)} "
                f"ELSE {self._time_expr(local)} - to_minutes(coalesce({offset}, 0)) END")

    def _rules(self) -> list[tuple[str, str, str, str | None]]:
        """(condition, reason code, printf template of the detail, value filling its %s), first match wins."""
        m = self.mapping
        tname = self._name("event_time")
        if m.time_of_day:  # the details show the two values joined
            tname += " with " + repr(m.time_of_day).replace("%", "%%")
        rules: list[tuple[str, str, str, str | None]] = []
        if self.has_nul:  # only files holding NUL bytes pay for the test
            rules += [(f"contains({c}, chr(0))", "nul_byte",
                       f"column {repr(name).replace('%', '%%')}: the value holds NUL bytes (\\x00), a sign of a "
                       "damaged file; expected text", None) for name, c in self._loaded_columns()]
        rules += self._nested_rules()
        rules += self._unpaid_rules()  # a row that is no purchase is none, whatever else is wrong with it
        rules += [
            ("user_id IS NULL", "missing_user", f"column {self._name('user_id')} is empty; expected a user id", None),
            ("t_raw IS NULL", "missing_time", f"column {self._name('event_time')} is empty; expected a "
             f"{'date' if m.time_of_day else 'time'}", None),
            ("t_zone IS NOT NULL AND t_offset IS NULL AND event_time IS NOT NULL", "unknown_time_zone",
             f"column {tname}: '%s' ends in a time zone not known here; expected an abbreviation such as "
             f"{ZONE_EXAMPLES} or an offset such as +05:30 or UTC+2", "t_raw"),
            ("event_time IS NULL", "unparseable_time",
             f"column {tname}: '%s' is not a time in the expected format ({m.time_format})", "t_raw"),
            (f"event_time < TIMESTAMP '{_MIN_TIME}' OR event_time > TIMESTAMP '{_MAX_TIME}'", "time_out_of_range",
             f"column {tname}: '%s' is outside the plausible range; expected a time from {_MIN_TIME} "
             f"to {_MAX_TIME}", "t_raw"),
        ]
        if not m.constant_event_type:
            rules.append(("event_type IS NULL", "missing_event_type",
                          f"column {self._name('event_type')} is empty; expected an event type", None))
        if m.columns.get("price"):
            pname = self._name("price")
            if self._divides_total():
                rules.append(("quantity = 0 AND amount <> 0", "zero_quantity",
                              f"column {self._name('quantity')} is 0 for the total '%s' in column {pname}; expected a "
                              "quantity other than 0 (the price stored is the total / quantity)", "p_raw"))
            rules += [
                ("p_raw IS NOT NULL AND (price IS NULL OR NOT isfinite(price))", "non_numeric_price",
                 f"column {pname}: '%s' is not a number; expected a price", "p_raw"),
                ("price < 0", "negative_price", f"column {pname}: '%s' is negative; expected a price >= 0", "p_raw"),
                (f"price > {float(config.MAX_PRICE)!r}", "price_too_high",
                 f"column {pname}: '%s' is above the maximum price {config.MAX_PRICE:,.0f}", "p_raw"),
            ]
        if m.columns.get("quantity"):
            rules.append(("q_raw IS NOT NULL AND quantity IS NULL", "non_numeric_quantity",
                          f"column {self._name('quantity')}: '%s' is not a whole number; expected a quantity",
                          "q_raw"))
        return rules

    def _unpaid_rules(self) -> list[tuple[str, str, str, str | None]]:
        """Purchases whose status says no money was kept (:data:`core.ingest.sniff.UNPAID_STATUSES`), or whose refund is
        their whole amount (an order total's only: a line's price is no order's amount)."""
        m, rules = self.mapping, []
        if m.status_column:
            sname = repr(m.status_column).replace("%", "%%")
            rules.append((f"event_type = 'purchase' AND {_status_key_sql('s_raw')} IN {_UNPAID_SQL}", "not_a_purchase",
                          f"column {sname} is '%s'; only paid orders are purchases", "s_raw"))
        if self._reads_refunds():
            rname = repr(m.refund_column).replace("%", "%%")
            amount = "amount" if self._divides_total() else "price"
            rules.append((f"event_type = 'purchase' AND r_amount > 0 AND r_amount >= {amount}", "not_a_purchase",
                          f"column {rname} is '%s', the whole amount in column {self._name('price')}: the payment was "
                          "refunded in full", "r_raw"))
        return rules

    def _reads_refunds(self) -> bool:
        """Whether the amount refunded is compared with the price column (it holds order totals)."""
        m = self.mapping
        return bool(m.refund_column and m.columns.get("price")) and m.price_is == "order_total"

    def _money_sql(self) -> str:
        """The select expressions of the status and the amount refunded as written (``s_raw``, ``r_raw``) and of the
        refund as a number (``r_amount``): NULL where the file has none or the refund is not compared."""
        m = self.mapping
        status = _trimmed(self.col_of[m.status_column]) if m.status_column else "CAST(NULL AS VARCHAR)"
        if not self._reads_refunds():
            return f"{status} AS s_raw, CAST(NULL AS VARCHAR) AS r_raw, CAST(NULL AS DOUBLE) AS r_amount"
        refund = _trimmed(self.col_of[m.refund_column])
        return f"{status} AS s_raw, {refund} AS r_raw, {_price_sql(refund, m.decimal_comma)} AS r_amount"

    def _name_categories(self, duck) -> int:
        """Give a row without a category name (its category id in its place) the name that other rows of the file
        give the same id (REES46 leaves ``category_code`` empty on some rows of a named category), so a category
        is not listed twice, once by name and once by number. Returns the rows renamed."""
        if not self.mapping.category_fallback:
            return 0
        k = self.chk
        # the most frequent name, a tie going to the first in alphabetical order: mode() picks among tied names by
        # thread timing, and a file appended twice must name its rows the same way both times
        return duck.execute(
            f"UPDATE {k} SET category = n.name FROM (SELECT cat_id, arg_max(category, (n, -rank)) AS name FROM "
            f"(SELECT cat_id, category, count(*) AS n, dense_rank() OVER (ORDER BY category) AS rank FROM {k} "
            f"WHERE cat_id IS NOT NULL AND category <> cat_id GROUP BY cat_id, category) GROUP BY cat_id) n "
            f"WHERE {k}.cat_id = n.cat_id AND {k}.category = {k}.cat_id").fetchone()[0]

    def _mark_unpaid_orders(self, duck) -> None:
        """Quarantine the lines of an order whose status is written on one of its lines only (Shopify writes the
        Financial Status on an order's first line) when that status says no money was kept."""
        m = self.mapping
        if not (m.status_column and m.columns.get("session_id")):
            return
        template = (f"column {m.status_column!r} is empty on this line and '%s' on another line of the order "
                    f"'%s' in column {m.columns['session_id']!r}; only paid orders are purchases")
        duck.execute(
            f"UPDATE {self.chk} SET reason = 'not_a_purchase', detail = printf(?, o.status, o.session) FROM "
            f"(SELECT session_id AS session, min(s_raw) AS status FROM {self.chk} WHERE reason = 'not_a_purchase' "
            f"AND session_id IS NOT NULL AND {_status_key_sql('s_raw')} IN {_UNPAID_SQL} GROUP BY session_id) o "
            f"WHERE {self.chk}.session_id = o.session AND {self.chk}.reason IS NULL AND {self.chk}.s_raw IS NULL "
            f"AND {self.chk}.event_type = 'purchase'", [template])

    def _divides_total(self) -> bool:
        """Whether the price column holds a total to divide by the quantity (:data:`core.ingest.sniff.PRICE_KINDS`)."""
        m = self.mapping
        return m.price_is != "unit_price" and bool(m.columns.get("quantity"))

    def _price_sql(self, price_raw: str, qty_raw: str) -> str:
        """The select expressions of ``amount`` (the number written, for a total only) and ``price``: the number
        written, or a total divided by its quantity, so that price x quantity is the total."""
        amount = _price_sql(price_raw, self.mapping.decimal_comma)
        if not self._divides_total():
            return f"{amount} AS price"
        q = _quantity_sql(qty_raw)
        return (f"{amount} AS amount, CASE WHEN {q} IS NULL THEN {amount} WHEN {q} <> 0 THEN {amount} / {q} "
                f"WHEN {amount} = 0 THEN 0.0 END AS price")

    def _nested_rules(self) -> list[tuple[str, str, str, str | None]]:
        """A list or an object (written as JSON by :mod:`core.ingest.tabular`) in a loaded column of a JSON or Parquet
        file where one value belongs: the row is quarantined, not stored as its JSON text."""
        m = self.mapping
        used = {src for fld, src in m.columns.items() if src and not (fld == "event_type" and m.constant_event_type)}
        used.update(c for c in self._side_columns() if c)
        rules = []
        for name, c in self._loaded_columns():
            if name in used and name in self.nested:
                what = (f"concat('''', {c}, CASE WHEN starts_with({c}, '[') THEN ''' is a list' "
                        "ELSE ''' is an object' END)")
                rules.append((f"(starts_with({c}, '[') OR starts_with({c}, '{{')) AND json_valid({c})", "nested_value",
                              f"column {repr(name).replace('%', '%%')}: %s; expected one value (a text or a number)",
                              what))
        return rules

    def _newlines_expr(self, cols: list[str]) -> str:
        """The line breaks inside a row's fields (a quoted field running over several lines): 0 for most rows."""
        if self.n_cols > _WIDE_COLUMNS:
            return ("list_sum(list_transform(raw_fields, "
                    "lambda x: coalesce(length(x) - length(replace(x, chr(10), '')), 0)))")
        joined = f"concat({', '.join(cols)})"
        return (f"CASE WHEN {' OR '.join(f'contains({c}, chr(10))' for c in cols)} "
                f"THEN length({joined}) - length(replace({joined}, chr(10), '')) ELSE 0 END")

    def _field_sql(self, fld: str) -> str:
        """The mapped field's column, trimmed, or NULL where the file has no such column."""
        c = self._col(fld)
        return _trimmed(c) if c else "NULL"

    def _event_type_sql(self) -> tuple[str, list]:
        """The canonical event type of a row and its bound values: the constant set for every row wins over a
        mapped column, whose raw values are mapped case-blind and kept as given where the map has none."""
        m = self.mapping
        if m.constant_event_type:
            return "?", [m.constant_event_type]
        raw_ev = self._field_sql("event_type")
        whens, params = [], []
        for raw, canon in m.event_type_map.items():
            whens.append("WHEN ? THEN ?")
            params.extend([raw.lower(), canon])
        return (f"CASE lower({raw_ev}) {' '.join(whens)} ELSE {raw_ev} END" if whens else raw_ev), params

    def _carried_fields(self, cols: list[str]) -> tuple[list[str], str, str, str]:
        """``(carried, inner select, row hash, raw line)``: how the file's fields travel through the pass."""
        delim = _sql_literal(" " if self.mapping.delimiter == " " else self.delimiter)
        if self.n_cols > _WIDE_COLUMNS:
            # every projection of 10,000 columns reserves 10,000 vectors (gigabytes at DuckDB's vector size):
            # carry the raw fields as one list, and the loaded columns for their own tests
            loaded = list(dict.fromkeys(c for _, c in self._loaded_columns()))
            inner = f"SELECT [{', '.join(cols)}] AS raw_fields, {', '.join(loaded)}"
            raw_text = f"array_to_string(list_transform(raw_fields, lambda x: coalesce(x, '')), {delim})"
            return ["raw_fields", *loaded], inner, "hash(raw_fields)", raw_text
        fields = ", ".join(f"coalesce({c}, '')" for c in cols)
        return cols, "SELECT *", f"hash({', '.join(cols)})", f"concat_ws({delim}, {fields})"

    def _convert_sql(self, cols: list[str], carried: list[str], inner: str, h: str, event: str) -> str:
        """The select converting each row of the file to the canonical fields, keeping the raw values the
        rules test."""
        trimmed = self._field_sql
        cat = trimmed("category")
        cat_id = "CAST(NULL AS VARCHAR)"
        if self.mapping.category_fallback:
            cat_id = _trimmed(self.col_of[self.mapping.category_fallback])
            cat = f"coalesce({cat}, {cat_id})"
        price_raw, qty_raw = trimmed("price"), trimmed("quantity")
        newlines = self._newlines_expr(cols) if self.multiline else "0"
        return (f"SELECT {h} AS h, {newlines} AS nl, {', '.join(carried)}, {trimmed('user_id')} AS user_id, "
                f"t_raw, t_zone, t_offset, {self._zoned_time('t_raw')} AS event_time, "
                f"{event} AS event_type, {trimmed('item_id')} AS item_id, {cat} AS category, {cat_id} AS cat_id, "
                f"{trimmed('brand')} AS brand, {price_raw} AS p_raw, "
                f"{self._price_sql(price_raw, qty_raw)}, "
                f"{qty_raw} AS q_raw, {_quantity_sql(qty_raw)} AS quantity, {trimmed('session_id')} AS session_id, "
                f"{self._money_sql()} "
                f"FROM (SELECT *, {_offset_minutes('t_zone')} AS t_offset FROM "
                f"(SELECT *, {self._zone('t_raw')} AS t_zone FROM "
                f"({inner}, {self._time_raw(trimmed('event_time'))} AS t_raw FROM {self._read_expr()})))")

    def _reason_sql(self) -> tuple[str, str, list]:
        """``(reason CASE, detail WHEN clauses, their bound templates)`` from the quarantine rules."""
        reason_cases, detail_cases, detail_params = [], [], []
        for cond, code, template, value in self._rules():
            reason_cases.append(f"WHEN {cond} THEN '{code}'")
            # the template carries user-given column names: it is bound, never SQL text
            detail_cases.append(f"WHEN {cond} THEN printf(?, {value})" if value else f"WHEN {cond} THEN ?")
            detail_params.append(template if value else template.replace("%%", "%"))
        return f"CASE {' '.join(reason_cases)} END", " ".join(detail_cases), detail_params

    def _check_sql(self) -> tuple[str, list]:
        """SQL reading the file into the checked table, and its bound values in text order."""
        cols = _ident_list(self.n_cols)
        event, conv_params = self._event_type_sql()
        carried, inner, h, raw_text = self._carried_fields(cols)
        conv = self._convert_sql(cols, carried, inner, h, event)
        reason, detail_cases, detail_params = self._reason_sql()
        # no row number here: it would serialise the pass; the table's rowid keeps file order
        sql = (f"CREATE TEMP TABLE {self.chk} AS SELECT h, user_id, event_time, event_type, item_id, "
               f"category, cat_id, brand, price, quantity, session_id, s_raw, nl, reason, "
               f"CASE WHEN reason IS NOT NULL THEN CASE {detail_cases} END END AS detail, "
               f"CASE WHEN reason IS NOT NULL THEN replace({raw_text}, chr(0), {_sql_literal(_NUL_SHOWN_AS)}) "
               f"END AS raw_line "
               f"FROM (SELECT *, {reason} AS reason FROM ({conv}))")
        # placeholders are numbered in text order: the detail CASE precedes the converting subquery
        return sql, detail_params + conv_params + [str(self.source.path)]

    def _line_no(self, rn: str) -> str:
        # staged row rn (0-based) sits after every skipped line j with (data index - j) <= rn
        return (f"({self.header_lines} + {rn} + 1 + (SELECT count(*) FROM {self.skipped} r "
                f"WHERE r.accepted_before <= {rn}))")

    def _quarantine_select(self) -> str:
        return (
            f"SELECT {self._physical(self._line_no('k.rn'))} AS line_no, coalesce(r.raw, k.raw_line) AS raw_line, "
            f"k.reason, CASE WHEN d.first_rn IS NOT NULL THEN k.detail || ' (line ' || "
            f"CAST({self._physical(self._line_no('d.first_rn'))} AS VARCHAR) || ')' ELSE k.detail END AS detail "
            f"FROM {self._rows()} k LEFT JOIN {self.dups} d ON d.rn = k.rn LEFT JOIN {self.raws} r ON r.rn = k.rn "
            f"WHERE k.reason IS NOT NULL "
            f"UNION ALL SELECT {self._physical('line')}, csv_line, reason, detail FROM {self.rej_lines}"
        )

    def _events_select(self, file_no: int = 1) -> tuple[str, bool]:
        """SELECT of good rows in event-table column order (their source last: ``file_no`` and the physical line),
        and whether sessions are derived."""
        base = self._good_rows_with_lines()
        source = f"{int(file_no)} AS file_no, line_no"
        if self.mapping.columns.get("session_id"):
            return (f"SELECT user_id, event_time, event_type, item_id, category, {stored_brand('brand')} AS brand, price, "
                    f"quantity, session_id, {source} FROM ({base})"), False
        gap = f"INTERVAL {int(config.SESSION_GAP_MINUTES)} MINUTE"
        flagged = (f"SELECT *, CASE WHEN event_time - lag(event_time) OVER w > {gap} "
                   f"OR lag(event_time) OVER w IS NULL THEN 1 ELSE 0 END AS new_session "
                   f"FROM ({base}) WINDOW w AS (PARTITION BY user_id ORDER BY event_time, rn)")
        numbered = (f"SELECT *, sum(new_session) OVER (PARTITION BY user_id ORDER BY event_time, rn "
                    f"ROWS UNBOUNDED PRECEDING) AS session_no FROM ({flagged})")
        return (f"SELECT user_id, event_time, event_type, item_id, category, {stored_brand('brand')} AS brand, price, "
                f"quantity, user_id || '-' || CAST(session_no AS VARCHAR) AS session_id, {source} FROM ({numbered})"), True

    def _spellings_sql(self) -> str:
        """The brand spellings of the good rows (their events are stored) and how many gave each: ``brand``
        (as the events store it), ``spelling`` (as the file gives it, trimmed), ``n_events``."""
        return (f"SELECT {stored_brand('spelling')} AS brand, spelling, n_events FROM (SELECT brand AS spelling, "
                f"count(*) AS n_events FROM {self.chk} WHERE reason IS NULL AND brand IS NOT NULL GROUP BY brand)")

    def _good_rows_with_lines(self) -> str:
        """The good rows of the checked table with ``rn`` and ``line_no``, their physical line in the file.

        The same line as :meth:`_line_no` gives, found by one as-of join with the skipped lines counted
        up to each row instead of a count per row: every event carries its line, so this runs over all of them.
        """
        if not self.any_skipped:
            return (f"SELECT k.*, {self._physical(f'{self.header_lines} + k.rn + 1')} AS line_no "
                    f"FROM {self._rows()} k WHERE k.reason IS NULL")
        counted = (f"SELECT accepted_before, max(n) AS n_skipped FROM (SELECT accepted_before, "
                   f"row_number() OVER (ORDER BY line) AS n FROM {self.skipped}) GROUP BY accepted_before")
        line = f"{self.header_lines} + k.rn + 1 + coalesce(sk.n_skipped, 0)"
        return (f"SELECT k.*, {self._physical(line)} AS line_no FROM {self._rows()} k "
                f"ASOF LEFT JOIN ({counted}) sk ON k.rn >= sk.accepted_before WHERE k.reason IS NULL")

    def _rows(self) -> str:
        """The checked table with ``rn``: 0-based row number among the lines DuckDB staged, in file order."""
        return f"(SELECT rowid - {self.row0} AS rn, * FROM {self.chk})"

    def _physical(self, row: str) -> str:
        """SQL of the physical line number of DuckDB's row number ``row`` (they differ after a row over several
        lines)."""
        if not self.shifted:
            return row
        return f"({row} + coalesce((SELECT arg_max(s.delta, s.row) FROM {self.shifts} s WHERE s.row <= {row}), 0))"
