"""Append benchmark: what adding a file to a dataset costs, and what recording each event's source costs a new load.

Writes two REES46-layout CSVs (the first month of N rows, the next month of M rows), then in child
processes on fresh DuckDB stores (or, with ``--pg-url``, fresh schemas of that PostgreSQL server):

- the first file loaded as a new dataset by this checkout, and by another checkout (``--baseline``, e.g. a
  clone of the main branch, which stores no file and line per event): the load's time and the store's size;
- the second file appended to the dataset (its events compared with the stored ones in its time range,
  the derived tables rewritten over the whole dataset);
- the second file appended again: every line repeats a stored event (the worst overlap).

Prints a table and writes it under "## Appending a file" in docs/benchmarks.md.

    python bench/append.py --rows 5000000 --append-rows 1000000 --baseline /path/to/main
    python bench/append.py --rows 1000000 --append-rows 200000 --pg-url postgresql+psycopg://...
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Appending a file"
sys.path.insert(0, str(ROOT / "bench"))

from ingest import write_rees46_csv  # noqa: E402 - the same generated layout as the ingest benchmark
from docs_section import write_section  # noqa: E402 - the section writer of every benchmark


def child(url: str, csv_path: str, name: str, append: bool) -> dict:
    """One load in this process (its checkout is first on ``sys.path``): seconds, CPU seconds of this process (the
    PostgreSQL server's own are not counted), the report's counts."""
    import resource

    from core import store
    from core.ingest.load import ingest_file

    engine = store.make_engine(url)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, started = usage.ru_utime + usage.ru_stime, time.perf_counter()
    report = ingest_file(engine, csv_path, name, append=True) if append else ingest_file(engine, csv_path, name)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    engine.dispose()
    return {"seconds": time.perf_counter() - started, "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu,
            "loaded": report.rows_loaded, "quarantined": report.rows_quarantined}


def run_child(checkout: Path, url: str, csv_path: Path, append: bool) -> dict:
    code = (f"import sys, json; sys.path.insert(0, {str(checkout)!r}); sys.path.insert(1, {str(ROOT / 'bench')!r}); "
            f"import append as a; print(json.dumps(a.child({url!r}, {str(csv_path)!r}, 'shop', {append})))")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"the load in {checkout} failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    path = Path(url.removeprefix("duckdb:///"))
    result["store_mb"] = round(path.stat().st_size / 1e6, 1) if url.startswith("duckdb:") else None
    return result


def _store_url(folder: Path, name: str, pg_url: str | None) -> str:
    """A fresh store: a DuckDB file in ``folder``, or the schema ``name`` of ``pg_url`` emptied."""
    if pg_url is None:
        return f"duckdb:///{folder / name}.duckdb"
    import sqlalchemy as sa

    schema = f"cs_bench_append_{name}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"


def measure(rows: int, append_rows: int, baseline: Path | None, folder: Path,
            pg_url: str | None) -> list[tuple[str, dict]]:
    first, second = folder / "month1.csv", folder / "month2.csv"
    write_rees46_csv(first, rows, seed=1)
    write_rees46_csv(second, append_rows, seed=2, start="2019-11-01")
    runs = []
    if baseline is not None:
        runs.append((f"new dataset of {rows:,} rows, baseline checkout (no source per event)",
                     run_child(baseline, _store_url(folder, "base", pg_url), first, False)))
    url = _store_url(folder, "this", pg_url)
    runs.append((f"new dataset of {rows:,} rows, this checkout (file and line per event)",
                 run_child(ROOT, url, first, False)))
    runs.append((f"append {append_rows:,} rows of the next month", run_child(ROOT, url, second, True)))
    runs.append((f"append the same {append_rows:,} rows again (all repeats)", run_child(ROOT, url, second, True)))
    return runs


def section(runs: list[tuple[str, dict]], argv: list[str], kind: str) -> str:
    load = os.getloadavg()[0]
    shown = " ".join(a if "postgresql" not in a else "URL" for a in argv)  # a URL may hold a password
    lines = [f"{SECTION} ({kind})", "", f"`python bench/append.py {shown}` — {dt.date.today()}, {platform.machine()}, "
             f"{os.cpu_count()} CPU cores, Python {platform.python_version()}; {kind} store; 1-minute load average at "
             f"the end {load:.1f} (the machine is shared: CPU seconds are steadier than wall seconds).", "",
             "| step | wall seconds | CPU seconds | loaded | quarantined | store size (MB) after |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, r in runs:
        size = f"{r['store_mb']:,}" if r["store_mb"] is not None else "—"
        lines.append(f"| {label} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['loaded']:,} | "
                     f"{r['quarantined']:,} | {size} |")
    lines += ["", "An append compares the file's rows with the stored events of its time range (none for the next "
              "month; every one for the same file again, whose lines are then read once more for their text), "
              "inserts its events, and derives the price bands (every event's), price edges and session days "
              "again over the whole dataset; a file that adds no event derives nothing. The store's size after a "
              "step counts the blocks DuckDB freed by rewriting the bands, which later writes reuse."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the first month")
    parser.add_argument("--append-rows", type=int, default=1_000_000, help="rows of the month appended")
    parser.add_argument("--baseline", type=Path, help="another checkout whose new load is measured beside this one")
    parser.add_argument("--pg-url", help="measure on this PostgreSQL server (fresh schemas) instead of DuckDB files")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cartsight-bench-append-") as tmp:
        runs = measure(args.rows, args.append_rows, args.baseline, Path(tmp), args.pg_url)
    text = section(runs, argv, "PostgreSQL" if args.pg_url else "DuckDB")
    print(text)
    write_section(DOC, text)


if __name__ == "__main__":
    main()
