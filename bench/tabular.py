"""Excel, Parquet and encodings benchmark: loading an .xlsx, a .parquet, a Windows-1252 or a UTF-16 file
against loading the same rows as a UTF-8 CSV.

Builds UCI Online Retail rows (the shared head, repeated with new invoice numbers and later
days so that no row repeats another) as an .xlsx workbook with real times and numbers, the
way the data is published, as the CSV the UCI site also offers, and as a Parquet file with
typed columns (written by DuckDB from that CSV), and as the CSV in Windows-1252 (Excel's "CSV" on a
Western Windows) and in UTF-16 (Excel's "Unicode Text"), with curly apostrophes (’) for straight ones
so that the Windows-1252 file holds the bytes DuckDB cannot read as Latin-1. Then times, each in its
own child process
(peak memory is that child's ``ru_maxrss``):

- the workbook's conversion alone (``core.ingest.tabular.to_csv``: calamine reads the sheet, one CSV
  line per row);
- ``core.ingest.load.ingest_file`` of the workbook, and of the Parquet file (conversion, then the CSV path);
- ``core.ingest.load.ingest_file`` of the Windows-1252 and the UTF-16 file (rewritten as UTF-8, then the CSV path);
- ``core.ingest.load.ingest_file`` of the CSV, the reference.

Prints a table and writes it under "## Excel, Parquet and other text encodings" in docs/benchmarks.md.

    python bench/tabular.py --rows 540000
"""
from __future__ import annotations

import argparse
import csv
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
SECTION = "## Excel, Parquet and other text encodings"
HEAD = ROOT.parent / "shared" / "data" / "online_retail" / "OnlineRetail-head.csv"
TIME_FORMAT = "%m-%d-%Y %H:%M"


