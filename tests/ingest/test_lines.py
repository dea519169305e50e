"""Counting a file's physical lines on its bytes: totals, empty lines and lines over the limit, against a plain
line-by-line count of random text."""
from __future__ import annotations

import io
import random
import re

import pytest

from core.ingest import lines as lines_mod
from core.ingest.lines import LineStats, count_empty_lines, empty_long_lines

_BREAK = re.compile(rb"[^\r\n]*(\r\n|\r|\n|$)")


def _by_hand(data: bytes, limit: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(lines, empty lines, (number, start, end) of the lines over ``limit``) read one line at a time."""
    n = empty = 0
    long = []
    for m in _BREAK.finditer(data):
        if m.start() == len(data) and not m.group():
            break
        n += 1
        content = m.group().rstrip(b"\r\n")
        empty += not content
        if len(content) > limit:
            long.append((n, m.start(), m.start() + len(content)))
    return n, empty, long


def _fed(data: bytes, limit: int, piece: int) -> LineStats:
    """The stats of ``data`` read ``piece`` bytes at a time, a CR at a piece's end carried over as the load does."""
    stats, carry = LineStats(limit), b""
    for i in range(0, len(data), piece):
        chunk = carry + data[i:i + piece]
        carry = b"\r" if chunk.endswith(b"\r") else b""
        stats.feed(chunk[:-1] if carry else chunk)
    stats.feed(carry)
    return stats.finish()


def _random_text(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(0, 14)):
        parts += [b"x" * rng.choice([0, 0, 1, 3, 5, 6, 7, 12, 30]), rng.choice([b"\n", b"\n", b"\r\n", b"\r"])]
    if parts and rng.random() < 0.5:
        parts.pop()  # no line break after the last line
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(4))
def test_counts_match_a_line_by_line_reading_whatever_the_piece_size(seed, monkeypatch):
    rng = random.Random(seed)
    for _ in range(500):
        data, limit, piece = _random_text(rng), rng.choice([2, 5, 6]), rng.choice([1, 2, 3, 7, 100])
        lines, empty, long = _by_hand(data, limit)
        stats = _fed(data, limit, piece)
        assert (stats.lines, [(x.line_no, x.start, x.end) for x in stats.long]) == (lines, long), (data, piece)
        monkeypatch.setattr(lines_mod, "_CHUNK_BYTES", piece)
        assert count_empty_lines(io.BytesIO(data)) == empty, (data, piece)


def test_long_lines_are_emptied_and_their_start_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(lines_mod, "_CHUNK_BYTES", 4)  # spans cut by the reads
    data = b"a,b\n" + b"x" * 20 + b"\r\nshort\n" + b"y" * 9 + b"\nend"
    stats = _fed(data, 8, 5)
    assert [(x.line_no, x.end - x.start) for x in stats.long] == [(2, 20), (4, 9)]
    kept = empty_long_lines(io.BytesIO(data), tmp_path / "out", stats.long, 3, "utf-8", "replace")
    assert (tmp_path / "out").read_bytes() == b"a,b\n\r\nshort\n\nend"
    assert kept == {2: ("xxx", 20), 4: ("yyy", 9)}


def test_quotes_are_noticed():
    assert _fed(b'a,"b"\n', 10, 3).quotes and not _fed(b"a,b\n", 10, 3).quotes
