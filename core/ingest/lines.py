"""Physical lines of a delimited text file, counted on its bytes: how many, how many are empty, which are too long.

A load must account for every line of its file. DuckDB's reader cannot be asked how many lines it
consumed, and it loses lines without a word in two cases: a line longer than its read buffer
(32 MiB) is skipped even where rejected rows are kept, and a quote left open makes it skip the rest
of a buffer. :class:`LineStats` counts the lines while the file's bytes stream past once (the
pre-load scan of :mod:`core.ingest.load`), so that the load can check its rows against the file
(:func:`count_empty_lines` tells how many of them DuckDB skips as empty), and it finds the lines over
:data:`core.config.MAX_LINE_BYTES`, which :func:`empty_long_lines` then takes out of the copy DuckDB
reads (they are quarantined by their number, their first characters kept).

Lines end in LF, CRLF or a lone CR, as an editor shows them. Counting is vectorised, and the
long-line search jumps a line limit at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: bytes per read of :func:`empty_long_lines`
_CHUNK_BYTES = 8 << 20


@dataclass
class LongLine:
    """A line over the limit: its 1-based number, where its bytes start and end (line break excluded)."""

    line_no: int
    start: int
    end: int = -1  # -1 until its end is seen


@dataclass
class LineStats:
    """Counts of the lines of a byte stream fed in consecutive pieces (:meth:`feed`, then :meth:`finish`).

    A piece must not end in CR unless the stream does (the CR of a CRLF split across two reads would
    count twice): the caller carries such a CR over to the next piece, as :mod:`core.ingest.load` does.
    """

    limit: int
    lines: int = 0
    quotes: bool = False
    long: list[LongLine] = field(default_factory=list)
    _offset: int = 0
    _breaks: int = 0
    _line_start: int = 0
    _open: LongLine | None = None
    _after_break: bool = True

    def feed(self, data: bytes) -> None:
        """Count the lines of the next piece of the stream."""
        if not data:
            return
        self.quotes = self.quotes or b'"' in data
        has_cr = b"\r" in data
        self._find_long(data, has_cr)
        breaks = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))  # 2.5x bytes.count's speed
        if has_cr:
            breaks += data.count(b"\r") - data.count(b"\r\n")
        self._breaks += breaks
        self._after_break = data[-1:] in (b"\n", b"\r")
        self._offset += len(data)

    def finish(self) -> LineStats:
        """Close the stream: the last line counts even without a line break; returns self."""
        self.lines = self._breaks + (0 if self._after_break else 1)
        if self._open is not None:
            self._open.end = self._offset
            self._open = None
        return self

    def _line_no(self, data: bytes, rel_start: int) -> int:
        """The number of the line starting at ``rel_start`` of the piece (before it: in an earlier piece)."""
        if rel_start <= 0:
            return self._breaks + 1
        n = data.count(b"\n", 0, rel_start)
        if b"\r" in data:
            n += data.count(b"\r", 0, rel_start) - data.count(b"\r\n", 0, rel_start)
        return self._breaks + n + 1

    def _find_long(self, data: bytes, has_cr: bool) -> None:
        """Record the lines of this piece longer than the limit: from each line's start, a break must come
        within ``limit + 1`` bytes; the last break found there is the next line's start (one search per limit)."""
        off, size = self._offset, len(data)
        pos = 0
        if self._open is not None:  # a long line runs on from the last piece
            end = _next_break(data, 0, has_cr)
            if end < 0:
                return
            self._open.end, self._open = off + end, None
            self._line_start = off + end + 1
            pos = end + 1
        while True:
            rel = self._line_start - off
            window_end = rel + self.limit + 1
            if window_end > size:  # what is left is too short to hold a long line: only move to its last line
                last = _last_break(data, pos, size, has_cr)
                if last >= 0:
                    self._line_start = off + last + 1
                return
            last = _last_break(data, max(rel, pos), window_end, has_cr)
            if last >= 0:
                self._line_start, pos = off + last + 1, last + 1
                continue
            found = LongLine(self._line_no(data, rel), self._line_start)
            self.long.append(found)
            end = _next_break(data, window_end, has_cr)
            if end < 0:
                self._open = found
                return
            found.end = off + end
            self._line_start, pos = off + end + 1, end + 1


def _last_break(data: bytes, start: int, end: int, has_cr: bool) -> int:
    found = data.rfind(b"\n", start, end)
    return max(found, data.rfind(b"\r", start, end)) if has_cr else found


def _next_break(data: bytes, start: int, has_cr: bool) -> int:
    found = data.find(b"\n", start)
    if has_cr:
        cr = data.find(b"\r", start)
        found = cr if found < 0 else found if cr < 0 else min(found, cr)
    return found


def count_empty_lines(src) -> int:
    """The empty lines of the byte stream ``src`` (a line break right after another, or first in the stream).

    A pass of its own, made only when a count needs it: searching for two breaks in a row costs twice
    as much as counting the lines."""
    empty, carry, after_break = 0, b"", True
    while chunk := src.read(_CHUNK_BYTES):
        data = carry + chunk if carry else chunk
        carry = b"\r" if data.endswith(b"\r") else b""
        if carry:
            data = data[:-1]
        if not data:
            continue
        lf = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in data else data
        if b"\n\n" in lf:
            breaks = np.flatnonzero(np.frombuffer(lf, dtype=np.uint8) == 10)
            empty += int(np.count_nonzero(np.diff(breaks) == 1))
        empty += after_break and lf.startswith(b"\n")
        after_break = lf.endswith(b"\n")
    return empty + (after_break and carry == b"\r")


def empty_long_lines(src, out: Path, long: list[LongLine], keep_chars: int,
                     encoding: str, errors: str) -> dict[int, tuple[str, int]]:
    """Copy the byte stream ``src`` to ``out`` with the bytes of the ``long`` lines left out (their line
    breaks stay, so every other line keeps its number; a last line without one gets one, so that it stays a
    line), in one pass of bounded memory.

    Returns line number -> (its first ``keep_chars`` characters, decoded, and its length in bytes).
    """
    kept: dict[int, tuple[str, int]] = {}
    heads: dict[int, bytes] = {}
    spans = iter(long)
    span = next(spans, None)
    off = 0
    with open(out, "wb") as dst:
        while chunk := src.read(_CHUNK_BYTES):
            pos, end_off = 0, off + len(chunk)
            while span is not None and span.start < end_off:
                a = max(span.start - off, pos)
                b = min(span.end - off, len(chunk))
                dst.write(chunk[pos:a])
                head = heads.setdefault(span.line_no, b"")
                if len(head) < 4 * keep_chars:
                    heads[span.line_no] = head + chunk[a:min(b, a + 4 * keep_chars - len(head))]
                pos = b
                if span.end > end_off:
                    break
                span = next(spans, None)
            dst.write(chunk[pos:])
            off = end_off
        if long and long[-1].end == off:
            dst.write(b"\n")
    for s in long:
        kept[s.line_no] = (heads.get(s.line_no, b"").decode(encoding, errors=errors)[:keep_chars], s.end - s.start)
    return kept