def write_files(rows: int, xlsx: Path, csv_path: Path) -> None:
    """``rows`` Online Retail lines as a workbook (typed cells) and as a CSV (text as UCI writes it)."""
    from openpyxl import Workbook

    with open(HEAD, encoding="latin-1") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        head = list(reader)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Online Retail")
    sheet.append(header)
    with open(csv_path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for i in range(rows):
            invoice, stock, text, qty, when, price, customer, country = head[i % len(head)]
            lap = i // len(head)  # each lap: new invoice numbers, a week later
            cancelled = invoice.startswith("C")
            number = int(invoice.lstrip("C")) + lap * 100_000
            moment = dt.datetime.strptime(when, TIME_FORMAT) + dt.timedelta(days=7 * lap)
            sheet.append([f"C{number}" if cancelled else number, stock, text, int(qty), moment, float(price),
                          float(customer) if customer else None, country])
            writer.writerow([f"C{number}" if cancelled else number, stock, text, qty, moment.strftime(TIME_FORMAT),
                             price, customer, country])
    book.save(xlsx)


def write_encoded(csv_path: Path, cp1252: Path, utf16: Path) -> None:
    """The CSV's text, apostrophes curled, in Windows-1252 and in UTF-16 (with a BOM, as Excel writes it)."""
    text = csv_path.read_text(encoding="utf-8").replace("'", "\u2019")
    cp1252.write_bytes(text.encode("cp1252"))
    utf16.write_bytes(text.encode("utf-16"))


def write_parquet(csv_path: Path, parquet: Path) -> None:
    """The CSV's rows as a Parquet file with typed columns (times as timestamps, numbers as numbers)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv(?, timestampformat = '%m-%d-%Y %H:%M')) TO '{parquet}' "
                "(FORMAT parquet)", [str(csv_path)])
    con.close()


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(kind: str, path: str, work: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from core import store
    from core.ingest import tabular
    from core.ingest.load import ingest_file

    if kind == "convert":
        cpu, started = _cpu(), time.perf_counter()
        converted = tabular.to_csv(Path(path), Path(work) / "converted.csv")
        return {"seconds": time.perf_counter() - started, "cpu_seconds": _cpu() - cpu, "rows": converted.rows - 1}
    engine = store.make_engine(f"duckdb:///{work}/{kind}.duckdb")
    cpu, started = _cpu(), time.perf_counter()
    report = ingest_file(engine, path, kind)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    engine.dispose()
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": report.rows_read, "loaded": report.rows_loaded,
            "quarantined": report.rows_quarantined}


def run_child(kind: str, path: Path, work: Path) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(path), str(work)],
                            stdout=subprocess.PIPE, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} measurement failed")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_gb"] = usage.ru_maxrss / 1024 / 1024
    return result


def write_doc(section: str) -> None:
    """Replace (or add) this section of docs/benchmarks.md, keeping the others."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == SECTION), None)
    if start is None:
        DOC.write_text(text.rstrip("\n") + "\n\n" + section + "\n")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    DOC.write_text("\n".join(lines[:start] + section.splitlines() + [""] + lines[end:]).rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=540_000, help="rows of the workbook (Excel holds 1,048,575)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="cartsight-bench-") as tmp:
        work = Path(tmp)
        xlsx, csv_path, parquet = (work / f"Online Retail.{ext}" for ext in ("xlsx", "csv", "parquet"))
        cp1252, utf16 = work / "Online Retail (Windows).csv", work / "Online Retail (Unicode).txt"
        started = time.perf_counter()
        write_files(args.rows, xlsx, csv_path)
        write_parquet(csv_path, parquet)
        write_encoded(csv_path, cp1252, utf16)
        sizes = (f"{xlsx.stat().st_size / 1e6:,.1f} MB .xlsx, {parquet.stat().st_size / 1e6:,.1f} MB .parquet, "
                 f"{csv_path.stat().st_size / 1e6:,.1f} MB CSV, {utf16.stat().st_size / 1e6:,.1f} MB UTF-16")
        print(f"wrote {args.rows:,} rows ({sizes}) in {time.perf_counter() - started:.1f} s", flush=True)
        results = {kind: run_child(kind, path, work) for kind, path in
                   (("convert", xlsx), ("workbook", xlsx), ("parquet", parquet), ("cp1252", cp1252),
                    ("utf16", utf16), ("csv", csv_path))}
    load = os.getloadavg()[0]
    ref = results["csv"]
    labels = {"convert": "the workbook's conversion alone (`core.ingest.tabular.to_csv`)",
              "workbook": "`ingest_file` of the .xlsx", "parquet": "`ingest_file` of the .parquet",
              "cp1252": "`ingest_file` of the CSV in Windows-1252", "utf16": "`ingest_file` of the CSV in UTF-16",
              "csv": "`ingest_file` of the same rows as CSV (reference)"}
    lines = [
        SECTION, "",
        f"`python bench/tabular.py --rows {args.rows}` — {dt.date.today().isoformat()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}; UCI Online Retail rows ({sizes}), the "
        f"workbook with real times and numbers as the data is published, the Parquet file with typed columns; "
        f"each measurement in its own process; "
        f"1-minute load average at the end {load:.1f}.", "",
        "| path | wall seconds | CPU seconds | rows/s (wall) | peak memory (GB) | wall / CSV load |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, res in results.items():
        lines.append(f"| {labels[kind]} | {res['seconds']:.2f} | {res['cpu_seconds']:.2f} | "
                     f"{res['rows'] / res['seconds']:,.0f} | {res['peak_gb']:.2f} | "
                     f"{res['seconds'] / ref['seconds']:.2f}x |")
    differ = {k: results[k] for k in ("workbook", "parquet", "cp1252", "utf16")
              if (results[k]["loaded"], results[k]["quarantined"]) != (ref["loaded"], ref["quarantined"])}
    same = not differ
    lines += ["", f"The CSV load: {ref['rows']:,} rows read, {ref['loaded']:,} loaded, {ref['quarantined']:,} "
              f"quarantined (rows without a customer, as in the real file); the workbook's, the Parquet file's and "
              f"the other encodings' counts {'are the same' if same else 'DIFFER: ' + json.dumps(differ)}."]
    section = "\n".join(lines)
    print(section)
    if not args.no_doc:
        write_doc(section)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
