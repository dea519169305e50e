"""Write one benchmark's section into docs/benchmarks.md, keeping every other section."""
from __future__ import annotations

from pathlib import Path


def write_section(path: Path, text: str) -> None:
    """Replace the section of ``path`` whose "## " title is ``text``'s first line (from that line up to the next
    "## " title or the end), or append ``text`` when there is no such section yet."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    lines, title = old.splitlines(), text.splitlines()[0].strip()
    start = next((i for i, line in enumerate(lines) if line.strip() == title), None)
    body = text.rstrip("\n").splitlines()
    if start is None:
        path.write_text(old.rstrip("\n") + "\n\n" + "\n".join(body) + "\n")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    path.write_text("\n".join(lines[:start] + body + ([""] if end < len(lines) else []) + lines[end:]) + "\n")
