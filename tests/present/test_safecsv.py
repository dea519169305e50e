"""The one table writer: formula cells escaped, signed numbers and phones kept, files whole or not at all;
and a scan of the source so that no other writer of table files appears unnoticed."""
from __future__ import annotations

import csv
import errno
import io
import os
import re

import numpy as np
import pandas as pd
import pytest

from core.present import safecsv
from core.errors import ParameterError
from tests.conftest import ROOT

#: Cells a spreadsheet would run, each with what the writer must write instead.
FORMULA_CELLS = {
    '=HYPERLINK("http://x")': '\'=HYPERLINK("http://x")', "=1+1": "'=1+1", "+1": "'+1", "-1+2": "'-1+2",
    "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx", "\t=1+1": "'\t=1+1", "-": "'-", "+": "'+",
    "-3\n": "'-3\n", "+1234567890123456": "'+1234567890123456", "-inf": "'-inf",
}
#: Cells written as they are: negative numbers and phone numbers in international form run nothing.
KEPT_CELLS = ["-3", "-0.25", "+4420", "+442079460958", "-1e-3", "-.5", "plain", "a=b", "", "1e5",
              "a\r=HYPERLINK(\"http://x\")", "b\n@SUM(A1)"]  # a line break inside a quoted cell starts no row


def _cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.mark.parametrize("value, written", [*FORMULA_CELLS.items(), *[(v, v) for v in KEPT_CELLS],
                                            (3.5, 3.5), (-2, -2), (None, None)])
def test_escape_cell(value, written):
    assert safecsv.escape_cell(value) == written


def test_exports_keeps_escape_cell_importable():
    from core.campaigns import exports
    from core.present import safecsv

    assert safecsv.escape_cell is safecsv.escape_cell and exports.CSV_MIME == "text/csv"


def test_csv_bytes_escapes_text_of_every_dtype_and_leaves_numbers():
    values = list(FORMULA_CELLS) + KEPT_CELLS
    frame = pd.DataFrame({
        "object": values,
        "string": pd.array(values, dtype="string"),
        "category": pd.Categorical(values),
        "number": np.arange(len(values)) - 3.5,
    })
    frame["=header"] = "x"
    rows = _cells(safecsv.csv_bytes(frame))
    assert rows[0] == ["object", "string", "category", "number", "'=header"]
    expected = [FORMULA_CELLS.get(v, v) for v in values]
    for col in range(3):
        assert [r[col] for r in rows[1:]] == expected
    assert [r[3] for r in rows[1:]] == [str(v) for v in np.arange(len(values)) - 3.5]  # -3.5, -2.5 … stay numbers
    assert frame["object"].tolist() == values  # the caller's frame is not changed


def test_csv_bytes_keeps_missing_cells_empty_and_mixed_cells_as_they_are():
    frame = pd.DataFrame({"a": ["=x", None, np.nan], "b": pd.array([1, None, 3], dtype="Int64"),
                          "none": [None, None, None], "mixed": pd.Series([-1, "-1+2", 2.5], dtype=object)})
    assert safecsv.csv_bytes(frame) == b"a,b,none,mixed\r\n'=x,1,,-1\r\n,,,'-1+2\r\n,3,,2.5\r\n"


def test_write_csv_writes_the_escaped_file(tmp_path):
    out = tmp_path / "out.csv"
    assert safecsv.write_csv(pd.DataFrame({"user_id": ["=1+1", "-3"]}), out) == out
    assert out.read_bytes() == b"user_id\r\n'=1+1\r\n-3\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.parametrize("where, found", [
    ("missing/out.csv", "the folder {tmp}/missing does not exist; create it first"),
    ("", "the path is empty"),
    (".", "that is a folder"),
    ("file.txt/out.csv", "{tmp}/file.txt is not a folder"),
])
def test_bad_output_paths_are_refused_before_any_work(tmp_path, monkeypatch, where, found):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("keep")
    path = "" if where == "" else str(tmp_path / where)
    with pytest.raises(ParameterError) as err:
        safecsv.check_out_path(path, "--out")
    assert err.value.parameter == "--out"
    assert str(err.value).startswith("--out") and found.format(tmp=tmp_path) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_a_failed_write_leaves_the_earlier_file_and_no_half_file(tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    out.write_text("the earlier file\n")
    real = pd.DataFrame.to_csv

    def full_disk(self, fh, **kwargs):
        real(self.head(1), fh, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(ParameterError, match=r"--out .*scores.csv: the file could not be written \(No space left"):
        safecsv.write_csv(pd.DataFrame({"a": range(10)}), out)
    assert out.read_text() == "the earlier file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_an_existing_binary_file_is_not_overwritten(tmp_path):
    store_file = tmp_path / "cartsight.duckdb"
    store_file.write_bytes(b"\x00" * 8 + b"DUCK" + b"\x00" * 100)
    with pytest.raises(ParameterError, match=r"that file holds binary data \(a database, workbook or archive\), not a "
                                             r"CSV; it is left as it is: choose another path\."):
        safecsv.write_csv(pd.DataFrame({"a": [1]}), store_file)
    assert store_file.read_bytes()[8:12] == b"DUCK"
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("a\n0\n")
    safecsv.write_csv(pd.DataFrame({"a": [1]}), earlier)  # an earlier CSV is replaced
    assert earlier.read_bytes() == b"a\r\n1\r\n"


def test_a_device_or_pipe_is_written_in_place(tmp_path):
    import threading

    safecsv.write_csv(pd.DataFrame({"a": ["=1"]}), "/dev/null")
    assert not [p for p in os.listdir("/dev") if p.endswith(".partial")]
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    safecsv.write_csv(pd.DataFrame({"a": ["=1", "-3"]}), fifo)
    reader.join(timeout=30)
    assert got == [b"a\r\n'=1\r\n-3\r\n"]


def test_parquet_is_written_as_it_is():
    frame = pd.DataFrame({"user_id": ["=1+1", "+1"], "p": [0.5, -0.25]})
    back = pd.read_parquet(io.BytesIO(safecsv.parquet_bytes(frame)))
    pd.testing.assert_frame_equal(back, frame)


# --- the exports and holdouts written by it, on both stores ------------------------------------------------


@pytest.fixture
def formula_shop(engine, tmp_path, monkeypatch):
    """The campaigns test shop with a formula as every forecast's category and items and every segment's name."""
    import sqlalchemy as sa

    from core import config, store
    from tests.campaigns.test_campaigns import make_shop

    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    make_shop(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(store.predictions).values(next_category='=HYPERLINK("http://x")', top_items="-1+2 @3"))
        conn.execute(sa.update(store.segments).values(segment_name="+Premium fans"))
    return engine


@pytest.mark.parametrize("fmt", ["csv", "parquet", "google", "meta", "klaviyo", "mailchimp"])
def test_every_export_format_carries_no_live_formula(formula_shop, fmt):
    from core.campaigns import exports
    from core.present import safecsv
    from core.campaigns.targets import DESTINATION_CONSENT, CampaignFilters, build_target_list
    from core.campaigns.identities import read_identities
    from tests.campaigns.test_campaigns import FIXTURES

    identities = read_identities(FIXTURES / "identities.csv") if fmt in DESTINATION_CONSENT else None
    built = build_target_list(formula_shop, "shop", CampaignFilters(), identities=identities, holdout_share=0.0,
                              destination=fmt if fmt in DESTINATION_CONSENT else None)
    file = exports.render(built, fmt)
    if fmt == "parquet":  # values as they are: see core.present.safecsv
        frame = pd.read_parquet(io.BytesIO(file.data))
        assert set(frame["next_category"]) == {'=HYPERLINK("http://x")'} and set(frame["segment_name"]) == {
            "+Premium fans"}
        return
    rows = _cells(file.data)
    assert len(rows) == file.n_rows + 1 and file.n_rows > 0
    assert [c for r in rows for c in r if safecsv.escape_cell(c) != c] == []
    if fmt in ("csv", "klaviyo", "mailchimp"):  # the forecast travels in clear
        assert '\'=HYPERLINK("http://x")' in rows[1] and "'-1+2 @3" in rows[1] and "'+Premium fans" in rows[1]


def test_holdout_csv_escapes_the_ids_it_holds(formula_shop):
    import sqlalchemy as sa

    from core import store
    from core.campaigns import exports
    from core.present import safecsv
    from core.campaigns.targets import CampaignFilters, build_target_list

    built = build_target_list(formula_shop, "shop", CampaignFilters(), holdout_share=0.25)
    export_id = exports.save_export(formula_shop, built, "csv")["export_id"]
    held = sorted(exports.holdout_list(formula_shop, export_id)["user_id"])[:4]
    m = store.export_members.c
    with formula_shop.begin() as conn:  # ids as a hostile upload could have named these shoppers
        for old, new in zip(held, ["=1+1", "@SUM(A1)", "-3", "+1"]):
            conn.execute(sa.update(store.export_members).where(m.export_id == export_id, m.user_id == old)
                         .values(user_id=new))
    rows = _cells(exports.holdout_csv(formula_shop, export_id))
    assert rows[0] == ["user_id", "propensity_decile"]
    assert {"'=1+1", "'@SUM(A1)", "-3", "'+1"} <= {r[0] for r in rows[1:]}
    assert [c for r in rows for c in r if safecsv.escape_cell(c) != c] == []


# --- no other writer ------------------------------------------------------------------------------------

#: Table writers outside core/present/safecsv.py that hand nothing to an analyst, and why.
WRITER_EXCEPTIONS = {
    "core/simulate/files.py": "writes the simulator's sample event files: input for cartsight, not a report",
    "core/ingest/tabular.py": "turns an uploaded workbook, Parquet or JSON file into CSV for DuckDB to read (temporary)",
    "core/ingest/json_tables.py": "copies an uploaded Parquet or JSON file into CSV for DuckDB to read (temporary)",
    "core/ingest/load.py": "stages rows for PostgreSQL's COPY (temporary files)",
    "core/ingest/append.py": "streams a PostgreSQL dataset's stored events into the load's DuckDB (COPY TO STDOUT) to "
                             "find repeats: read by the load, never a file",
    "core/ingest/prepare.py": "re-encodes an upload as UTF-8 or a TSV for DuckDB to read (temporary files)",
}
WRITER_CALL = re.compile(r"\.to_csv\(|\.to_excel\(|\.to_parquet\(|ExcelWriter\(|csv\.(Dict)?[Ww]riter\(|"
                         r"\bwrite_csv\(|\bCOPY\b.*\bTO\b")
NOT_A_WRITER = re.compile(r"tabular\.to_csv\(|safecsv\.write_csv\(|def \w+\(")  # the converter's name; the writer


def _writer_lines(path, root=ROOT) -> list[str]:
    return [f"{path.relative_to(root)}:{n}: {line.strip()}"
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if WRITER_CALL.search(NOT_A_WRITER.sub("", line))]


def test_every_table_file_is_written_by_safecsv():
    """A new ``to_csv(``/``to_excel(``/``to_parquet(``/``csv.writer(`` in core/, pages/ or app.py fails here:
    route it through core.present.safecsv, or add the file to WRITER_EXCEPTIONS with the reason nothing it
    writes reaches a spreadsheet."""
    sources = [*sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py"]
    found = {str(p.relative_to(ROOT)): _writer_lines(p) for p in sources}
    stray = [line for name, lines in found.items() if name not in {"core/present/safecsv.py", *WRITER_EXCEPTIONS}
             for line in lines]
    assert stray == [], "table files written outside core/present/safecsv.py:\n" + "\n".join(stray)
    assert found["core/present/safecsv.py"], "the scan no longer sees the writer itself: WRITER_CALL is out of date"
    stale = [name for name in WRITER_EXCEPTIONS if not found.get(name)]
    assert stale == [], f"exceptions that write no table file any more (remove them): {stale}"


def test_the_scan_catches_a_plain_to_csv(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('st.download_button("x", frame.to_csv(index=False))\nconverted = tabular.to_csv(path, out)\n')
    assert _writer_lines(page, tmp_path) == ['page.py:1: st.download_button("x", frame.to_csv(index=False))']


def test_tables_offer_no_csv_download_of_their_own():
    """st.dataframe's toolbar writes its CSV in the browser, cells as they are: the project's config turns it off."""
    import tomllib

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["client"]["disableDataExport"] is True
